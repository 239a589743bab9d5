"""Complete the attributes that training captions miss with a CLIP's zero-shot judgement (A3R).

    python tools/a3r/attribute_augment.py ANN_FILE IMAGE_DIR VOCABULARY OUT_FILE \
        [--clip mmext:demo-clip] [--pretrained PATH] [--report REPORT.json]

    # the demo: the Fashion Scenes retrieval set and the demo CLIP
    python tools/a3r/attribute_augment.py data/fashion_retrieval/train_label.txt \
        data/fashion_scene_items projects/a3r/fashion_attributes.json \
        data/fashion_retrieval/train_label_augmented.txt

Reads an annotation file on the challenge's layout (``image$attributes$caption``) and an
attribute vocabulary (``projects/a3r/attributes.py`` describes the JSON), fills each missing
fillable slot with the completion whose caption the CLIP scores highest against the image,
never fills the slots marked ``"fill": false``, and writes the new annotation file and a report
(captions completed, per slot; captions left alone and why) beside it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from projects.a3r.attributes import AttributeVocabulary, augment_annotations  # noqa: E402
from projects.a3r.dataset import read_annotations, write_annotations  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', type=Path)
    parser.add_argument('image_dir', type=Path, help='folder the image names are relative to')
    parser.add_argument('vocabulary', type=Path, help='attribute vocabulary (JSON)')
    parser.add_argument('out_file', type=Path)
    parser.add_argument('--clip', default='mmext:demo-clip', help='an OpenCLIPModel name')
    parser.add_argument('--pretrained', default=None, help='weights of a named architecture')
    parser.add_argument('--report', type=Path, help='default: OUT_FILE with .report.json')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


class ZeroShotScorer:
    """``cos(f_img(image), f_txt(caption))`` for one image and its candidate captions."""

    def __init__(self, clip, device: str):
        self.clip, self.device = clip.to(device).eval(), device
        size = clip.clip.visual.image_size
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        mean, std = clip.image_mean_std
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, path: str, captions: list[str]) -> list[float]:
        from PIL import Image, UnidentifiedImageError
        try:
            image = Image.open(path).convert('RGB').resize(self.size[::-1], Image.BICUBIC)
        except (FileNotFoundError, UnidentifiedImageError) as e:
            raise SystemExit(f'cannot read the image {path} ({type(e).__name__}); fix the '
                             'annotation file or IMAGE_DIR') from None
        x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        x = ((x[None].float() / 255 - self.mean) / self.std).to(self.device)
        image_feat = self.clip.encode_image(x)
        text_feat = self.clip.encode_text(captions)
        return (text_feat @ image_feat[0]).tolist()


def main(argv=None):
    args = parse_args(argv)
    from mmext.clip import OpenCLIPModel
    lines = read_annotations(args.ann_file)
    vocabulary = AttributeVocabulary.from_json(args.vocabulary)
    scorer = ZeroShotScorer(OpenCLIPModel(args.clip, pretrained=args.pretrained), args.device)
    new_lines, report = augment_annotations(
        lines, vocabulary, scorer, lambda name: str(args.image_dir / name))
    write_annotations(args.out_file, new_lines)
    report.update(ann_file=str(args.ann_file), vocabulary=str(args.vocabulary), clip=args.clip)
    report_path = args.report or args.out_file.with_suffix('.report.json')
    report_path.write_text(json.dumps(report, indent=1) + '\n')
    print(f"{report['completed']} of {report['captions']} captions completed "
          f"({report['filled_per_slot']}); {report['already_complete']} already complete, "
          f"{report['other_domain']} of another domain, {report['no_anchor']} without a place "
          f'for the missing word. Wrote {args.out_file} and {report_path}')


if __name__ == '__main__':
    main()
