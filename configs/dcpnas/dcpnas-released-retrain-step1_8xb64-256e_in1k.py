# DCP-NAS's released ImageNet model, step 1 of 2: the genotype the authors released
# (genotypes/dcpnas_released_in1k.py, "DDPNAS_MCN_2" in their code) at the released width and
# depth (108 initial channels, 10 cells), retrained with the released recipe of
# dcpnas-retrain-step1_8xb64-256e_in1k.py: 1-bit activations, real weights, real-valued inputs
# to the depthwise convolutions, KL to a ResNet-34 teacher only, AdamW 1e-3, 256 epochs,
# 64 per GPU x 8. Then run dcpnas-released-retrain-step2_8xb64-256e_in1k.py.
_base_ = ['./dcpnas-retrain-step1_8xb64-256e_in1k.py']

model = dict(classifier=dict(backbone=dict(
    genotype='{{fileDirname}}/genotypes/dcpnas_released_in1k.py', channels=108, num_cells=10)))
