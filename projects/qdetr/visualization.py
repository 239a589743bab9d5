"""Student and teacher detections side by side (``tools/test.py --show-dir`` on a detection
config that lists :class:`TeacherStudentVisualizationHook` in its ``custom_hooks``)."""
from __future__ import annotations

import copy
from pathlib import Path

import mmcv
import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmext.registry import HOOKS


@HOOKS.register_module()
class TeacherStudentVisualizationHook(Hook):
    """Save, for the first ``max_images`` test images, the student's detections (left) beside
    the teacher's (right), boxes above ``score_thr``, to ``out_dir`` (relative paths are taken
    inside the work dir), using the model's ``teacher``.

    A detection config with a teacher opts in by listing the hook with ``draw=False``, as
    mmdet's ``DetVisualizationHook`` is listed; ``tools/test.py --show-dir DIR`` sets
    ``draw=True`` and ``out_dir=DIR/teacher_vs_student``. A model without a teacher (an LSQ
    baseline run of the same config) draws nothing.
    """

    def __init__(self, draw: bool = False, out_dir: str = 'teacher_vs_student',
                 max_images: int = 8, score_thr: float = 0.3):
        self.draw, self.out_dir = draw, out_dir
        self.max_images, self.score_thr = max_images, score_thr
        self.saved = 0

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.draw or self.saved >= self.max_images or not outputs:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(model, 'teacher', None) is None:
            return
        data = model.data_preprocessor(copy.deepcopy(data_batch), False)
        with torch.no_grad():
            teacher_outputs = model.teacher.predict(data['inputs'], data['data_samples'])
        out_dir = Path(runner.work_dir) / self.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        visualizer = runner.visualizer
        classes = visualizer.dataset_meta.get('classes')
        palette = visualizer.dataset_meta.get('palette')
        for student, teacher in zip(outputs, teacher_outputs):
            if self.saved >= self.max_images:
                return
            image = mmcv.imread(student.img_path, channel_order='rgb')
            panels = []
            for sample in (student, teacher):
                instances = sample.pred_instances
                instances = instances[instances.scores > self.score_thr].cpu()
                panels.append(visualizer._draw_instances(image.copy(), instances, classes,
                                                         palette))
            gap = np.full((image.shape[0], 4, 3), 255, dtype=np.uint8)
            name = Path(student.img_path).stem
            mmcv.imwrite(np.concatenate([panels[0], gap, panels[1]], axis=1)[..., ::-1],
                         str(out_dir / f'{name}_student_vs_teacher.png'))
            self.saved += 1
