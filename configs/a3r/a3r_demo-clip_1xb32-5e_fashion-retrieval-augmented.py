# The demo retriever trained on attribute-augmented captions (A3R's first step): the training
# captions whose colour word is missing get the one the demo CLIP judges best, zero-shot:
#   python tools/a3r/attribute_augment.py data/fashion_retrieval/train_label.txt \
#       data/fashion_scene_items projects/a3r/fashion_attributes.json \
#       data/fashion_retrieval/train_label_augmented.txt
#   python tools/train.py configs/a3r/a3r_demo-clip_1xb32-5e_fashion-retrieval-augmented.py
_base_ = ['./a3r_demo-clip_1xb32-5e_fashion-retrieval.py']

train_dataloader = dict(dataset=dict(ann_file='data/fashion_retrieval/train_label_augmented.txt'))
