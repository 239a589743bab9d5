"""`make demo`: the main job of mmext on embedded data, end to end with the stock tools.

1. generate the Fashion Scenes set (tools/data/make_fashion_scenes.py; kept if up to date);
2. train the demo detector (Conditional DETR, ImageNet MobileNetV2) with tools/train.py;
3. evaluate the final checkpoint with tools/test.py (COCO bbox metrics, drawn detections);
4. print the learning curve and the final metrics, and write them to WORK_DIR/demo_summary.json.

    python tools/demo.py [--work-dir work_dirs/demo] [--cfg-options ...]
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
CONFIG = 'configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'
METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75')
console = Console()


def run(step: str, *args: str) -> float:
    """Run a tool from the repo root; return its wall time in seconds."""
    console.rule(f'[bold]{step}')
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=REPO, check=True)
    return time.perf_counter() - start


def read_scalars(run_dir: Path) -> list[dict]:
    """The entries of mmengine's LocalVisBackend log (``vis_data/scalars.json``) of a train run."""
    files = sorted(run_dir.glob('*/vis_data/scalars.json'))
    if not files:
        raise FileNotFoundError(f'no vis_data/scalars.json under {run_dir}')
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def read_test_metrics(run_dir: Path) -> dict:
    """The metrics a tools/test.py run wrote to ``<timestamp>/<timestamp>.json``."""
    files = sorted(p for p in run_dir.glob('*/*.json') if p.stem == p.parent.name)
    if not files:
        raise FileNotFoundError(f'no <timestamp>/<timestamp>.json under {run_dir}')
    return {k: v for k, v in json.loads(files[-1].read_text()).items() if k in METRICS}


def learning_curve(entries: list[dict]) -> list[dict]:
    """Validation mAP after each evaluated iteration, with the training minutes spent to reach it.

    Training entries carry ``step`` (the iteration) and ``time`` (mean seconds per iteration);
    validation entries of an iteration-based loop carry no useful step, so they take the
    iteration of the training entry before them.
    """
    curve, seconds, last_step = [], 0.0, 0
    for entry in entries:
        if 'loss' in entry:
            seconds += entry['time'] * (entry['step'] - last_step)
            last_step = entry['step']
        elif 'coco/bbox_mAP' in entry:
            curve.append(dict(iteration=last_step, train_minutes=round(seconds / 60, 1),
                              **{k: entry[k] for k in METRICS}))
    return curve


def summarize(work: Path, checkpoint: str) -> dict:
    """Print the learning curve and the test metrics of a demo run; return them."""
    curve = learning_curve(read_scalars(work / 'train'))
    final = read_test_metrics(work / 'test')
    table = Table(title='Learning curve on the val canvases (tools/train.py)')
    for col in ('iteration', 'train min', 'bbox mAP', 'mAP_50', 'mAP_75'):
        table.add_column(col, justify='right')
    for row in curve:
        table.add_row(str(row['iteration']), f"{row['train_minutes']:.1f}",
                      *(f'{row[k]:.3f}' for k in METRICS))
    console.print(table)
    console.print(f'[bold]tools/test.py on {checkpoint}[/]: COCO bbox mAP (0.5:0.95) '
                  f"[bold green]{final['coco/bbox_mAP']:.3f}[/], mAP_50 "
                  f"{final['coco/bbox_mAP_50']:.3f}, mAP_75 {final['coco/bbox_mAP_75']:.3f}")
    return dict(config=CONFIG, checkpoint=checkpoint, curve=curve, test=final)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--cfg-options', nargs='+', default=[])
    args = parser.parse_args()
    work = Path(args.work_dir)
    options = ['--cfg-options', *args.cfg_options] if args.cfg_options else []

    start = time.perf_counter()
    data_s = run('1/3 data: Fashion Scenes', 'tools/data/make_fashion_scenes.py')
    train_s = run('2/3 train: tools/train.py', 'tools/train.py', CONFIG, '--work-dir',
                  str(work / 'train'), *options)
    checkpoint = (work / 'train' / 'last_checkpoint').read_text().strip()
    test_s = run('3/3 test: tools/test.py', 'tools/test.py', CONFIG, checkpoint, '--work-dir',
                 str(work / 'test'), '--show-dir', 'detections', *options)
    total_s = time.perf_counter() - start

    summary = summarize(work, checkpoint)
    console.print(f'wall time: data {data_s / 60:.1f} min, train {train_s / 60:.1f} min, '
                  f'test {test_s / 60:.1f} min, total {total_s / 60:.1f} min')
    console.print(f"drawn detections: {work / 'test'}/<timestamp>/detections/")
    summary['minutes'] = dict(data=data_s / 60, train=train_s / 60, test=test_s / 60,
                              total=total_s / 60)
    (work / 'demo_summary.json').write_text(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
