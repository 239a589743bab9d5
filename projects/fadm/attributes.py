"""Face attributes for FADM from MediaPipe's face mesh (0.10.14, its 468-landmark model ships
in the wheel): head pose and expression coefficients measured on the mesh, a stand-in for DECA's
pose and expression where DECA and FLAME are not available.

Pose (radians), from the mesh's own frame (x: right outer eye corner 33 -> left 263; y: forehead
10 -> chin 152, made orthogonal to x; z = x cross y, away from the camera); with pixel x right,
y down and MediaPipe's depth scaled like x:
- yaw = atan2(x_z, x_x): > 0 when the subject's left eye is farther from the camera;
- pitch = atan2(y_z, y_y): > 0 when the chin is farther than the forehead (head pitched
  forward, looking down);
- roll = atan2(x_y, x_x): > 0 when the eye line falls to the image's right (clockwise on screen).
Expression (6 coefficients, distances over the outer-eye-corner distance): mouth opening
(13-14), mouth width (61-291), right and left eye opening (159-145, 386-374), right and left
brow height (105-159, 334-386).
"""
from __future__ import annotations

import numpy as np

from mmext.registry import TASK_UTILS

POSE_NAMES = ('yaw', 'pitch', 'roll')
EXPRESSION_NAMES = ('mouth_open', 'mouth_width', 'eye_open_right', 'eye_open_left',
                    'brow_right', 'brow_left')
_EXPRESSION_PAIRS = ((13, 14), (61, 291), (159, 145), (386, 374), (105, 159), (334, 386))


class NoFaceFoundError(ValueError):
    """The face mesh found no face in the image."""


def pose_from_landmarks(points: np.ndarray) -> np.ndarray:
    """(468, 3) landmarks in pixels (x, y, depth) -> (yaw, pitch, roll) in radians."""
    ex = points[263] - points[33]
    ex = ex / np.linalg.norm(ex)
    ey = points[152] - points[10]
    ey = ey - ex * (ey @ ex)
    ey = ey / np.linalg.norm(ey)
    return np.array([np.arctan2(ex[2], ex[0]), np.arctan2(ey[2], ey[1]),
                     np.arctan2(ex[1], ex[0])])


def expression_from_landmarks(points: np.ndarray) -> np.ndarray:
    """(468, 3) landmarks -> the 6 expression coefficients of :data:`EXPRESSION_NAMES`."""
    scale = np.linalg.norm(points[263] - points[33])
    return np.array([np.linalg.norm(points[a] - points[b]) / scale
                     for a, b in _EXPRESSION_PAIRS])


@TASK_UTILS.register_module()
class MediaPipeFaceAttributes:
    """Head pose and expression of the most prominent face of an RGB image.

    ``__call__(image)``: (H, W, 3) uint8 RGB -> ``{'pose': (3,), 'expression': (6,),
    'landmarks': (468, 3) pixels}``; :meth:`vector` gives ``[pose, expression]`` (9,), the
    attribute vector FADM takes (source minus target). Raises :class:`NoFaceFoundError`.
    """

    num_attributes = len(POSE_NAMES) + len(EXPRESSION_NAMES)

    def __init__(self, min_detection_confidence: float = 0.5):
        try:
            from mediapipe.python.solutions.face_mesh import FaceMesh
        except ImportError as err:
            raise ImportError('the MediaPipe attribute extractor needs mediapipe 0.10.14 '
                              '(`make install` installs it)') from err
        self.mesh = FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                             min_detection_confidence=min_detection_confidence)

    def close(self) -> None:
        self.mesh.close()

    def landmarks(self, image: np.ndarray) -> np.ndarray:
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'expected an (H, W, 3) uint8 RGB image, got {image.shape} '
                             f'{image.dtype}')
        found = self.mesh.process(image).multi_face_landmarks
        if not found:
            raise NoFaceFoundError('MediaPipe found no face in the image')
        h, w = image.shape[:2]
        return np.array([[p.x * w, p.y * h, p.z * w] for p in found[0].landmark])

    def __call__(self, image: np.ndarray) -> dict:
        points = self.landmarks(image)
        return dict(pose=pose_from_landmarks(points),
                    expression=expression_from_landmarks(points), landmarks=points)

    def vector(self, image: np.ndarray) -> np.ndarray:
        found = self(image)
        return np.concatenate([found['pose'], found['expression']]).astype(np.float32)
