# Short name of Q-DETR's 4-bit DETR-R50 on COCO: python tools/train.py configs/qdetr/r50_4bit.py
_base_ = './qdetr_r50_w4a4-attn8_8xb2-500e_coco.py'
