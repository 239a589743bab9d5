# SADA without the selective attack (no adapter, no attacked CE, no area prior): the ablation.
_base_ = ['./sada_demo-clip_16shot-20e_fashion-scene-items.py']

model = dict(attack=None)
