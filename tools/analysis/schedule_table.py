"""Print each method's training schedules as the merged configs have them, beside the papers'.

    python tools/analysis/schedule_table.py qdetr          # one method's tables (markdown)
    python tools/analysis/schedule_table.py --check        # exit 1 when a config disagrees
    python tools/analysis/schedule_table.py qdetr --update projects/qdetr/README.md

Every production config of the method is read with ``Config.fromfile`` (so ``_base_``
inheritance is resolved) and summarised by ``mmext.utils.schedule_summary``; configs with the
same schedule share a row (named by the entry's file patterns when all share one). The first
row of each table is what the paper prescribes (or the choice the configs make where the paper
is silent, which the table's heading says); a merged value that differs is shown in bold with
the paper's in brackets. ``--update`` rewrites the block between ``<!-- schedule-table:METHOD -->`` and
``<!-- /schedule-table -->`` in a README (the tests check that block is current).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mmengine.config import Config  # noqa: E402

from mmext.utils.schedule_summary import (  # noqa: E402
    FIELDS,
    PAPER_SCHEDULES,
    format_value,
    schedule_mismatches,
    summarize_schedule,
)

METHODS = ('qdetr', 'bivit', 'dcpnas', 'mvpseg')
START, END = '<!-- schedule-table:{} -->', '<!-- /schedule-table -->'


def entry_configs(entry: dict) -> list[Path]:
    """The config files an entry's patterns match, sorted."""
    found = set()
    for pattern in entry['patterns']:
        found.update(p for p in (REPO / 'configs').glob(pattern) if p.suffix == '.py')
    return sorted(found)


def method_tables(method: str) -> str:
    """Markdown: one table per schedule entry of ``method``."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        blocks = []
        for entry in (e for e in PAPER_SCHEDULES if e['method'] == method):
            fields = [f for f in FIELDS if f in entry['expect']]
            rows: dict[tuple, list[str]] = {}
            for path in entry_configs(entry):
                summary = summarize_schedule(Config.fromfile(str(path)), path, entry.get('part'))
                wrong = schedule_mismatches(summary, entry['expect'])
                cells = tuple(
                    f'**{format_value(f, summary[f])}** ({format_value(f, entry["expect"][f])})'
                    if f in wrong else format_value(f, summary[f]) for f in fields)
                rows.setdefault(cells, []).append(path.name)
            part = f" (optimizer '{entry['part']}')" if entry.get('part') else ''
            lines = [f"{entry['source']}{part}:", '',
                     '| configs | ' + ' | '.join(f.replace('_', ' ') for f in fields) + ' |',
                     '|---' * (len(fields) + 1) + '|',
                     '| paper / spec | ' + ' | '.join(format_value(f, entry['expect'][f])
                                                      for f in fields) + ' |']
            for cells, names in rows.items():
                if len(rows) == 1 and len(names) > 2:  # all alike: the patterns say which
                    label = ', '.join(f'`{Path(p).name}`' for p in entry['patterns'])
                    label += f' ({len(names)} configs)'
                else:
                    label = '<br>'.join(f'`{n}`' for n in names)
                lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
            blocks.append('\n'.join(lines))
    return '\n\n'.join(blocks)


def update_readme(readme: Path, method: str, tables: str) -> bool:
    """Replace the method's marked block in ``readme``; True when the text changed."""
    text = readme.read_text()
    start, end = START.format(method), END
    if start not in text or end not in text[text.index(start):]:
        raise SystemExit(f'{readme} has no block between {start} and {end}: add the two '
                         'markers where the table goes')
    head, rest = text.split(start, 1)
    tail = rest[rest.index(end):]
    new = f'{head}{start}\n{tables}\n{tail}'
    readme.write_text(new)
    return new != text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('methods', nargs='*', default=list(METHODS),
                        help=f"any of {', '.join(METHODS)} (default: all)")
    parser.add_argument('--update', type=Path, help='rewrite the marked block of this README')
    parser.add_argument('--check', action='store_true',
                        help='print nothing but mismatches; exit 1 when there is one')
    args = parser.parse_args()
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method {', '.join(unknown)}: choose from {', '.join(METHODS)}")
    if args.check:
        bad = [line for m in args.methods for line in method_tables(m).splitlines()
               if '**' in line]
        print('\n'.join(bad) or 'every merged config matches its paper schedule')
        return 1 if bad else 0
    for method in args.methods:
        tables = method_tables(method)
        if args.update:
            changed = update_readme(args.update, method, tables)
            print(f"{args.update}: {method} {'updated' if changed else 'already current'}")
        else:
            print(f'## {method}\n\n{tables}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
