"""``mmext.SMCADETR``: SMCA-DETR (Gao et al., ICCV 2021, "Fast Convergence of DETR with
Spatially Modulated Co-Attention"), single-scale version, on mmdet 3.x's DETR classes.

DETR's encoder is kept. In the decoder, every object query predicts a box centre and, in every
layer, the scales of a Gaussian-like spatial prior around it. The prior's logarithm is added to
the logits of the cross-attention (co-attention) before the softmax, head by head:

    log G_h(i, j) = -((i - c_w)^2 / (beta * s_w,h^2) + (j - c_h)^2 / (beta * s_h,h^2))

- ``(c_w, c_h) = sigmoid(MLP(o_q)) * (W, H)``: the centre, normalised by a sigmoid on a
  reference point predicted from the object query ``o_q`` (the learned query embedding), once
  for all layers, then scaled to the valid (unpadded) width W and height H of the feature map.
- ``(i, j)``: the cell centres of the feature map (index + 0.5), in feature cells.
- ``(s_w, s_h) = exp(Linear(x_q + o_q))`` per head (``scales='per_head'``), from the layer's
  query after its self-attention plus the object query (the cross-attention's query input; in
  the first layer the content is the same for every query, the object query is not);
  ``'shared'``: one pair for all heads; ``'fixed'``: ``scale_init``.
- The boxes are predicted relative to the centre: mmdet's ``ConditionalDETRHead`` adds the
  reference point (before its sigmoid) to the regressed (cx, cy).

The prior enters ``nn.MultiheadAttention`` as its additive float ``attn_mask`` of shape
(B * heads, Nq, h * w) (with the memory's padding folded in as -inf), so the module swap's
``QMultiheadAttention`` adds it to the quantized ``q k^T`` logits in the same place, and DETR's
quantization, distribution alignment and DRD recording apply unchanged.
"""
from __future__ import annotations

import inspect
import math

import torch
from mmcv.cnn import build_norm_layer
from mmdet.models.detectors.detr import DETR
from mmdet.models.layers import (
    DetrTransformerDecoder,
    DetrTransformerDecoderLayer,
    DetrTransformerEncoder,
    SinePositionalEncoding,
)
from mmdet.models.layers.transformer.utils import MLP
from mmengine.model import ModuleList
from torch import Tensor, nn

from mmext.registry import MODELS

SCALE_MODES = ('per_head', 'shared', 'fixed')


def gaussian_log_prior(centres: Tensor, log_scales: Tensor, spatial_shape: tuple[int, int],
                       valid_sizes: Tensor, beta: float) -> Tensor:
    """SMCA's spatial prior log G over the feature-map cells.

    Args:
        centres: (B, Nq, 2) normalised (c_w, c_h) in (0, 1) of the valid image region.
        log_scales: (B, Nq, heads, 2) natural logarithms of (s_w, s_h), in feature cells.
        spatial_shape: (h, w) of the feature map.
        valid_sizes: (B, 2) unpadded (width, height) of the feature map in cells.
        beta: the bandwidth hyper-parameter.

    Returns:
        (B, heads, Nq, h * w), row-major over the cells like DETR's flattened memory:
        ``-((i - c_w)^2 / (beta s_w^2) + (j - c_h)^2 / (beta s_h^2))`` with (i, j) the cell
        centres (column + 0.5, row + 0.5).
    """
    if centres.dim() != 3 or centres.shape[-1] != 2:
        raise ValueError(f'SMCA centres must be (B, Nq, 2), got {tuple(centres.shape)}')
    if log_scales.dim() != 4 or log_scales.shape[:2] != centres.shape[:2] or \
            log_scales.shape[-1] != 2:
        raise ValueError(f'SMCA log_scales must be (B, Nq, heads, 2) for centres '
                         f'{tuple(centres.shape)}, got {tuple(log_scales.shape)}')
    h, w = spatial_shape
    batch, num_queries, heads, _ = log_scales.shape
    cells = centres * valid_sizes.to(centres)[:, None, :]  # (B, Nq, 2) in feature cells
    cols = torch.arange(w, device=centres.device, dtype=centres.dtype) + 0.5
    rows = torch.arange(h, device=centres.device, dtype=centres.dtype) + 0.5
    dx2 = (cols - cells[..., :1]).square()  # (B, Nq, w)
    dy2 = (rows - cells[..., 1:]).square()  # (B, Nq, h)
    inv = torch.exp(-2 * log_scales) / beta  # 1 / (beta s^2): (B, Nq, heads, 2)
    log_g = -(dx2[:, :, None, None, :] * inv[..., 0, None, None] +
              dy2[:, :, None, :, None] * inv[..., 1, None, None])  # (B, Nq, heads, h, w)
    return log_g.reshape(batch, num_queries, heads, h * w).transpose(1, 2)


