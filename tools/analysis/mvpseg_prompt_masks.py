"""Draw what each learned prompt view of an MVP-SEG model segments: a grid with, per image, the
input, the ground truth, the mask of every view alone (argmax of S_k over all classes), and the
final prediction (views merged, global prompt refining applied when the model has it).

    python tools/analysis/mvpseg_prompt_masks.py CONFIG CHECKPOINT --out masks.png
                                                 [--num-images 6] [--cfg-options k=v ...]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import DictAction

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mmext  # noqa: E402, F401
import projects.mvpseg  # noqa: E402, F401
from projects.mvpseg.analysis import load_model_and_test_set  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="checkpoint, or 'none' for the model as built")
    parser.add_argument('--out', type=Path, required=True, help='PNG file to write')
    parser.add_argument('--num-images', type=int, default=6)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    out = np.zeros(labels.shape + (3, ), np.uint8)
    valid = labels < len(palette)
    out[valid] = palette[labels[valid]]
    return out


@torch.no_grad()
def main():
    args = parse_args()
    from mmengine.dataset import pseudo_collate
    model, dataset = load_model_and_test_set(args.config, args.checkpoint, args.cfg_options)
    head = model.decode_head
    palette = np.array(dataset.metainfo['palette'], np.uint8)
    batch = pseudo_collate([dataset[i] for i in range(min(args.num_images, len(dataset)))])
    data = model.data_preprocessor(batch, False)
    feats = model.extract_feat(data['inputs'])
    all_classes = list(range(head.num_classes))
    per_view, _ = head.view_logits(feats, all_classes)  # (B, K, C, h, w)
    final = head(feats)
    samples = data['data_samples']
    size = samples[0].gt_sem_seg.data.shape[-2:]

    def labels(logits):
        return F.interpolate(logits, size=size, mode='bilinear').argmax(1).numpy()

    views = [labels(per_view[:, k]) for k in range(per_view.shape[1])]
    merged = labels(final)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    titles = ['image', 'ground truth'] + [f'view {k + 1}' for k in range(len(views))] + [
        'merged' + (' + GPR' if head.gpr_cfg is not None else '')]
    rows = len(samples)
    fig, axes = plt.subplots(rows, len(titles), figsize=(1.8 * len(titles), 1.8 * rows + 0.9),
                             squeeze=False)
    for r, sample in enumerate(samples):
        image = batch['inputs'][r].permute(1, 2, 0).numpy()[..., ::-1]  # BGR -> RGB
        gt = sample.gt_sem_seg.data[0].numpy()
        panels = [image, colorize(gt, palette)] + [colorize(v[r], palette) for v in views] + [
            colorize(merged[r], palette)]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
    unseen = set(head.unseen)
    handles = [Patch(color=palette[i] / 255, label=name + (' (unseen)' if i in unseen else ''))
               for i, name in enumerate(head.class_names) if i < len(palette)]
    fig.legend(handles=handles, loc='lower center', ncol=min(6, len(handles)), fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f'prompt-view masks of {rows} images written to {args.out}')


if __name__ == '__main__':
    main()
