"""Options several ``lowbit`` sub-commands share, defined once as argparse parent parsers
(``parents=[...]``): one name, one meaning, one help text stating the default.

* ``--board NAME``: the FPGA board (``lowbit boards`` lists them);
* ``--budget SHARE``: the share in (0, 1] of each board resource the design may use;
* ``-o/--output``: where the command's result goes: a file or a directory, as each command's
  help says (a command writes one kind);
* ``--json PATH``: also write the command's report as JSON to PATH (``map`` and ``boards`` keep a
  flag printing JSON on stdout instead of the table; see ``docs/CLI_FLAGS.md``);
* ``--dataset NAME``: a data set: digits, mnist5k, idx:DIR or cifar10:DIR;
* ``-v/--verbose``: log library progress, before or after the sub-command.

Renamed spellings stay accepted as hidden aliases (``demo --out``, ``map --act-data``).
"""

from __future__ import annotations

import argparse

from ._args import Parser, board, fraction, output_dir, output_file

__all__ = [
    "BUDGET_DEFAULT",
    "add_verbosity",
    "board_option",
    "budget_option",
    "dataset_option",
    "json_option",
    "output_option",
    "state_defaults",
]

BUDGET_HELP = "share in (0, 1] of each board resource (LUT, FF, BRAM, DSP) the design may use"
BUDGET_DEFAULT = (
    "default 0.7; on open-flow boards the share holding 5,000 LUT6-eq (0.1 on ulx3s-85f), so "
    "that the open flow builds it in minutes"
)
"""The default budget of a folding search, as ``build``, ``compile``, ``map`` and ``run`` state
it: :func:`lowbit.mapping.buildsize.default_budget` (the one rule; ``tests/test_budget_default.py``
checks this text against it)."""
DATASET_HELP = "data set: digits, mnist5k, idx:DIR or cifar10:DIR"


def _parent() -> Parser:
    return Parser(add_help=False)


def board_option(
    default: str | None = "pynq-z2", *, required: bool = False, note: str = ""
) -> Parser:
    """``--board NAME``; ``note`` replaces ``(default NAME)`` when the default depends on other
    options."""
    p = _parent()
    if required:
        when = "required"
    else:
        when = note or f"default {default}"
    p.add_argument(
        "--board",
        type=board,
        default=default,
        required=required,
        metavar="NAME",
        help=f"FPGA board, as 'lowbit boards' lists it ({when})",
    )
    return p


def budget_option(default: float | None, note: str = "") -> Parser:
    """``--budget SHARE``; ``note`` states the default when it is not ``default`` itself."""
    p = _parent()
    p.add_argument(
        "--budget",
        type=fraction,
        default=default,
        metavar="SHARE",
        help=f"{BUDGET_HELP} ({note or f'default {default:g}'})",
    )
    return p


def output_option(
    kind: str, what: str, *, required: bool = False, default: str | None = None, old: str = ""
) -> Parser:
    """``-o/--output``: a file (``kind="file"``) or a directory (``"dir"``) holding ``what``;
    ``old`` is a former spelling kept as a hidden alias."""
    p = _parent()
    typ = output_file if kind == "file" else output_dir
    state = "required" if required else (f"default {default}" if default else "default: none")
    p.add_argument(
        "-o",
        "--output",
        type=typ,
        required=required,
        default=default,
        metavar="FILE" if kind == "file" else "DIR",
        help=f"output {'file' if kind == 'file' else 'directory'}: {what} ({state})",
    )
    if old:
        p.add_argument(
            old, dest="output", type=typ, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return p


def json_option(what: str) -> Parser:
    """``--json PATH``: also write ``what`` as JSON to PATH."""
    p = _parent()
    p.add_argument(
        "--json",
        type=output_file,
        metavar="PATH",
        help=f"also write {what} as JSON to PATH (default: not written)",
    )
    return p


def dataset_option(
    default: str | None, purpose: str, *, choices: str = DATASET_HELP, old: str = ""
) -> Parser:
    """``--dataset NAME`` used for ``purpose``; ``old`` is a former spelling (hidden alias)."""
    p = _parent()
    p.add_argument(
        "--dataset",
        default=default,
        metavar="NAME",
        help=f"{choices}: {purpose} (default {default or 'none'})",
    )
    if old:
        p.add_argument(old, dest="dataset", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


VERBOSE_HELP = "log library progress (INFO messages on stderr); also accepted before the command"


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose`` on a sub-command's parser; unset unless given there, so ``lowbit -v CMD``
    and ``lowbit CMD -v`` both work."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )


def state_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default X)`` to the help of every option of ``parser`` whose default is a value
    and whose help does not state one already."""
    for action in parser._actions:
        if not action.option_strings or action.help in (None, argparse.SUPPRESS):
            continue
        d = action.default
        if d is None or d is argparse.SUPPRESS or isinstance(d, bool) or action.required:
            continue
        if "default" not in action.help:
            action.help += " (default %(default)s)"
