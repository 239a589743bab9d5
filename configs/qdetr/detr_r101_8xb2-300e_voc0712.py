# Real-valued DETR-R101 on Pascal VOC 07+12: the teacher of Q-DETR's VOC configs.
_base_ = './detr_r50_8xb2-300e_voc0712.py'

model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained',
                                                    checkpoint='torchvision://resnet101')))
