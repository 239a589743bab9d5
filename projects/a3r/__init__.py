"""A3R: attribute augmentation and adaption re-ranking for text-to-image retrieval
(projects/a3r/README.md)."""
from .dataset import (
    AnnotationLine,
    TextImageRetrievalDataset,
    read_annotations,
    write_annotations,
)
from .metrics import TextImageRecall, ranking_to_scores
from .query import QuerySuffix, route_query, strip_leading_article
from .rerank import (
    AdaptionReRanker,
    ReRanking,
    adapted_query,
    nearest_neighbours,
    reciprocal_sets,
    stage1_scores,
)
from .retriever import CLIPRetriever

__all__ = ['AdaptionReRanker', 'AnnotationLine', 'CLIPRetriever', 'QuerySuffix', 'TextImageRetrievalDataset',
           'TextImageRecall', 'ranking_to_scores', 'read_annotations', 'write_annotations', 'ReRanking', 'adapted_query', 'nearest_neighbours',
           'reciprocal_sets', 'route_query', 'stage1_scores', 'strip_leading_article']
