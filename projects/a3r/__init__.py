"""A3R: attribute augmentation and adaption re-ranking for text-to-image retrieval
(projects/a3r/README.md)."""
from .rerank import (
           AdaptionReRanker,
           ReRanking,
           adapted_query,
           nearest_neighbours,
           reciprocal_sets,
           stage1_scores,
)

__all__ = ['AdaptionReRanker', 'ReRanking', 'adapted_query', 'nearest_neighbours',
           'reciprocal_sets', 'stage1_scores']
