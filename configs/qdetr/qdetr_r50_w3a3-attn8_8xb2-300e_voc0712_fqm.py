# VOC ablation row "+FQM": query matching and the DRD loss, no DA, 3-3-8.
_base_ = './qdetr_r50_w3a3-attn8_8xb2-300e_voc0712.py'

model = dict(distribution_alignment=None)
