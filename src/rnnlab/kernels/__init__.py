"""Whole-sequence kernels, in an open registry (``rnnlab.kernels.registry``) that cells name in ``fused_kernel``.

Every module of this package is imported here, so a new kernel is one file that calls ``register_kernel``.
"""

import importlib
import pkgutil

from rnnlab.kernels.registry import KERNELS, LibraryKernel, SequenceKernel, get_kernel, register_kernel

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["KERNELS", "LibraryKernel", "SequenceKernel", "get_kernel", "register_kernel"]
