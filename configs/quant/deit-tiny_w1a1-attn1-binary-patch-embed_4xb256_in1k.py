# As deit-tiny_w1a1-attn1_4xb256_in1k.py with the patch embedding binarized too: the variant
# that Bi-ViT's reported 61.5x acceleration implies.
_base_ = './deit-tiny_w1a1-attn1_4xb256_in1k.py'

model = dict(quant=dict(skip=['head.*']))
