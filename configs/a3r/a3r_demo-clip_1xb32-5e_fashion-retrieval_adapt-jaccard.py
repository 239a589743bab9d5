# A3R's adaption re-ranking on the demo retriever: stage 2 and the Jaccard variant of the k-reciprocal step (lambda = 0.3).
# It changes only the evaluation: test a checkpoint of the parent config,
#   python tools/test.py configs/a3r/a3r_demo-clip_1xb32-5e_fashion-retrieval_adapt-jaccard.py CHECKPOINT
_base_ = ['./a3r_demo-clip_1xb32-5e_fashion-retrieval.py']

model = dict(
    reranker=dict(type='mmext.AdaptionReRanker', num_candidates=25, num_adapt=5, k=10,
                  variant='jaccard', jaccard_weight=0.3))
