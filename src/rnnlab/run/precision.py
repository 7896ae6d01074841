"""Training precision chosen by capability: bf16-mixed only where the device runs every kernel the models use in
bf16, fp32 elsewhere.

On the CPU, bf16 autocast needs oneDNN's bf16 kernels, which exist only with AVX-512 BF16 or AMX; without them
its LSTM primitive fails to build ("could not create a primitive descriptor"). A machine of the same kind may
have either CPU, and ``ONEDNN_MAX_CPU_ISA=AVX2`` makes any x86 machine behave as an AVX2-only one, so the
choice is made at run time, never written into a recipe.

``trainer.precision``:

- ``auto``: bf16-mixed where supported, else 32-true;
- a bf16 setting (``bf16-mixed``, ``bf16-true``, ...) on a device without support: a ``UserError`` naming the
  option, instead of a crash deep in the first batch (or, on an old CPU, a silently emulated, slow run);
- anything else is passed to Lightning unchanged.
"""

from __future__ import annotations

import functools
import logging

import torch

from rnnlab.errors import UserError

log = logging.getLogger(__name__)

AUTO = "auto"
BF16 = "bf16-mixed"
FP32 = "32-true"


@functools.cache
def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU runs the models' kernels in bf16, and why (for the log).

    Three checks, cheapest first: the instruction set (AVX-512 BF16 or AMX; elsewhere oneDNN would emulate bf16,
    slower than fp32), oneDNN's own verdict (it honours ``ONEDNN_MAX_CPU_ISA``), and one tiny LSTM and Elman step
    under autocast, the fused kernels that failed to build on AVX2-only machines.
    """
    if not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return False, "the CPU has neither AVX-512 BF16 nor AMX"
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False, "oneDNN offers no bf16 kernels here (is ONEDNN_MAX_CPU_ISA set below AVX512_CORE_BF16?)"
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            x = torch.zeros(2, 1, 4)  # (T, B, I)
            torch.nn.LSTM(4, 4)(x)
            torch.nn.RNN(4, 4)(x)
    except RuntimeError as error:
        return False, f"oneDNN's bf16 recurrent kernels do not build here ({str(error).splitlines()[0]})"
    return True, "the CPU has AVX-512 BF16/AMX and oneDNN's bf16 recurrent kernels run"


def cuda_bf16_support() -> tuple[bool, str]:
    """Whether the current CUDA device supports bf16, and why (for the log)."""
    if not torch.cuda.is_available():
        return False, "no CUDA device is available"
    name = torch.cuda.get_device_name()
    if not torch.cuda.is_bf16_supported():
        return False, f"{name} does not support bf16"
    return True, f"{name} supports bf16"


def bf16_support(accelerator: str) -> tuple[bool, str]:
    """bf16 support of the device a Lightning ``accelerator`` setting (cpu, gpu, cuda, auto) trains on."""
    if accelerator in ("gpu", "cuda") or (accelerator == AUTO and torch.cuda.is_available()):
        return cuda_bf16_support()
    if accelerator in ("cpu", AUTO):
        return cpu_bf16_support()
    return False, f"bf16 support on accelerator {accelerator!r} is not checked"


def choose_precision(precision: str | int | None, accelerator: str = "cpu") -> str | int | None:
    """The precision to give Lightning for ``trainer.precision`` and ``trainer.accelerator``; logs the choice.

    Args:
        precision: the configured value; ``auto`` chooses by capability.
        accelerator: the configured accelerator.

    Returns:
        ``bf16-mixed`` or ``32-true`` for ``auto``; any other value unchanged.

    Raises:
        UserError: a bf16 precision was asked for on a device without bf16 support.
    """
    wants_bf16 = isinstance(precision, str) and precision.startswith("bf16")
    if precision != AUTO and not wants_bf16:
        return precision
    supported, why = bf16_support(str(accelerator))
    if precision == AUTO:
        chosen = BF16 if supported else FP32
        log.info("precision: %s (trainer.precision=auto: %s)", chosen, why)
        return chosen
    if not supported:
        raise UserError(f"trainer.precision={precision} cannot run here: {why}; use trainer.precision=auto "
                        f"(bf16 where the device supports it, fp32 elsewhere) or trainer.precision={FP32}")
    log.info("precision: %s (%s)", precision, why)
    return precision
