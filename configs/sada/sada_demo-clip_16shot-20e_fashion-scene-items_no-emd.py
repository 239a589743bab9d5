# SADA without the Gaussian EMD alignment of prototypes and prompts: the ablation.
_base_ = ['./sada_demo-clip_16shot-20e_fashion-scene-items.py']

model = dict(emd_loss=None)
