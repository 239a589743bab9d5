"""Token-level access to an open_clip text tower, for prompts whose context is learned.

CoOp's pattern (Zhou et al., 2022): embed ``[SOS] <context> <class name> . [EOS]``, where the context
vectors are parameters rather than words, then run the rest of the text encoder on the
embeddings. open_clip has two kinds of text tower and :class:`TextTower` hides the difference:

- CLIP's own transformer (``CLIP`` and ``CustomTextCLIP.text = TextTransformer``): token and
  positional embeddings, causal mask, ``ln_final``, the feature at the EOS position, projection;
- a Hugging Face encoder (``HFTextEncoder``, e.g. MiniLM or RoBERTa): word embeddings, the HF
  transformer on ``inputs_embeds`` with a padding mask, open_clip's pooler, projection.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class TextTower:
    """Embed token ids and encode embedded sequences with one open_clip model's text tower.

    Args:
        model: an open_clip ``CLIP`` or ``CustomTextCLIP``.
        tokenizer: the tokenizer ``open_clip.get_tokenizer`` gives for it.
    """

    def __init__(self, model: nn.Module, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        text = getattr(model, 'text', None)
        self.is_hf = text is not None and hasattr(text, 'transformer') and hasattr(text, 'pooler')
        # CLIP keeps the text transformer's parts on the model itself; CustomTextCLIP in .text.
        self.tower = text if text is not None else model
        if not self.is_hf and getattr(self.tower, 'cls_emb', None) is not None:
            raise NotImplementedError(
                'text towers with an appended class token (CoCa) are not supported for prompt '
                'learning; use a CLIP or CustomTextCLIP model')
        self.context_length = int(getattr(tokenizer, 'context_length', 77))
        self.pad_id = self._pad_id()

    # ------------------------------------------------------------------ tokens
    def _pad_id(self) -> int:
        hf = getattr(self.tokenizer, 'tokenizer', None)
        if hf is not None and getattr(hf, 'pad_token_id', None) is not None:
            return int(hf.pad_token_id)
        return 0  # open_clip's SimpleTokenizer pads with 0

    def split_special(self, text: str) -> tuple[int, list[int], int]:
        """Tokenize ``text``; return its start id, content ids and end id (no padding)."""
        ids = self.tokenizer([text])[0].tolist()
        length = sum(1 for i in ids if i != self.pad_id)
        if length >= self.context_length:
            raise ValueError(f'"{text}" fills the whole text context ({self.context_length} '
                             'tokens); use a shorter class name or fewer context tokens')
        return ids[0], ids[1:length - 1], ids[length - 1]

    @property
    def width(self) -> int:
        """Width of the token embeddings, D_txt."""
        return self.token_embedding.embedding_dim

    @property
    def token_embedding(self) -> nn.Embedding:
        if self.is_hf:
            return self.tower.transformer.get_input_embeddings()
        return self.tower.token_embedding

    def embed_ids(self, ids: Sequence[int] | Tensor) -> Tensor:
        """Token ids (L,) -> their input embeddings (L, D_txt)."""
        emb = self.token_embedding
        ids = torch.as_tensor(ids, dtype=torch.long, device=emb.weight.device)
        return emb(ids)

    # --------------------------------------------------------------- encoding
    def encode_embeddings(self, embeds: Tensor, lengths: Tensor) -> Tensor:
        """Run the text tower on embedded sequences.

        Args:
            embeds: (N, L, D_txt) input embeddings, ``[SOS] ... [EOS]`` then anything (padding).
            lengths: (N,) number of real tokens in each sequence, EOS included.

        Returns:
            (N, D) text features in the joint space (not normalised).
        """
        n, length, _ = embeds.shape
        if length > self.context_length:
            raise ValueError(f'prompt of {length} tokens exceeds the text context '
                             f'({self.context_length})')
        positions = torch.arange(length, device=embeds.device)
        valid = positions[None] < lengths[:, None].to(embeds.device)  # (N, L)
        if self.is_hf:
            return self._encode_hf(embeds, valid)
        return self._encode_clip(embeds, valid, lengths.to(embeds.device) - 1)

    def _encode_hf(self, embeds: Tensor, valid: Tensor) -> Tensor:
        text = self.tower
        mask = valid.long()
        out = text.transformer(inputs_embeds=embeds, attention_mask=mask)
        pooled = text.pooler(out, mask)
        return text.proj(pooled)

    def _encode_clip(self, embeds: Tensor, valid: Tensor, eos_index: Tensor) -> Tensor:
        tower = self.tower
        length = embeds.shape[1]
        x = embeds + tower.positional_embedding[:length].to(embeds.dtype)
        causal = getattr(tower, 'attn_mask', None)
        attn_mask = causal[:length, :length] if causal is not None else None
        if attn_mask is None and getattr(tower, 'use_pad_mask', False):
            heads = tower.transformer.resblocks[0].attn.num_heads
            key_mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
            key_mask.masked_fill_(~valid, float('-inf'))
            attn_mask = key_mask[:, None, :].expand(-1, length, -1).repeat_interleave(heads, 0)
        x = tower.transformer(x, attn_mask=attn_mask)
        x = tower.ln_final(x)
        pool_type = getattr(tower, 'text_pool_type', getattr(tower, 'pool_type', 'argmax'))
        if pool_type == 'first':
            pooled = x[:, 0]
        else:  # 'argmax', 'eos', 'last': the EOS token, whose position we know
            pooled = x[torch.arange(x.shape[0]), eos_index]
        proj = tower.text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj


def build_prompt_sequences(tower: TextTower, context: Tensor, class_names: Sequence[str],
                           position: str = 'end') -> tuple[Tensor, Tensor]:
    """Embedded prompts ``[SOS] context name . [EOS]`` for every (context, class) pair.

    Args:
        tower: the text tower.
        context: (P, M, D_txt) learned context vectors of P prompts, M tokens each.
        class_names: C names.
        position: where the class name goes relative to the context: ``'end'``
            (``ctx name .``), ``'front'`` (``name ctx .``) or ``'middle'``
            (``ctx[:M/2] name ctx[M/2:] .``).

    Returns:
        embeds (P * C, L, D_txt), prompt-major (row ``p * C + c``), and lengths (P * C,).
    """
    if position not in ('end', 'front', 'middle'):
        raise ValueError(f"class token position must be 'end', 'front' or 'middle', "
                         f'not {position!r}')
    num_prompts, num_ctx, width = context.shape
    if width != tower.width:
        raise ValueError(f'context vectors have width {width}, the text tower embeds tokens '
                         f'with width {tower.width}')
    sos, period, eos = tower.split_special('.')
    rows, lengths = [], []
    for name in class_names:
        _, name_ids, _ = tower.split_special(name)
        start, name_emb = tower.embed_ids([sos]), tower.embed_ids(name_ids)
        tail = tower.embed_ids(period + [eos])
        for p in range(num_prompts):
            ctx = context[p]
            if position == 'end':
                parts = [start, ctx, name_emb, tail]
            elif position == 'front':
                parts = [start, name_emb, ctx, tail]
            else:
                half = num_ctx // 2
                parts = [start, ctx[:half], name_emb, ctx[half:], tail]
            rows.append(torch.cat(parts))
            lengths.append(rows[-1].shape[0])
    longest = max(lengths)
    if longest > tower.context_length:
        raise ValueError(f'{num_ctx} context tokens + the longest class name make a prompt of '
                         f'{longest} tokens; the text context holds {tower.context_length}')
    embeds = context.new_zeros(len(rows), longest, width)
    for i, row in enumerate(rows):
        embeds[i, :row.shape[0]] = row
    # rows are class-major above; reorder to prompt-major
    c = len(class_names)
    order = [ci * num_prompts + p for p in range(num_prompts) for ci in range(c)]
    return embeds[order], torch.tensor(lengths)[order]


def encode_contexts_alone(tower: TextTower, contexts: Tensor) -> Tensor:
    """Text features of learned contexts with no class name: ``[SOS] ctx_n [EOS]``.

    Args:
        tower: the text tower.
        contexts: (N, M, D_txt) context vectors.

    Returns:
        (N, D) text features (not normalised).
    """
    sos, _, eos = tower.split_special('.')
    num = len(contexts)
    start = tower.embed_ids([sos]).to(contexts.dtype)[None].expand(num, -1, -1)
    end = tower.embed_ids([eos]).to(contexts.dtype)[None].expand(num, -1, -1)
    embeds = torch.cat([start, contexts, end], dim=1)
    return tower.encode_embeddings(embeds, torch.full((num, ), embeds.shape[1]))
