# AttriCLIP with cosine key matching (the spec's proposal: the selection uses the score the
# key loss trains) instead of the released code's dot product with unnormalised keys.
#   python tools/train.py configs/attriclip/attriclip_demo-clip_5x2-5e_fashion-scene-items_cosine.py
_base_ = ['./attriclip_demo-clip_5x2-5e_fashion-scene-items.py']

model = dict(bank=dict(score='cosine'))
