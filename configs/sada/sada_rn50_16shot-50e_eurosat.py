# SADA, 16 shots, eurosat (CoOp's protocol; seeds 1, 2, 3 by --cfg-options
# train_dataloader.dataset.seed=S randomness.seed=S, one run each; projects/sada/README.md):
#   python tools/train.py configs/sada/sada_rn50_16shot-50e_eurosat.py
_base_ = ['./_base_/datasets/eurosat.py']

model = dict(num_shots=16)
train_dataloader = dict(dataset=dict(num_shots=16))
