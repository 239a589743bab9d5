"""FADM: an attribute-guided diffusion refiner for warping-based face animation on diffusers
(projects/fadm/README.md)."""
from .agcn import AGCN, ResBlock, motion_weights, resample
from .animator import KeypointAnimator, KeypointDetector
from .attributes import MediaPipeFaceAttributes, NoFaceFoundError
from .deca import DECACoarseEncoder, DECAFaceAttributes
from .facevid2vid import FaceVid2VidAnimator
from .fomm import FOMMAnimator
from .identity import ArcFaceIResNet, IdentitySimilarityMetric
from .metrics import FaceMotionMetric
from .model import FADM

__all__ = ['AGCN', 'ResBlock', 'motion_weights', 'resample', 'KeypointAnimator',
           'KeypointDetector', 'FADM', 'MediaPipeFaceAttributes', 'NoFaceFoundError',
           'FaceMotionMetric', 'FOMMAnimator', 'FaceVid2VidAnimator', 'DECACoarseEncoder',
           'DECAFaceAttributes', 'ArcFaceIResNet', 'IdentitySimilarityMetric']
