"""``DumpGenotypeHook``: log the genotype of a search every epoch, export it at the end."""
from __future__ import annotations

import json
from pathlib import Path

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmext.registry import HOOKS

from .genotype import genotype_fragment
from .visualize import draw_genotype


@HOOKS.register_module()
class DumpGenotypeHook(Hook):
    """After every training epoch, log ``model.genotype()`` and append it to
    ``<work_dir>/genotypes.jsonl``; after training write ``<work_dir>/genotype.py`` (a config
    fragment: pass it as ``model.backbone.genotype=<work_dir>/genotype.py`` to a retrain config)
    and draw the cells into ``<work_dir>/genotype.png``.

    The model must have a ``genotype()`` method returning a :class:`mmext.nas.Genotype`.
    Under DDP only the main process writes (the processes hold the same alphas).
    """

    priority = 'LOW'

    def __init__(self, draw: bool = True):
        self.draw = draw

    @staticmethod
    def _genotype(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not callable(getattr(model, 'genotype', None)):
            raise TypeError(f'DumpGenotypeHook needs a model with a genotype() method; '
                            f'{type(model).__name__} has none')
        return model.genotype()

    def after_train_epoch(self, runner) -> None:
        genotype = self._genotype(runner)
        runner.logger.info(f'Epoch {runner.epoch + 1} genotype: {genotype}')
        if not is_main_process():
            return
        with open(Path(runner.work_dir) / 'genotypes.jsonl', 'a') as f:
            f.write(json.dumps(dict(epoch=runner.epoch + 1, iter=runner.iter,
                                    genotype=str(genotype))) + '\n')

    def after_train(self, runner) -> None:
        genotype = self._genotype(runner)
        if not is_main_process():
            return
        work_dir = Path(runner.work_dir)
        config = Path(runner.cfg.filename).name if runner.cfg.filename else 'a search'
        comment = (f'Genotype found by {config} after {runner.epoch} epochs ({runner.iter} '
                   f'iterations), seed {runner.seed}.\n'
                   f'Retrain it: --cfg-options model.backbone.genotype={work_dir / "genotype.py"}')
        (work_dir / 'genotype.py').write_text(genotype_fragment(genotype, comment))
        runner.logger.info(f'Final genotype written to {work_dir / "genotype.py"}')
        if self.draw:
            picture = draw_genotype(genotype, work_dir / 'genotype.png',
                                    f'searched cells, epoch {runner.epoch}')
            runner.logger.info(f'Cells drawn in {picture}')
