"""Sub-commands of ``lowbit`` for the EIE-style sparse engine (issue 6)."""

from __future__ import annotations

__all__ = ["register"]


def register(sub) -> None:
    """Add this module's sub-commands to the ``lowbit`` parser's ``sub`` (an argparse sub-parsers object)."""
