"""MoE-MLIR: a compiler for Mixture-of-Experts layers.

Submodules are imported explicitly (``from moe_mlir import reference``) so that importing
the package itself stays cheap and needs nothing beyond the standard library.
"""

__version__ = "0.1.0"
