"""Sub-commands of ``lowbit`` for ONNX/QONNX import, export and quantize (issue 4)."""

from __future__ import annotations

__all__ = ["register"]


def register(sub) -> None:
    """Add this module's sub-commands to the ``lowbit`` parser's ``sub`` (an argparse sub-parsers object)."""
