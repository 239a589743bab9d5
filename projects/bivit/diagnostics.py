"""Evidence for Bi-ViT's diagnosis: how much gradient reaches the binarized
attention's inputs, and how well the student's attention keeps the teacher's ranking."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .binarized_vit import attention_cores
from .ranking import (
    kendall_tau,
    num_extra_tokens,
    paired_attention_logits,
    record_attention_logits,
)

TENSORS = ('q', 'k', 'v', 'p')


def attention_input_gradients(classifier: nn.Module, inputs: torch.Tensor,
                              data_samples) -> dict[str, float]:
    """One forward / backward of the cross-entropy of the classifier's predicted logits
    (``mode='tensor'``; with a distillation token, the two heads' average) against the labels;
    for q, k, v (the inputs of their binarizers, after qk-norm) and P (the softmax output,
    input of its binarizer), the L2 norm of the gradient per image, averaged over images and
    attention layers. The same loss for every model, whatever it was trained with.

    ``inputs``: a preprocessed batch (B, C, H, W); ``data_samples``: B samples with
    ``gt_label``. The model's parameter gradients are left as they were."""
    captured: dict[str, list[torch.Tensor]] = {t: [] for t in TENSORS}
    handles = []
    for _, core in attention_cores(classifier).values():
        for tensor, quantizer in zip(TENSORS, (core.q_quantizer, core.k_quantizer,
                                               core.v_quantizer, core.prob_quantizer)):
            def hook(module, args, tensor=tensor):
                args[0].retain_grad()
                captured[tensor].append(args[0])
            handles.append(quantizer.register_forward_pre_hook(hook))
    if not handles:
        raise ValueError('attention_input_gradients needs a model with quantized attention')
    saved = {name: p.grad for name, p in classifier.named_parameters()}
    try:
        labels = torch.cat([sample.gt_label for sample in data_samples]).to(inputs.device)
        F.cross_entropy(classifier(inputs, mode='tensor'), labels).backward()
    finally:
        for handle in handles:
            handle.remove()
        for name, p in classifier.named_parameters():
            p.grad = saved[name]
    return {tensor: torch.stack([t.grad.flatten(1).norm(dim=1).mean() for t in values])
            .mean().item() for tensor, values in captured.items() if values}


@torch.no_grad()
def attention_ranking_agreement(student: nn.Module, teacher: nn.Module,
                                inputs: torch.Tensor) -> float:
    """Kendall's tau of the student's pre-softmax attention logits against the teacher's, per
    query over its keys, averaged over images, heads, queries and layers, on the tokens both
    have (a student's distillation token is left out against a plain teacher). Both models
    need recordable attention (a quantized model, or a float one after ``twin_attention``)."""
    with record_attention_logits(student) as s_logits:
        student(inputs, mode='tensor')
    with record_attention_logits(teacher) as t_logits:
        teacher(inputs, mode='tensor')
    if set(s_logits) != set(t_logits) or not s_logits:
        raise ValueError('student and teacher need the same (recordable) attention layers, got '
                         f'{sorted(s_logits)} and {sorted(t_logits)}')
    pairs = paired_attention_logits(s_logits, t_logits, num_extra_tokens(student),
                                    num_extra_tokens(teacher))
    return torch.stack([kendall_tau(s, t) for s, t in pairs.values()]).mean().item()
