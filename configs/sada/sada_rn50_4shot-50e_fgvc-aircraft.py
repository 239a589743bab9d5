# SADA, 4 shots, fgvc-aircraft (CoOp's protocol; seeds 1, 2, 3 by --cfg-options
# train_dataloader.dataset.seed=S randomness.seed=S, one run each; projects/sada/README.md):
#   python tools/train.py configs/sada/sada_rn50_4shot-50e_fgvc-aircraft.py
_base_ = ['./_base_/datasets/fgvc-aircraft.py']

model = dict(num_shots=4)
train_dataloader = dict(dataset=dict(num_shots=4))
