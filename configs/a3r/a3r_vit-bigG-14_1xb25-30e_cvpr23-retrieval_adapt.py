# A3R on the challenge data, evaluation variant: the adapted query only (stage 2, no k-reciprocal step).
# It changes only the evaluation: test a checkpoint of the parent config,
#   python tools/test.py configs/a3r/a3r_vit-bigG-14_1xb25-30e_cvpr23-retrieval_adapt.py CHECKPOINT
_base_ = ['./a3r_vit-bigG-14_1xb25-30e_cvpr23-retrieval.py']

model = dict(route_rerankers=dict(vehicle=dict(k=None), person=dict(k=None)))
