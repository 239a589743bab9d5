# A3R on the challenge data, evaluation variant: no re-ranking: stage-1 ranking (text query against images and their flips).
# It changes only the evaluation: test a checkpoint of the parent config,
#   python tools/test.py configs/a3r/a3r_vit-bigG-14_1xb25-30e_cvpr23-retrieval_stage1.py CHECKPOINT
_base_ = ['./a3r_vit-bigG-14_1xb25-30e_cvpr23-retrieval.py']

model = dict(route_rerankers=dict(_delete_=True))
