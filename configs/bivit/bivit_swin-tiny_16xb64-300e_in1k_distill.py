# Bi-ViT ablation row 4, Swin-T: + soft logit distillation from the real-valued teacher, 0.5
# KL(softmax(teacher) || softmax(student)) beside the label loss. Swin has no distillation
# token, so DeiT's hard distillation does not apply: this is Swin's form of the distillation
# step.
_base_ = './bivit_swin-tiny_16xb64-300e_in1k_qk-norm.py'

model = dict(
    teacher={{_base_.float_teacher}},
    distill=dict(
        logit=dict(type='mmext.LogitDistillationLoss', temperature=1.0, loss_weight=0.5)))
