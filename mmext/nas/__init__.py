"""Differentiable architecture search: the DARTS space (real-valued or 1-bit), architecture
parameters, the search loop and genotype hook, and the network a genotype builds."""
from .genotype import (
    Genotype,
    GenotypeError,
    check_genotype,
    derive_genotype,
    genotype_fragment,
    load_genotype,
    parse_genotype,
    random_genotype,
)
from .hooks import DumpGenotypeHook
from .network import DartsNetwork, GenotypeCell
from .operations import PRIMITIVES, build_operation, weight_norm
from .search_loop import NASSearchLoop
from .search_space import ArchParameters, DartsSupernet, MixedOp, SearchCell, num_edges
from .visualize import draw_genotype

__all__ = [
    'Genotype', 'GenotypeError', 'check_genotype', 'derive_genotype', 'genotype_fragment',
    'load_genotype', 'parse_genotype', 'random_genotype', 'DumpGenotypeHook', 'DartsNetwork',
    'GenotypeCell', 'PRIMITIVES', 'build_operation', 'weight_norm', 'NASSearchLoop',
    'ArchParameters', 'DartsSupernet', 'MixedOp', 'SearchCell', 'num_edges', 'draw_genotype'
]
