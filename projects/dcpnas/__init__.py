"""DCP-NAS: discrepant child-parent search for 1-bit CNNs (projects/dcpnas/README.md)."""
from .dcpnas import DCPNAS, DISCREPANCIES, TANGENTS, discrepancy, reconstruction_loss
from .decoupled import DecoupledOptimization
from .distributed import DCPNASDistributedDataParallel, ProcessGroupAverage
from .retrain import DistilledClassifierWithReconstruction

__all__ = ['DCPNAS', 'DISCREPANCIES', 'TANGENTS', 'discrepancy', 'reconstruction_loss',
           'DecoupledOptimization', 'DCPNASDistributedDataParallel', 'ProcessGroupAverage',
           'DistilledClassifierWithReconstruction']