def valid_feature_sizes(key_padding_mask: Tensor | None, spatial_shape: tuple[int, int],
                        batch: int, reference: Tensor) -> Tensor:
    """(B, 2) unpadded (width, height) in cells from DETR's memory mask (B, h * w), True on
    padding (mmdet pads at the right and bottom); the full map without a mask."""
    h, w = spatial_shape
    if key_padding_mask is None:
        return reference.new_tensor([w, h]).expand(batch, 2)
    if key_padding_mask.shape != (batch, h * w):
        raise ValueError(f'SMCA: memory mask {tuple(key_padding_mask.shape)} does not fit a '
                         f'batch of {batch} feature maps of {h}x{w}')
    valid = ~key_padding_mask.bool().view(batch, h, w)
    sizes = torch.stack([valid[:, 0, :].sum(-1), valid[:, :, 0].sum(-1)], dim=-1)
    return sizes.to(reference.dtype).clamp_min(1)


class SMCADetrTransformerDecoderLayer(DetrTransformerDecoderLayer):
    """DETR's decoder layer whose cross-attention logits get SMCA's Gaussian prior.

    Args:
        beta: bandwidth of the prior (``log G = -d^2 / (beta s^2)`` per axis).
        scales: ``'per_head'`` (s_w, s_h predicted per head), ``'shared'`` (one predicted pair
            for all heads) or ``'fixed'`` (``scale_init`` for every query and head).
        scale_init: s_w = s_h at initialisation (feature cells): the scale predictor starts
            with small weights (std 0.01, so that a weight quantizer has a range to start
            from) and the bias log(scale_init).
        Other arguments: as ``DetrTransformerDecoderLayer``.
    """

    def __init__(self, *args, beta: float = 8.0, scales: str = 'per_head',
                 scale_init: float = 1.0, **kwargs):
        if scales not in SCALE_MODES:
            raise ValueError(f'SMCA scales must be one of {SCALE_MODES}, got {scales!r}')
        if not beta > 0 or not scale_init > 0:
            raise ValueError(f'SMCA beta and scale_init must be positive, got beta={beta!r}, '
                             f'scale_init={scale_init!r}')
        self.beta, self.scales, self.scale_init = float(beta), scales, float(scale_init)
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        super()._init_layers()
        self.num_heads = self.cross_attn.num_heads
        outputs = {'per_head': 2 * self.num_heads, 'shared': 2}.get(self.scales)
        self.scale_proj = nn.Linear(self.embed_dims, outputs) if outputs else None
        self.reset_scale_proj()

    def reset_scale_proj(self) -> None:
        """Weights of std 0.01 and bias log(scale_init): every scale starts near
        ``scale_init``."""
        if self.scale_proj is not None:
            nn.init.normal_(self.scale_proj.weight, std=0.01)
            nn.init.constant_(self.scale_proj.bias, math.log(self.scale_init))

    def log_scales(self, query: Tensor) -> Tensor:
        """query (B, Nq, C), the cross-attention's query input (content + object query) ->
        log (s_w, s_h) per head, (B, Nq, heads, 2)."""
        batch, num_queries, _ = query.shape
        if self.scale_proj is None:
            return query.new_full((batch, num_queries, self.num_heads, 2),
                                  math.log(self.scale_init))
        scales = self.scale_proj(query).view(batch, num_queries, -1, 2)
        return scales.expand(batch, num_queries, self.num_heads, 2)

    def cross_attn_prior(self, query: Tensor, reference: Tensor, spatial_shape: tuple[int, int],
                         valid_sizes: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """The additive cross-attention mask (B * heads, Nq, h * w): log G, -inf on padding;
        ``query``: content + object query (B, Nq, C). Computed in float32 and floored at
        -1e4 (a weight exp(-1e4) is zero in any precision), so that half precision neither
        overflows nor turns a row into -inf."""
        prior = gaussian_log_prior(reference.float(), self.log_scales(query).float(),
                                   spatial_shape, valid_sizes, self.beta)
        prior = prior.clamp_min(-1e4).to(query.dtype)
        if key_padding_mask is not None:
            prior = prior.masked_fill(key_padding_mask.bool()[:, None, None, :], float('-inf'))
        return prior.flatten(0, 1)

    def forward(self, query: Tensor, key: Tensor = None, value: Tensor = None,
                query_pos: Tensor = None, key_pos: Tensor = None, *,
                reference: Tensor, spatial_shape: tuple[int, int], valid_sizes: Tensor,
                self_attn_mask: Tensor = None, key_padding_mask: Tensor = None,
                **kwargs) -> Tensor:
        """query (B, Nq, C), key / value (B, h * w, C), reference (B, Nq, 2) normalised
        centres, valid_sizes (B, 2) -> (B, Nq, C)."""
        query = self.self_attn(query=query, key=query, value=query, query_pos=query_pos,
                               key_pos=query_pos, attn_mask=self_attn_mask)
        query = self.norms[0](query)
        prior = self.cross_attn_prior(query if query_pos is None else query + query_pos,
                                      reference, spatial_shape, valid_sizes, key_padding_mask)
        query = self.cross_attn(query=query, key=key, value=value, query_pos=query_pos,
                                key_pos=key_pos, attn_mask=prior)
        query = self.norms[1](query)
        query = self.ffn(query)
        return self.norms[2](query)


class SMCADetrTransformerDecoder(DetrTransformerDecoder):
    """DETR's decoder with SMCA layers and the centre predictor ``ref_point_head`` (an MLP of
    ``ref_point_layers`` layers on the object queries, then a sigmoid).

    ``forward(...)`` returns ``(hidden_states (layers, B, Nq, C), references (B, Nq, 2))``,
    what mmdet's ``ConditionalDETRHead`` takes.
    """

    def __init__(self, *args, ref_point_layers: int = 2, **kwargs):
        self.ref_point_layers = ref_point_layers
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        self.layers = ModuleList([
            SMCADetrTransformerDecoderLayer(**self.layer_cfg) for _ in range(self.num_layers)
        ])
        self.embed_dims = self.layers[0].embed_dims
        self.post_norm = build_norm_layer(self.post_norm_cfg, self.embed_dims)[1]
        self.ref_point_head = MLP(self.embed_dims, self.embed_dims, 2, self.ref_point_layers)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, query_pos: Tensor,
                key_pos: Tensor, key_padding_mask: Tensor | None,
                spatial_shape: tuple[int, int] | None = None,
                **kwargs) -> tuple[Tensor, Tensor]:
        if spatial_shape is None:
            raise ValueError('the SMCA decoder needs spatial_shape=(h, w) of the memory (the '
                             'Gaussian prior lives on the feature map); SMCADETR passes it')
        h, w = spatial_shape
        if key.shape[1] != h * w:
            raise ValueError(f'SMCA decoder: memory of {key.shape[1]} tokens is not a {h}x{w} '
                             'feature map')
        references = self.ref_point_head(query_pos).sigmoid()  # (B, Nq, 2)
        valid_sizes = valid_feature_sizes(key_padding_mask, spatial_shape, query.shape[0],
                                          references)
        intermediate = []
        for layer in self.layers:
            query = layer(query, key=key, value=value, query_pos=query_pos, key_pos=key_pos,
                          reference=references, spatial_shape=spatial_shape,
                          valid_sizes=valid_sizes, key_padding_mask=key_padding_mask, **kwargs)
            if self.return_intermediate:
                intermediate.append(self.post_norm(query))
        if self.return_intermediate:
            return torch.stack(intermediate), references
        return self.post_norm(query).unsqueeze(0), references


