"""The ``lowbit`` command line: :func:`main` parses the arguments and runs one subcommand.

One module per group of verbs: :mod:`.app` (demo, compile, sim, map, boards, build, flash and the
parser), :mod:`.train` (train), :mod:`.onnx` (import, export, quantize), :mod:`.builtin` (zoo),
:mod:`.evaluate` (eval, trace), :mod:`.sparse` (sparse-bench), :mod:`.synth` (asic, sweep);
:mod:`._data` reads image files and prints a graph's input quantizer and class decision;
:mod:`._progress` draws progress.
"""

from .app import main

__all__ = ["main"]
