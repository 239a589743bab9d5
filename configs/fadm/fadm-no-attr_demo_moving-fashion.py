# FADM demo without attributes (the benchmark's ablation row): AGCN sees a zero attribute
# difference, so its motion weights follow the timestep only.
#   python tools/train.py configs/fadm/fadm-no-attr_demo_moving-fashion.py
_base_ = ['./fadm_demo_moving-fashion.py']

model = dict(use_attributes=False)
