# Ablation row "+FQM": foreground-aware query matching and the DRD loss, no DA.
_base_ = './qdetr_r50_w4a4-attn8_8xb2-500e_coco.py'

model = dict(distribution_alignment=None)
