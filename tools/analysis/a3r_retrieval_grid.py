"""Retrieval grids of A3R: for a few text queries, the top 5 gallery images before and after
re-ranking, true images framed in green.

    python tools/analysis/a3r_retrieval_grid.py \
        configs/a3r/a3r_demo-clip_1xb32-5e_fashion-retrieval_adapt-krecip.py CHECKPOINT \
        [--num-queries 6] [--out projects/a3r/retrieval_grid_fashion-retrieval.png]

CONFIG is an evaluation config with a re-ranker; its test set gives the gallery and the queries.
The queries shown are those whose top 5 the re-ranker changes most (then the first ones).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='the retriever (default: none, zero-shot)')
    parser.add_argument('--num-queries', type=int, default=6)
    parser.add_argument('--top', type=int, default=5)
    parser.add_argument('--out', type=Path,
                        default=Path('work_dirs/a3r/retrieval_grid_fashion-retrieval.png'))
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, as in tools/test.py')
    return parser.parse_args(argv)


@torch.no_grad()
def embed(model, dataset, batch: int = 64):
    """Gallery (N, D), flipped gallery (N, D), captions (T, D), items."""
    from mmengine.dataset import default_collate
    images, flips, texts, samples = [], [], [], []
    for start in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        data = model.data_preprocessor(default_collate(items), False)
        feats = model.extract_feat(data['images'], data['data_samples'])
        images.append(feats['image_feat'])
        flips.append(feats['image_feat_flip'])
        texts.append(feats['text_feat'])
        samples.extend(data['data_samples'])
    return torch.cat(images), torch.cat(flips), torch.cat(texts), samples


def main(argv=None):
    args = parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS

    import mmext  # noqa: F401
    from projects.a3r import stage1_scores
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.model.get('reranker') is None:
        raise SystemExit(f'{args.config} has no reranker: use a child config with one '
                         '(e.g. ..._adapt-krecip.py)')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model).eval()
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    gallery, flipped, captions, samples = embed(model, dataset)
    texts = [t for s in samples for t in s.text]
    truths = [set(g) for s in samples for g in s.gt_image_id]
    reranker = model.reranker
    before = stage1_scores(captions, gallery, flipped).argsort(1, descending=True)
    after = torch.stack([reranker(t, gallery, flipped).order for t in captions])
    change = [len(set(before[j, :args.top].tolist()) ^ set(after[j, :args.top].tolist()))
              for j in range(len(texts))]
    queries = sorted(range(len(texts)), key=lambda j: (-change[j], j))[:args.num_queries]
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]

    from PIL import Image
    columns = 2 * args.top
    fig, axes = plt.subplots(len(queries), columns, figsize=(1.3 * columns, 1.6 * len(queries)),
                             squeeze=False)
    for row, j in enumerate(queries):
        for part, order in enumerate((before[j], after[j])):
            for k in range(args.top):
                ax = axes[row, part * args.top + k]
                index = int(order[k])
                ax.imshow(np.asarray(Image.open(paths[index]).convert('RGB')))
                ax.set_xticks([])
                ax.set_yticks([])
                hit = index in truths[j]
                for spine in ax.spines.values():
                    spine.set_edgecolor('limegreen' if hit else 'lightgrey')
                    spine.set_linewidth(3 if hit else 1)
                if row == 0 and k == 0:
                    ax.set_title('stage 1' if part == 0 else 're-ranked', fontsize=8,
                                 loc='left')
        axes[row, 0].set_ylabel(texts[j], fontsize=6, rotation=0, ha='right', va='center')
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    hits = lambda order: np.mean([bool(set(order[j, :1].tolist()) & truths[j])  # noqa: E731
                                  for j in range(len(texts))])
    print(f'R@1 stage 1 {100 * hits(before):.1f}, re-ranked {100 * hits(after):.1f} over '
          f'{len(texts)} queries; grid of {len(queries)} queries -> {args.out}')


if __name__ == '__main__':
    main()
