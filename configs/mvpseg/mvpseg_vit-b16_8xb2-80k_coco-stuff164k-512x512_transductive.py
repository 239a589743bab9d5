# Transductive COCO-Stuff (MVP-SEG+ setting: unseen names known, their pixels unlabelled;
# confident unseen predictions become pseudo-labels on the fly). Reference points: MVP-SEG+
# hIoU 45.5 (paper); ZegCLIP 40.7 / 59.9 / 48.5.
_base_ = './mvpseg_vit-b16_8xb2-80k_coco-stuff164k-512x512.py'
model = dict(decode_head=dict(setting='transductive', pseudo_label_threshold=0.9))
val_evaluator = dict(setting='transductive')
test_evaluator = val_evaluator
