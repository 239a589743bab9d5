# AttriCLIP, as the paper runs it: frozen OpenAI CLIP ViT-L/14; a bank of 10 (key, prompt)
# pairs, keys of 768 (the image embedding's width) and prompts of 12 tokens of 768 (the text
# tower's token width; both inferred from the CLIP), top-3 prompts per image, 36 prompt tokens
# before the class name, logit scale 100 (the CLIP's own); loss CE + 0.7 key matching + 0.3
# prompt orthogonality (the released script's weights for this dataset).
#   python tools/train.py configs/attriclip/attriclip_vit-l-14_10x10-10e_cifar100.py
_base_ = ['./_base_/continual_vit-l-14_10x10_cifar100.py']

model = dict(
    type='mmext.AttriCLIPClassifier',
    clip={{_base_.clip}},
    bank=dict(num_attributes=10, prompt_length=12, top_k=3, score='dot'),
    key_loss=dict(type='mmext.KeyMatchingLoss', loss_weight=0.7),
    orthogonality_loss=dict(type='mmext.PromptOrthogonalityLoss', loss_weight=0.3),
    data_preprocessor={{_base_.data_preprocessor}})
