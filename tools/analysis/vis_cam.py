"""Saliency maps of an mmpretrain classifier or a CLIP (text prompt) for one image, with Decom-CAM
or any pytorch-grad-cam method, in the style of mmpretrain's ``tools/visualization/vis_cam.py``.

    # an mmpretrain config + checkpoint, the top class (or --target-category)
    python tools/analysis/vis_cam.py IMAGE CONFIG CHECKPOINT --method DecomCAM \\
        [--target-layers backbone.layer4] [--target-category 3] [--out-dir work_dirs/cam]
    # a CLIP image tower against a text prompt (the demo CLIP: 'mmext:demo-clip')
    python tools/analysis/vis_cam.py IMAGE --clip mmext:demo-clip --text "a red bag" \\
        --target-layers visual.trunk.blocks.6

Writes ``<out-dir>/<image>_<method>.png`` (image, saliency overlay) and, for Decom-CAM,
``<image>_<method>_sub_maps.png`` (the sub-maps with their integration weights). Token models
(ViT, DeiT, Swin, CLIP ViT) need ``--num-prefix-tokens`` (1 for a class token, 2 with a
distillation token, 0 for Swin) so their tokens are reshaped to a grid.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mmext  # noqa: E402, F401
from mmext.cam import (  # noqa: E402
    CAM_METHODS,
    ClassLogitTarget,
    CLIPImageModel,
    CLIPTextTarget,
    resolve_target_layers,
    token_reshape_transform,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image')
    parser.add_argument('config', nargs='?', help='mmpretrain config (not with --clip)')
    parser.add_argument('checkpoint', nargs='?', help='its checkpoint')
    parser.add_argument('--clip', help="an OpenCLIPModel name, e.g. 'mmext:demo-clip'")
    parser.add_argument('--text', help='the text prompt a CLIP map explains')
    parser.add_argument('--method', default='DecomCAM',
                        help='a CAM_METHODS name: DecomCAM, GradCAM, GradCAMPlusPlus, XGradCAM, '
                        'ScoreCAM, LayerCAM, EigenCAM, HiResCAM')
    parser.add_argument('--target-layers', nargs='+',
                        help='module names (default: the backbone\'s last stage / the CLIP '
                        'trunk\'s last block)')
    parser.add_argument('--target-category', type=int,
                        help='class index (default: the top prediction)')
    parser.add_argument('--num-prefix-tokens', type=int,
                        help='token models: tokens before the patch grid (reshaped to (D, h, w))')
    parser.add_argument('--num-components', type=int, default=10, help='Decom-CAM: n')
    parser.add_argument('--out-dir', type=Path, default=Path('work_dirs/cam'))
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    if args.clip is None and (args.config is None or args.checkpoint is None):
        parser.error('give CONFIG and CHECKPOINT (an mmpretrain classifier) or --clip NAME')
    if args.text is not None and args.clip is None:
        parser.error('--text needs a CLIP model: add --clip NAME (e.g. mmext:demo-clip)')
    if args.clip is not None and args.text is None:
        parser.error('--clip needs --text, the prompt the map explains')
    if args.method not in CAM_METHODS.module_dict:
        parser.error(f'unknown --method {args.method!r}; known: {sorted(CAM_METHODS.module_dict)}')
    return args


def load_image(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        return np.asarray(Image.open(path).convert('RGB'))
    except FileNotFoundError:
        raise SystemExit(f'image {path} does not exist') from None
    except UnidentifiedImageError:
        raise SystemExit(f'{path} is not an image PIL can read (damaged or another format)') \
            from None


def classifier_input(args, rgb: np.ndarray):
    """(model, input (1, 3, H, W), display image, default layers, category names)."""
    from mmengine.dataset import Compose
    from mmpretrain.apis import get_model
    model = get_model(args.config, args.checkpoint, device=args.device)
    model.eval()
    pipeline = [t for t in model._config.test_dataloader.dataset.pipeline
                if t['type'] not in ('LoadImageFromFile', 'PackInputs')]
    grey = len(model.data_preprocessor.mean) == 1  # a 1-channel model (Fashion-MNIST demo)
    source = rgb.mean(-1, keepdims=True).round().astype(np.uint8) if grey else rgb[..., ::-1]
    data = Compose(pipeline)(dict(img=source.copy()))  # mmpretrain works in BGR
    image = data['img']
    if image.ndim == 2:
        image = image[..., None]
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    inputs = model.data_preprocessor(dict(inputs=tensor), False)['inputs']
    stages = list(model.backbone.named_children()) if hasattr(model, 'backbone') else []
    default = [f'backbone.{stages[-1][0]}'] if stages else []
    classes = (getattr(model, 'dataset_meta', {}) or {}).get('classes')
    if classes is None:  # a checkpoint without dataset_meta: the config's test set names them
        from mmpretrain.registry import DATASETS
        try:
            dataset = DATASETS.get(model._config.test_dataloader.dataset.type)
            classes = dataset.METAINFO.get('classes')
        except (AttributeError, KeyError, TypeError):
            classes = None
    display = np.repeat(image, 3, -1) if image.shape[-1] == 1 else image[..., ::-1]
    return model, inputs, display, default, classes


def clip_input(args, rgb: np.ndarray):
    import torch.nn.functional as F

    from mmext.clip import OpenCLIPModel
    clip = OpenCLIPModel(args.clip)
    size = clip.clip.visual.image_size
    size = size if isinstance(size, (tuple, list)) else (size, size)
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in clip.image_mean_std)
    display = (x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    model = CLIPImageModel(clip).to(args.device)
    names = [n for n, _ in model.named_modules()]
    default = [n for n in names if n.startswith('visual.trunk.blocks.') and n.count('.') == 3][-1:]
    default = default or [n for n in names if n.startswith('visual.transformer.resblocks.')
                          and n.count('.') == 3][-1:]
    return model, (x - mean) / std, display, default, clip


def draw(display: np.ndarray, saliency: np.ndarray, title: str, path: Path, sub_maps=None,
         weights=None) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
    axes[0].imshow(display)
    axes[1].imshow(display)
    axes[1].imshow(saliency, cmap='jet', alpha=0.5)
    axes[1].set_title(title, fontsize=8)
    for ax in axes:
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    if sub_maps is None:
        return
    n = len(sub_maps)
    fig, axes = plt.subplots(1, n, figsize=(1.8 * n, 2.1), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(display)
        ax.imshow(sub_maps[i], cmap='jet', alpha=0.5)
        ax.set_title(f'M{i + 1}  w={weights[i]:.2f}', fontsize=7)
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(path.with_name(path.stem + '_sub_maps.png'), dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    rgb = load_image(args.image)
    if args.clip:
        model, inputs, display, default, clip = clip_input(args, rgb)
        targets = CLIPTextTarget.from_prompts(clip, [args.text])
        what = f'"{args.text}"'
    else:
        model, inputs, display, default, classes = classifier_input(args, rgb)
        with torch.no_grad():
            logits = model(inputs)
        category = args.target_category
        if category is None:
            category = int(logits.argmax(-1))
        elif not 0 <= category < logits.shape[-1]:
            raise SystemExit(f'--target-category {category} is outside the model\'s '
                             f'{logits.shape[-1]} classes')
        targets = [ClassLogitTarget(category)]
        what = classes[category] if classes else f'class {category}'
    if not (args.target_layers or default):
        raise SystemExit('no default target layer for this model: name one with --target-layers')
    layers = resolve_target_layers(model, args.target_layers or default)
    reshape = (token_reshape_transform(args.num_prefix_tokens)
               if args.num_prefix_tokens is not None else None)
    kwargs = dict(model=model, target_layers=layers, reshape_transform=reshape)
    if args.method == 'DecomCAM':
        kwargs['num_components'] = args.num_components
    with CAM_METHODS.get(args.method)(**kwargs) as cam:
        saliency = cam(inputs.to(args.device), targets)[0]
        sub_maps = getattr(cam, 'last_sub_maps', None)
        weights = getattr(cam, 'last_weights', None)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f'{Path(args.image).stem}_{args.method}.png'
    draw(display, saliency, f'{args.method}: {what}', path,
         None if sub_maps is None else sub_maps[0], None if weights is None else weights[0])
    print(f'{args.method} map of {what} written to {path}' +
          (f' (sub-maps: {path.stem}_sub_maps.png)' if sub_maps is not None else ''))


if __name__ == '__main__':
    main()
