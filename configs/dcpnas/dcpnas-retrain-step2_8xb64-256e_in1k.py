# DCP-NAS retraining on ImageNet, step 2 of 2: 1-bit weights and activations, starting from the
# last checkpoint of step 1 (the binarizers' scales are initialised from the loaded weights on
# the first forward), weight decay 0, and the loss adds mu * L_R with mu = 5e-5: the released
# code adds the reconstruction gradient 1e-4 * (w - beta sign(w)) to each 1-bit weight, which
# is the gradient of 5e-5 * ||w - beta sign(w)||^2; otherwise as step 1.
_base_ = ['./dcpnas-retrain-step1_8xb64-256e_in1k.py']

model = dict(reconstruction_weight=5e-5, classifier=dict(backbone=dict(binary=True)))
load_from = 'work_dirs/dcpnas-retrain-step1_8xb64-256e_in1k/epoch_256.pth'
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