@MODELS.register_module()
class SMCADETR(DETR):
    """Single-scale SMCA-DETR: DETR with Gaussian-modulated co-attention and boxes relative to
    each query's predicted centre.

    Config as mmdet's ``DETR``, with ``decoder=dict(num_layers, layer_cfg=dict(..., beta=8.0,
    scales='per_head', scale_init=1.0), ref_point_layers=2)`` and a head that takes the
    references (mmdet's ``ConditionalDETRHead``). ``forward(mode='tensor')`` returns the
    head's ``(all_layers_cls_scores, all_layers_bbox_preds)``, as DETR's.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if 'references' not in inspect.signature(self.bbox_head.forward).parameters:
            raise ValueError(f'SMCADETR predicts boxes relative to its query centres: its '
                             f'bbox_head must take references (e.g. ConditionalDETRHead), got '
                             f'{type(self.bbox_head).__name__}')

    def _init_layers(self) -> None:
        self.positional_encoding = SinePositionalEncoding(**self.positional_encoding)
        self.encoder = DetrTransformerEncoder(**self.encoder)
        self.decoder = SMCADetrTransformerDecoder(**self.decoder)
        self.embed_dims = self.encoder.embed_dims
        self.query_embedding = nn.Embedding(self.num_queries, self.embed_dims)
        if self.positional_encoding.num_feats * 2 != self.embed_dims:
            raise ValueError(f'embed_dims {self.embed_dims} must be twice the positional '
                             f'num_feats {self.positional_encoding.num_feats}')

    def init_weights(self) -> None:
        super().init_weights()  # DETR's xavier init of encoder and decoder matrices
        for layer in self.decoder.layers:
            layer.reset_scale_proj()

    def pre_transformer(self, img_feats: tuple[Tensor], batch_data_samples=None):
        encoder_inputs, decoder_inputs = super().pre_transformer(img_feats, batch_data_samples)
        decoder_inputs['spatial_shape'] = tuple(img_feats[-1].shape[-2:])
        return encoder_inputs, decoder_inputs

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                        memory_mask: Tensor | None, memory_pos: Tensor,
                        spatial_shape: tuple[int, int]) -> dict:
        """-> ``dict(hidden_states (layers, B, Nq, C), references (B, Nq, 2))``."""
        hidden_states, references = self.decoder(
            query=query, key=memory, value=memory, query_pos=query_pos, key_pos=memory_pos,
            key_padding_mask=memory_mask, spatial_shape=spatial_shape)
        return dict(hidden_states=hidden_states, references=references)
