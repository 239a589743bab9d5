# SADA, 1 shot, flowers102 (CoOp's protocol; seeds 1, 2, 3 by --cfg-options
# train_dataloader.dataset.seed=S randomness.seed=S, one run each; projects/sada/README.md):
#   python tools/train.py configs/sada/sada_rn50_1shot-50e_flowers102.py
_base_ = ['./_base_/datasets/flowers102.py']

model = dict(num_shots=1)
train_dataloader = dict(dataset=dict(num_shots=1))
