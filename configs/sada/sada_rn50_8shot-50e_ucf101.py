# SADA, 8 shots, ucf101 (CoOp's protocol; seeds 1, 2, 3 by --cfg-options
# train_dataloader.dataset.seed=S randomness.seed=S, one run each; projects/sada/README.md):
#   python tools/train.py configs/sada/sada_rn50_8shot-50e_ucf101.py
_base_ = ['./_base_/datasets/ucf101.py']

model = dict(num_shots=8)
train_dataloader = dict(dataset=dict(num_shots=8))
