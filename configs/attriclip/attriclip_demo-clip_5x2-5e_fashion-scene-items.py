# AttriCLIP on the class-incremental Fashion Scenes items demo (5 tasks of 2 classes):
#   make data
#   python tools/train.py configs/attriclip/attriclip_demo-clip_5x2-5e_fashion-scene-items.py
# The demo CLIP stays frozen; only the attribute word bank learns: 10 (key, prompt) pairs,
# prompts of 8 tokens (the paper's 12 x 3 = 36 overflow the demo CLIP's 40-token text
# context once a class name is added), top-3 selection, loss CE + 0.7 key matching + 0.3 orthogonality.
# After every task the log shows row t of the accuracy matrix (continual/task0..), the
# accuracy on all seen classes (continual/seen), and at the end Avg / Last / Forgetting.
_base_ = ['./_base_/continual_demo-clip_5x2_fashion-scene-items.py']

model = dict(
    type='mmext.AttriCLIPClassifier',
    clip={{_base_.clip}},
    class_names={{_base_.class_names}},
    bank=dict(num_attributes=10, prompt_length=8, top_k=3, score='dot'),
    key_loss=dict(type='mmext.KeyMatchingLoss', loss_weight=0.7),
    orthogonality_loss=dict(type='mmext.PromptOrthogonalityLoss', loss_weight=0.3),
    data_preprocessor={{_base_.data_preprocessor}})
