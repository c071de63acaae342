"""lowbit: low-bit neural networks to verified FPGA hardware, with open tools only."""

__version__ = "0.1.0"

__all__ = ["__version__", "LowbitError"]


class LowbitError(Exception):
    """An error in user input (a file, a parameter, a model) with a message meant for the user."""
