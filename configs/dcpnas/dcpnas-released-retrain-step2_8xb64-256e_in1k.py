# DCP-NAS's released ImageNet model, step 2 of 2: 1-bit weights too, from the last checkpoint
# of dcpnas-released-retrain-step1_8xb64-256e_in1k.py, weight decay 0, loss + mu * L_R
# (mu = 5e-5); the recipe of dcpnas-retrain-step2_8xb64-256e_in1k.py on the released genotype.
_base_ = ['./dcpnas-retrain-step2_8xb64-256e_in1k.py']

model = dict(classifier=dict(backbone=dict(
    genotype='{{fileDirname}}/genotypes/dcpnas_released_in1k.py', channels=108, num_cells=10)))
load_from = 'work_dirs/dcpnas-released-retrain-step1_8xb64-256e_in1k/epoch_256.pth'
