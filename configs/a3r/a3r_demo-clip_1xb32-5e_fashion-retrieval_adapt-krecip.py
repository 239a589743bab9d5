# A3R's adaption re-ranking on the demo retriever: stage 2 and k-reciprocal re-ranking (k = 10, the spec's quantified score).
# It changes only the evaluation: test a checkpoint of the parent config,
#   python tools/test.py configs/a3r/a3r_demo-clip_1xb32-5e_fashion-retrieval_adapt-krecip.py CHECKPOINT
_base_ = ['./a3r_demo-clip_1xb32-5e_fashion-retrieval.py']

model = dict(
    reranker=dict(type='mmext.AdaptionReRanker', num_candidates=25, num_adapt=5, k=10,
                  variant='quantified'))
