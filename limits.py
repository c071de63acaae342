"""Limits on what an input may make lowbit do, as data: one table, checked before any allocation.

Every reader of user input (ONNX models, lowbit model files, schedules, compiled and build
directories, command-line numbers) checks the size it is about to allocate or the work it is about
to start against :data:`LIMITS` *first*, and refuses with a :class:`~lowbit.LowbitError` that names
the file, node or flag, the quantity, the value found and the limit (:func:`check`). The numbers
are generous for every network lowbit targets (the largest, CNV-W1A1, has 1.5 M weights, 8-bit
inputs and 2-bit activations) and small enough that no accepted input can exhaust memory or time.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import LowbitError

__all__ = ["Limits", "LIMITS", "check"]


@dataclass(frozen=True)
class Limits:
    """The bounds; each field's docstring says what it bounds."""

    weight_bits: int = 16
    """Bit width of weights (a wider integer weight is refused; hardware MACs are sized by it)."""
    act_bits: int = 16
    """Bit width of activations and inputs; a k-bit activation has ``2^k - 1`` thresholds."""
    thresholds: int = (1 << 16) - 1
    """Thresholds per channel (``2^act_bits - 1``)."""
    tensor_elements: int = 1 << 26
    """Elements of any one tensor (weights, thresholds, a folded constant, an activation)."""
    file_bytes: int = 1 << 30
    """Bytes of an input file read whole (ONNX model, ``.npz`` model, JSON manifest)."""
    member_bytes: int = 1 << 29
    """Uncompressed bytes of one ``.npz`` member, checked before it is inflated."""
    json_depth: int = 32
    """Nesting depth of a JSON document (a header, a schedule, a manifest)."""
    images: int = 1 << 20
    """Images one command simulates or evaluates."""
    clock_mhz: float = 1000.0
    """A clock frequency (MHz) a user or a file may ask for; no FPGA fabric lowbit targets is
    faster."""


LIMITS = Limits()
"""The limits every reader checks."""


def check(where: str, quantity: str, value: int | float, limit: int | float) -> None:
    """Refuse ``value`` of ``quantity`` at ``where`` (a file, node or flag) above ``limit``."""
    if value > limit:
        raise LowbitError(f"{where}: {quantity} {value} exceeds lowbit's limit of {limit}")
