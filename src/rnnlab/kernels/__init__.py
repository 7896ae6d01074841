"""Whole-sequence kernels, in the registry ``KERNELS`` (``rnnlab.kernels.registry``) that cells name in
``fused_kernel``.

The registry imports every module of this package before its first look-up, so a new kernel is one file that
registers it (``KERNELS.register("name")(kernel)``).
"""

from rnnlab.kernels.registry import KERNELS, LibraryKernel, SequenceKernel, get_kernel

__all__ = ["KERNELS", "LibraryKernel", "SequenceKernel", "get_kernel"]
