"""A3R's retriever: an open_clip model fine-tuned with the symmetric contrastive loss, whose
text-to-image predictions go through the adaption re-ranker.

It plugs into mmpretrain's retrieval loops (``RetrievalValLoop`` / ``RetrievalTestLoop``):
``forward(mode='tensor')`` embeds a batch of gallery images (and their flipped copies) and the
batch's captions, and ``predict_all`` ranks every caption's gallery (stage 1, then the
re-ranker when one is configured) and every image's captions.
"""
from __future__ import annotations

import torch
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample
from torch import Tensor

from mmext.clip import OpenCLIPModel
from mmext.registry import MODELS, TASK_UTILS

from .metrics import ranking_to_scores
from .rerank import stage1_scores


@MODELS.register_module()
class CLIPRetriever(BaseModel):
    """Text-to-image retrieval with an open_clip model.

    Args:
        clip: ``OpenCLIPModel`` arguments (``model_name``, ``pretrained``, ...); it trains unless
            ``freeze=True`` is given.
        reranker: an ``AdaptionReRanker`` config for text-to-image predictions; ``None`` ranks by
            stage 1 (the better of each image and its flipped copy, or the image alone).
        route_rerankers: ``{route: AdaptionReRanker config}`` for captions that
            ``QuerySuffix`` routed (their ``route`` in the data samples), e.g. K1 = 25 for
            vehicles and 50 for persons; other captions use ``reranker``.
        flip_gallery: embed horizontally flipped gallery images too (the re-ranker's stage 1).
        grad_checkpointing: open_clip's gradient checkpointing (large towers).
        data_preprocessor: mmpretrain's ``MultiModalDataPreprocessor`` with the CLIP's mean /
            std (captions stay in the data samples).

    Shapes: a batch of B images and, in training, their B captions; ``forward(mode='tensor')``
    returns ``dict(image_feat=(B, D), image_feat_flip=(B, D), text_feat=(T, D))``, T the
    captions of the batch's samples in order.
    """

    def __init__(self, clip: dict, reranker: dict | None = None,
                 route_rerankers: dict[str, dict] | None = None, flip_gallery: bool = True,
                 grad_checkpointing: bool = False, data_preprocessor: dict | None = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.clip = OpenCLIPModel(**dict(dict(freeze=False), **clip))
        if grad_checkpointing:
            self.clip.clip.set_grad_checkpointing(True)
        self.reranker = TASK_UTILS.build(reranker) if reranker is not None else None
        self.route_rerankers = {route: TASK_UTILS.build(cfg)
                                for route, cfg in (route_rerankers or {}).items()}
        self.flip_gallery = flip_gallery
        from open_clip.loss import ClipLoss
        self.contrastive = ClipLoss()

    @staticmethod
    def _texts(data_samples) -> list[str]:
        texts = []
        for sample in data_samples or []:
            text = sample.get('text')
            if text is None:
                raise KeyError('CLIPRetriever needs the captions in the data samples: pack them '
                               "with PackInputs(algorithm_keys=('text', ...))")
            texts.extend([text] if isinstance(text, str) else list(text))
        return texts

    def forward(self, images: Tensor | None = None, data_samples=None, mode: str = 'tensor'):
        """``images``: (B, 3, H, W), the key mmpretrain's ``MultiModalDataPreprocessor``
        gives them."""
        if mode == 'loss':
            return self.loss(images, data_samples)
        if mode == 'tensor':
            return self.extract_feat(images, data_samples)
        raise RuntimeError(f"CLIPRetriever has no {mode!r} mode: it is evaluated by mmpretrain's "
                           "RetrievalValLoop / RetrievalTestLoop (mode='tensor', then "
                           'predict_all)')

    def loss(self, inputs: Tensor, data_samples) -> dict:
        """Symmetric contrastive loss of B images against their B captions."""
        texts = self._texts(data_samples)
        if len(texts) != len(inputs):
            raise ValueError(f'training needs one caption per image, got {len(texts)} captions '
                             f'for {len(inputs)} images')
        images = self.clip.encode_image(inputs)
        captions = self.clip.encode_text(texts)
        return dict(loss=self.contrastive(images, captions, self.clip.logit_scale))

    def extract_feat(self, inputs: Tensor | None, data_samples=None) -> dict:
        """Unit embeddings of the images (and their flipped copies) and of the captions."""
        feats = {}
        if inputs is not None:
            feats['image_feat'] = self.clip.encode_image(inputs)
            if self.flip_gallery:
                feats['image_feat_flip'] = self.clip.encode_image(inputs.flip(-1))
        texts = self._texts(data_samples)
        if texts:
            feats['text_feat'] = self.clip.encode_text(texts)
        return feats

    def rank_images(self, text_feat: Tensor, image_feat: Tensor,
                    image_feat_flip: Tensor | None = None,
                    routes: list[str | None] | None = None) -> Tensor:
        """(T, D) captions against (N, D) images -> (T, N) scores: the re-ranked order as
        scores (``N - rank``) where a re-ranker applies (the caption's route's, else
        ``reranker``), else the stage-1 cosines."""
        scores = stage1_scores(text_feat, image_feat, image_feat_flip)
        routes = routes or [None] * len(text_feat)
        for j, route in enumerate(routes):
            reranker = self.route_rerankers.get(route, self.reranker)
            if reranker is not None:
                order = reranker(text_feat[j], image_feat, image_feat_flip).order
                scores[j] = ranking_to_scores(order).to(scores)
        return scores

    def predict_all(self, feats: dict, data_samples: list, num_images: int | None = None,
                    num_texts: int | None = None) -> tuple[list, list]:
        """Image-to-text and text-to-image predictions over the whole evaluation set.

        ``data_samples`` are the evaluation items (one per gallery image, with ``text``,
        ``gt_text_id`` and ``gt_image_id``); returns one DataSample per image (``pred_score``
        over the texts, ``gt_label`` its texts) and one per text (``pred_score`` over the
        images, ``gt_label`` its images)."""
        from mmengine.dist import get_world_size
        if get_world_size() > 1:
            raise RuntimeError('CLIPRetriever evaluates in one process (the texts of each image '
                               'are numbered image after image); run tools/test.py without '
                               'a launcher')
        image, text = feats['image_feat'][:num_images], feats['text_feat'][:num_texts]
        flip = feats.get('image_feat_flip')
        flip = flip[:num_images] if flip is not None else None
        i2t = stage1_scores(image, text)  # flipped images only matter for text queries
        if flip is not None:
            i2t = torch.maximum(i2t, flip @ text.T)
        routes = []
        for sample in data_samples:
            count = len(sample.text) if isinstance(sample.text, (list, tuple)) else 1
            route = sample.get('route')
            routes.extend(route if isinstance(route, (list, tuple)) else [route] * count)
        t2i = self.rank_images(text, image, flip, routes)
        i2t_samples, t2i_samples = [], []
        for sample in data_samples:
            i2t_samples.append(DataSample().set_gt_label(list(sample.gt_text_id)))
            texts = sample.text if isinstance(sample.text, (list, tuple)) else [sample.text]
            for i in range(len(texts)):
                t2i_samples.append(DataSample().set_gt_label(list(sample.gt_image_id[i])))
        for sample, scores in zip(i2t_samples, i2t):
            sample.set_pred_score(scores)
        for sample, scores in zip(t2i_samples, t2i):
            sample.set_pred_score(scores)
        return i2t_samples, t2i_samples
