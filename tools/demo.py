"""`make demo`: the main job of mmext on embedded data, end to end with the stock tools.

1. generate the Fashion Scenes set (tools/data/make_fashion_scenes.py; kept if up to date);
2. train the float demo detector (Conditional DETR, ImageNet MobileNetV2) with tools/train.py;
3. evaluate it with tools/test.py (COCO bbox metrics, drawn detections);
4. train the 4-bit LSQ baseline (W-A-Attn 4-4-8) from it by QAT, its steps calibrated first
   (MSE, as the config says), and evaluate it;
5. train the 4-bit Q-DETR student (distribution alignment + DRD distillation, the float detector
   as teacher) from it the same way, and evaluate it (student and teacher detections drawn side
   by side);
6. count the theoretical acceleration (tools/analysis/count_ops.py);
7. print the learning curve and one table (float / 4-bit baseline / Q-DETR mAP, acceleration),
   and write them to WORK_DIR/demo_summary.json (and to --results, paths relative to the clone).

    python tools/demo.py [--work-dir work_dirs/demo] [--student-iters 120]
                         [--float-checkpoint PTH] [--results JSON] [--cfg-options ...]
"""
import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # mmext from a plain clone too
from mmext.utils.run_logs import read_scalars, relative_paths  # noqa: E402
from mmext.utils.schedule import iter_schedule_options  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = 'configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'
QDETR_CONFIG = 'configs/qdetr/qdetr_conditional-detr_mobilenetv2-s16_w4a4-attn8_fashion-scenes.py'
LSQ_BASELINE = ['model.distribution_alignment=None', 'model.teacher=None']
METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75')
console = Console()


def run(step: str, *args: str) -> float:
    """Run a tool from the repo root; return its wall time in seconds."""
    console.rule(f'[bold]{step}')
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=REPO, check=True)
    return time.perf_counter() - start


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


def summarize_float(work: Path, checkpoint: str) -> dict:
    """Print the learning curve and the test metrics of the float run; return them."""
    curve = learning_curve(read_scalars(work / 'train')) if (work / 'train').is_dir() else []
    final = read_test_metrics(work / 'test')
    if not curve:
        return dict(config=CONFIG, checkpoint=checkpoint, curve=curve, test=final)
    table = Table(title='Learning curve on the val canvases (tools/train.py)')
    for col in ('iteration', 'train min', 'bbox mAP', 'mAP_50', 'mAP_75'):
        table.add_column(col, justify='right')
    for row in curve:
        table.add_row(str(row['iteration']), f"{row['train_minutes']:.1f}",
                      *(f'{row[k]:.3f}' for k in METRICS))
    console.print(table)
    return dict(config=CONFIG, checkpoint=checkpoint, curve=curve, test=final)


def steps_start(train_dir: Path) -> str:
    """How a student's quantizer steps started, from its training log: the calibration report
    line of mmext.QuantCalibrationHook, else LSQ's initialisation."""
    logs = sorted(train_dir.glob('*/*.log'))
    text = logs[-1].read_text() if logs else ''
    found = re.search(r'quantizer calibration: weights (.*?); activations (.*?) over', text)
    if not found:
        return 'LSQ initialisation'
    weights, inputs = (sorted(set(re.findall(r'by (\w+)', part))) for part in found.groups())
    return f"calibrated (inputs {'/'.join(inputs) or '-'}, weights {'/'.join(weights) or '-'})"


