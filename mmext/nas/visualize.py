"""Cell pictures: a genotype's normal and reduction cells drawn with matplotlib."""
from __future__ import annotations

from pathlib import Path

from .genotype import Genotype

_OP_COLOURS = {'max_pool_3x3': '#8c564b', 'avg_pool_3x3': '#bcbd22', 'skip_connect': '#7f7f7f',
               'sep_conv_3x3': '#1f77b4', 'sep_conv_5x5': '#17becf', 'dil_conv_3x3': '#d62728',
               'dil_conv_5x5': '#ff7f0e'}


def draw_genotype(genotype: Genotype, path: str | Path, title: str = '') -> Path:
    """Draw both cells side by side into ``path`` (PNG): inputs c_{k-2}, c_{k-1} on the left,
    intermediate nodes 0..steps-1, the concatenated output c_{k} on the right; each edge is
    coloured and labelled by its operation."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, kind in zip(axes, ('normal', 'reduce')):
        edges = getattr(genotype, kind)
        concat = getattr(genotype, f'{kind}_concat')
        steps = len(edges) // 2
        pos = {0: (0.0, 0.75), 1: (0.0, 0.25), 'out': (steps + 1.0, 0.5)}
        for i in range(steps):
            pos[i + 2] = (i + 1.0, 0.9 - 0.8 * i / max(steps - 1, 1))
        for k, (op, source) in enumerate(edges):
            (x0, y0), (x1, y1) = pos[source], pos[2 + k // 2]
            colour = _OP_COLOURS.get(op, 'black')
            rad = 0.25 if k % 2 else -0.25
            ax.annotate('', (x1, y1), (x0, y0), arrowprops=dict(
                arrowstyle='-|>', color=colour, lw=1.6, shrinkA=14, shrinkB=14,
                connectionstyle=f'arc3,rad={rad}'))
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + (0.04 if k % 2 else -0.04), op, fontsize=7,
                    color=colour, ha='center', va='center',
                    bbox=dict(boxstyle='round,pad=0.1', fc='white', ec='none', alpha=0.8))
        for node in concat:
            ax.annotate('', pos['out'], pos[node], arrowprops=dict(
                arrowstyle='-|>', color='#bbbbbb', lw=1, ls='--', shrinkA=14, shrinkB=14))
        labels = {0: 'c_{k-2}', 1: 'c_{k-1}', 'out': 'c_{k}'}
        for node, (x, y) in pos.items():
            label = labels.get(node, str(node - 2) if isinstance(node, int) else node)
            ax.text(x, y, label, ha='center', va='center', fontsize=10, bbox=dict(
                boxstyle='circle' if isinstance(node, int) and node >= 2 else 'round',
                fc='#e8f0fe' if label.startswith('c_') else '#fff3cd', ec='#555555'))
        ax.set_xlim(-0.5, steps + 1.5)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f'{kind} cell')
        ax.axis('off')
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)
    return path
