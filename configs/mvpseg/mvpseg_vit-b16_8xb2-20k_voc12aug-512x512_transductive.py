# Transductive VOC: unseen names are candidates during training and confident unseen
# predictions on unlabelled pixels become pseudo-labels. Reference (ZegCLIP, transductive):
# 92.3 / 89.9 / 91.1.
_base_ = './mvpseg_vit-b16_8xb2-20k_voc12aug-512x512.py'
model = dict(decode_head=dict(setting='transductive', pseudo_label_threshold=0.9))
val_evaluator = dict(setting='transductive')
test_evaluator = val_evaluator
