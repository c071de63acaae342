"""lowbit: low-bit neural networks to verified FPGA hardware, with open tools only."""

import importlib

__version__ = "0.1.0"

__all__ = ["__version__", "LowbitError", "load"]


class LowbitError(Exception):
    """An error in user input (a file, a parameter, a model) with a message meant for the user."""


def __getattr__(name: str):
    """``lowbit.load`` (:func:`lowbit.api.load`), imported on first use so that ``import lowbit``
    stays light and the package root imports no upper layer."""
    if name == "load":
        return importlib.import_module(f"{__name__}.api").load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
