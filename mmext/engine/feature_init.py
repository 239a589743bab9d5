"""Initialise a model from features of its training images before it trains or is tested."""
from __future__ import annotations

import copy

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmext.registry import HOOKS


@HOOKS.register_module()
class InitFromTrainFeaturesHook(Hook):
    """One data pass over the training set, R times with its augmentations, hands the frozen
    image features to ``model.init_from_features(feats (N, R * V, D), labels (N,))``.

    For models built from their few-shot training images: Tip-Adapter's cache, SADA's visual
    prototypes. It runs before training and before testing, only while
    ``model.needs_feature_init()`` says so; the state it sets lives in the checkpoint, so a
    resumed run or a tested checkpoint is not initialised again.

    Args:
        rounds: R passes over the training images (their random augmentations differ); a
            multi-view pipeline gives V views per pass.
        batch_size: images per forward.
    """

    priority = 'VERY_HIGH'

    def __init__(self, rounds: int = 8, batch_size: int = 32):
        if rounds < 1:
            raise ValueError(f'rounds must be at least 1, got {rounds}')
        self.rounds, self.batch_size = rounds, batch_size

    def before_train(self, runner) -> None:
        self._initialise(runner)

    def before_test(self, runner) -> None:
        self._initialise(runner)

    def _initialise(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not getattr(model, 'needs_feature_init', lambda: False)():
            return
        cfg = runner.cfg.get('train_dataloader')
        if cfg is None:
            raise ValueError('InitFromTrainFeaturesHook reads the training images: the config '
                             'needs a train_dataloader (also when only testing)')
        cfg = copy.deepcopy(cfg)
        cfg.update(batch_size=self.batch_size, num_workers=0, persistent_workers=False,
                   sampler=dict(type='DefaultSampler', shuffle=False))
        loader = runner.build_dataloader(cfg, seed=runner.seed)
        was_training = model.training
        model.eval()
        rounds, labels = [], None
        with torch.no_grad():
            for _ in range(self.rounds):
                feats, round_labels = [], []
                for batch in loader:
                    data = model.data_preprocessor(batch, False)
                    feats.append(model.view_features(data['inputs']))  # (B, V, D)
                    round_labels += [int(s.gt_label.reshape(-1)[0])
                                     for s in data['data_samples']]
                rounds.append(torch.cat(feats))
                labels = torch.tensor(round_labels) if labels is None else labels
        model.train(was_training)
        feats = torch.cat(rounds, dim=1)  # (N, R * V, D)
        model.init_from_features(feats, labels)
        print_log(f'{type(model).__name__} initialised from {feats.shape[0]} training images x '
                  f'{feats.shape[1]} augmented views', logger='current')