def quantized_table(float_run: dict, students: dict, ops: dict) -> Table:
    """float / 4-bit LSQ baseline / Q-DETR: bits, QAT iterations, COCO mAP, AP50 and the
    theoretical acceleration under both OPs conventions (the two students count the same)."""
    speedup = {c: ops['conventions'][c]['acceleration'] for c in ('bireal64', 'linear32')}
    table = Table(title='Float detector and its 4-bit students (tools/test.py on the 500 val '
                  'canvases)')
    for col in ('model', 'W-A-Attn', 'steps from', 'QAT it.', 'bbox mAP', 'mAP_50',
                'acceleration (bireal64 / linear32)'):
        table.add_column(col, justify='left' if col in ('model', 'steps from') else 'right')
    table.add_row('float Conditional DETR (teacher)', '32-32-32', '-', '-',
                  f"{float_run['test']['coco/bbox_mAP']:.3f}",
                  f"{float_run['test']['coco/bbox_mAP_50']:.3f}", '1.00x / 1.00x')
    for name, run in students.items():
        table.add_row(name, '4-4-8', run['steps'], str(run['iters']),
                      f"{run['test']['coco/bbox_mAP']:.3f}",
                      f"{run['test']['coco/bbox_mAP_50']:.3f}",
                      f"{speedup['bireal64']:.2f}x / {speedup['linear32']:.2f}x")
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--student-iters', type=int, default=120,
                        help='QAT iterations of each 4-bit student (the 30-minute budget)')
    parser.add_argument('--float-checkpoint',
                        help='use this float demo detector instead of training one')
    parser.add_argument('--skip-data', action='store_true',
                        help='do not generate Fashion Scenes (the --cfg-options point elsewhere)')
    parser.add_argument('--results', type=Path,
                        help='also write the summary here (e.g. benchmarks/results/demo.json)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='passed to every tools/train.py and tools/test.py run')
    args = parser.parse_args()
    work = Path(args.work_dir)
    user = args.cfg_options
    minutes = {}

    def timed(key: str, step: str, *tool_args: str) -> None:
        minutes[key] = run(step, *tool_args) / 60

    start = time.perf_counter()
    if not args.skip_data:
        timed('data', '1/7 data: Fashion Scenes', 'tools/data/make_fashion_scenes.py')
    if args.float_checkpoint:
        checkpoint = args.float_checkpoint
    else:
        timed('float_train', '2/7 float detector: tools/train.py', 'tools/train.py', CONFIG,
              '--work-dir', str(work / 'train'), '--cfg-options', 'randomness.seed=0', *user)
        checkpoint = (work / 'train' / 'last_checkpoint').read_text().strip()
    timed('float_test', '3/7 float detector: tools/test.py', 'tools/test.py', CONFIG, checkpoint,
          '--work-dir', str(work / 'test'), '--show-dir', 'detections', '--cfg-options',
          'randomness.seed=0', *user)

    # QAT from the float detector, which is also Q-DETR's teacher; evaluated by tools/test.py
    schedule = iter_schedule_options(args.student_iters, validate=False)
    students = {}
    for step, (name, key, options) in enumerate((
            ('4-bit LSQ baseline', 'baseline', LSQ_BASELINE),
            ('4-bit Q-DETR (DA + FQM / DRD)', 'qdetr',
             [f'model.teacher.checkpoint={checkpoint}'])), start=4):
        options = options + ['randomness.seed=0']
        student = work / key
        timed(f'{key}_train', f'{step}/7 {name}: tools/train.py', 'tools/train.py',
              QDETR_CONFIG, '--work-dir', str(student / 'train'), '--cfg-options', *options,
              f'load_from={checkpoint}', *schedule, *user)
        student_checkpoint = (student / 'train' / 'last_checkpoint').read_text().strip()
        show = ['--show-dir', 'detections'] if key == 'qdetr' else []  # teacher | student
        timed(f'{key}_test', f'{step}/7 {name}: tools/test.py', 'tools/test.py', QDETR_CONFIG,
              student_checkpoint, '--work-dir', str(student / 'test'), *show,
              '--cfg-options', *options, *user)
        students[name] = dict(config=QDETR_CONFIG, options=options, iters=args.student_iters,
                              checkpoint=student_checkpoint,
                              steps=steps_start(student / 'train'),
                              test=read_test_metrics(student / 'test'))
    ops_file = work / 'qdetr' / 'ops.json'
    timed('count_ops', '6/7 theoretical acceleration: tools/analysis/count_ops.py',
          'tools/analysis/count_ops.py', QDETR_CONFIG, '--shape', '128', '128', '--quiet',
          '--out', str(ops_file))
    ops = json.loads(ops_file.read_text())
    minutes['total'] = (time.perf_counter() - start) / 60

    console.rule('[bold]7/7 results')
    summary = summarize_float(work, checkpoint)
    console.print(quantized_table(summary, students, ops))
    console.print('wall time (min): ' + ', '.join(f'{k} {v:.1f}' for k, v in minutes.items()))
    pairs = work / 'qdetr' / 'test' / 'detections' / 'teacher_vs_student'
    console.print(f"drawn detections: {work / 'test'}/<timestamp>/detections/ (float), "
                  f'{pairs}/ (Q-DETR student | teacher)')
    summary.update(students=students, ops=dict(input_shape=ops['input_shape'],
                                              conventions=ops['conventions']), minutes=minutes)
    summary = relative_paths(summary, REPO)
    for path in filter(None, (work / 'demo_summary.json', args.results)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2) + '\n')
        console.print(f'summary written to {path}')


if __name__ == '__main__':
    main()
