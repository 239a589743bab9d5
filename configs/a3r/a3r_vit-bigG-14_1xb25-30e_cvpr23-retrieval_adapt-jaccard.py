# A3R on the challenge data, evaluation variant: the Jaccard variant of the k-reciprocal step (lambda = 0.3).
# It changes only the evaluation: test a checkpoint of the parent config,
#   python tools/test.py configs/a3r/a3r_vit-bigG-14_1xb25-30e_cvpr23-retrieval_adapt-jaccard.py CHECKPOINT
_base_ = ['./a3r_vit-bigG-14_1xb25-30e_cvpr23-retrieval.py']

model = dict(route_rerankers=dict(vehicle=dict(variant='jaccard', jaccard_weight=0.3),
                                   person=dict(variant='jaccard', jaccard_weight=0.3)))
