# SADA, 2 shots, stanford-cars (CoOp's protocol; seeds 1, 2, 3 by --cfg-options
# train_dataloader.dataset.seed=S randomness.seed=S, one run each; projects/sada/README.md):
#   python tools/train.py configs/sada/sada_rn50_2shot-50e_stanford-cars.py
_base_ = ['./_base_/datasets/stanford-cars.py']

model = dict(num_shots=2)
train_dataloader = dict(dataset=dict(num_shots=2))
