"""Resume after SIGKILL at the demo's scale: per model, an uninterrupted run against a run killed
after a checkpoint and resumed with ``tools/train.py --resume``; same final weights?

    python benchmarks/resume_check.py                       # every model
    python benchmarks/resume_check.py --models detector --quick

Per model the script trains the demo config for ``total`` units (iterations or epochs) with a
checkpoint after each, once without interruption and once killed (SIGKILL) as soon as the
checkpoint of unit ``kill_at`` is complete, then resumed. Data loading runs in the main process
(``num_workers=0``): worker processes draw their seeds when a loader's iterator is created,
which a resumed run does at another moment (README, section 'Reliability'). The results file
records, per model, whether every tensor of the final state dict is equal, the largest
difference and the tensors that differ.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import mmext  # noqa: E402,F401  (safe loading of mmengine checkpoints)
from mmext.utils.atomic import atomic_write  # noqa: E402

OUT = REPO / 'benchmarks/results/resume_check.json'
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# The students' float teachers, trained briefly here when missing (resuming does not depend on
# how good a teacher is): name: (config, unit, total, extra options, checkpoint)
TEACHERS = {
    'qdetr_student': ('configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py',
                      'iter', 20, [], 'work_dirs/benchmarks/resume_check/qdetr_teacher/iter_20.pth'),
    'bivit': ('configs/bivit/deit-tiny-p4_1xb128-20e_fashion-mnist.py', 'epoch', 1,
              ['train_dataloader.dataset.indices=2048'],
              'work_dirs/benchmarks/resume_check/bivit_teacher/epoch_1.pth'),
}
# name: (config, unit, total, kill_at, extra options)
MODELS = {
    'detector': ('configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py',
                 'iter', 40, 17, []),
    'qdetr_student': (
        'configs/qdetr/qdetr_conditional-detr_mobilenetv2-s16_w4a4-attn8_fashion-scenes.py',
        'iter', 30, 13, [f"model.teacher.checkpoint={TEACHERS['qdetr_student'][-1]}",
                         f"load_from={TEACHERS['qdetr_student'][-1]}"]),
    'bivit': ('configs/bivit/bivit_deit-tiny-p4_1xb128-20e_fashion-mnist.py', 'epoch', 3, 1,
              ['train_dataloader.dataset.indices=2048',
               f"model.teacher.checkpoint={TEACHERS['bivit'][-1]}",
               f"load_from={TEACHERS['bivit'][-1]}"]),
    'dcpnas_search': ('configs/dcpnas/dcpnas_search_fashion-mnist.py', 'epoch', 2, 1,
                      ['train_cfg.arch_dataloader.num_workers=0',
                       'train_cfg.arch_dataloader.persistent_workers=False',
                       # 2 search steps of 32 images per epoch (13 s each here)
                       'train_dataloader.dataset.indices=64',
                       'train_cfg.arch_dataloader.dataset.indices=64']),
    'fadm_animator': ('configs/fadm/animator_demo_moving-fashion.py', 'iter', 60, 23, []),
}


def options(unit: str, total: int, extra: list[str]) -> list[str]:
    opts = ['randomness.seed=0', 'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=-1', 'default_hooks.logger.interval=10',
            'train_cfg.val_begin=100000']          # no validation: weights only
    opts += [f'train_cfg.max_iters={total}', f'train_cfg.val_interval={10 * total}',
             'default_hooks.checkpoint.by_epoch=False'] if unit == 'iter' else \
        [f'train_cfg.max_epochs={total}', f'train_cfg.val_interval={10 * total}']
    for loader in LOADERS:
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    return opts + extra


def train(config: str, work: Path, opts: list[str], resume: bool = False,
          kill_at: str | None = None) -> int:
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', str(work)] + \
        (['--resume'] if resume else ['--overwrite']) + ['--cfg-options', *opts]
    log = (work.parent / f'{work.name}{"_resumed" if resume else ""}.out')
    work.parent.mkdir(parents=True, exist_ok=True)
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONWARNINGS='ignore'))
        while kill_at and proc.poll() is None:
            last = work / 'last_checkpoint'
            if last.is_file() and last.read_text().strip().endswith(kill_at):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        code = proc.wait()
    if code not in (0, -signal.SIGKILL):
        raise RuntimeError(f'{" ".join(cmd)} failed ({code}); see {log}')
    return code


def compare(a: Path, b: Path) -> dict:
    sa = torch.load(a, map_location='cpu')['state_dict']
    sb = torch.load(b, map_location='cpu')['state_dict']
    differ = [k for k in sa if k not in sb or not torch.equal(sa[k], sb[k])]
    largest = max((float((sa[k].float() - sb[k].float()).abs().max()) for k in differ
                   if k in sb and sa[k].shape == sb[k].shape and sa[k].is_floating_point()),
                  default=0.0)
    return dict(equal=not differ and sa.keys() == sb.keys(), tensors=len(sa),
                differing=len(differ), first_differing=differ[:5], max_abs_difference=largest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--quick', action='store_true', help='3 units, killed after the first')
    parser.add_argument('--out', type=Path, default=OUT)
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results['command'] = 'python benchmarks/resume_check.py ' + ' '.join(sys.argv[1:])
    root = REPO / f'work_dirs/benchmarks/resume_check{"_quick" if args.quick else ""}'
    failed = []
    for name in args.models:
        config, unit, total, kill_at, extra = MODELS[name]
        if args.quick:
            total, kill_at = 3, 1
        opts = options(unit, total, extra)
        final = f'{unit}_{total}.pth'
        whole, killed = root / name / 'whole', root / name / 'killed'
        print(f'{name}: {total} {unit}s, killed after {unit} {kill_at}', flush=True)
        start = time.time()
        try:
            if name in TEACHERS and not (REPO / TEACHERS[name][-1]).is_file():
                t_config, t_unit, t_total, t_extra, t_checkpoint = TEACHERS[name]
                train(t_config, (REPO / t_checkpoint).parent, options(t_unit, t_total, t_extra))
            if not (whole / final).is_file():
                train(config, whole, opts)
            if not (killed / final).is_file():
                if not (killed / 'last_checkpoint').is_file():
                    code = train(config, killed, opts, kill_at=f'{unit}_{kill_at}.pth')
                    if code != -signal.SIGKILL:
                        raise RuntimeError(f'{name}: the run ended before it could be killed')
                train(config, killed, opts, resume=True)
        except RuntimeError as error:       # a failed run: recorded, and the exit code says so
            results.setdefault('models', {})[name] = dict(config=config, error=str(error))
            atomic_write(args.out, json.dumps(results, indent=2) + '\n')
            print(f'  not run: {error}', flush=True)
            failed.append(name)
            continue
        row = compare(whole / final, killed / final)
        row.update(config=config, unit=unit, total=total, killed_after=kill_at,
                   minutes=round((time.time() - start) / 60, 1))
        results.setdefault('models', {})[name] = row
        atomic_write(args.out, json.dumps(results, indent=2) + '\n')
        print(f"  equal: {row['equal']} ({row['differing']} of {row['tensors']} tensors differ, "
              f"largest difference {row['max_abs_difference']:.3g})", flush=True)
        if not row['equal']:
            failed.append(name)
    if failed:
        raise SystemExit(f'not equal or not run: {", ".join(failed)} (see {args.out})')


if __name__ == '__main__':
    main()
