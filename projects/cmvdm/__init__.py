"""CMVDM: fMRI-to-image generation with semantic alignment, a silhouette assistant and a
ControlNet on diffusers (projects/cmvdm/README.md)."""
from .control import (
                      CLIPAlignHead,
                      CLIPAlignLoss,
                      ResidualHintNet,
                      SilhouetteDecoder,
                      SilhouetteEncoder,
)
from .fmri_encoder import FMRIConditioner, FMRIMAEEncoder, FMRIMaskedPretrainer, sincos_positions
from .model import CMVDM
from .silhouette_training import SilhouetteTrainer, total_variation

__all__ = ['CLIPAlignHead', 'CLIPAlignLoss', 'ResidualHintNet', 'SilhouetteDecoder',
           'SilhouetteEncoder', 'FMRIConditioner', 'FMRIMAEEncoder', 'FMRIMaskedPretrainer',
           'sincos_positions', 'CMVDM', 'SilhouetteTrainer', 'total_variation']
