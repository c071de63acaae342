"""``lowbit run CONFIG``: the whole flow from a build config (:mod:`lowbit.pipeline`), step by step,
each step's outputs, log and time kept in one output directory; ``--from STEP`` resumes."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys

from ._options import BUDGET_DEFAULT, json_option, output_option

__all__ = ["register"]


def _say(msg: str) -> None:
    """Progress on stdout (as FINN's builder prints it); stderr is for the error alone."""
    print(msg, flush=True)


def cmd_run(args) -> int:
    from ..pipeline import STEPS, load_config, run_flow, summary_lines

    if args.list_steps:
        for s in STEPS:
            print(s)
        return 0
    if args.schema:
        from ..pipeline import SCHEMA

        print(json.dumps(SCHEMA, indent=2))
        return 0
    if args.config is None:
        from .. import LowbitError

        raise LowbitError("give a build config (.yaml, .yml or .json); see 'lowbit run -h'")
    config = load_config(args.config, output=args.output)
    if not args.verbose:  # the steps' messages go to their logs; the terminal gets the step lines
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.WARNING)
    result = run_flow(config, start=args.start, stop=args.stop, say=_say)
    for line in summary_lines(result):
        print(line)
    print(f"steps' logs in {result.output / 'logs'}, times in "
          f"{result.output / 'time_per_step.json'}")
    if args.json:
        from .._io import atomic_write

        doc = {"output": str(result.output), "ok": result.ok,
               "steps": {r.step: dataclasses.asdict(r) for r in result.records}}
        atomic_write(args.json, json.dumps(doc, indent=2, default=str) + "\n")
    if not result.ok:
        failed = next(r for r in result.records if r.status != "done")
        error = " / ".join(line.strip() for line in str(failed.error).splitlines() if line.strip())
        print(f"lowbit run: error: step {failed.step} failed: {error}\n"
              f"(its log: {result.output / failed.log}; fix it and resume with "
              f"--from {failed.step})", file=sys.stderr)
        return 2
    return 0


def register(sub) -> None:
    """Add ``run`` to the ``lowbit`` parser's sub-parsers ``sub``."""
    from ..pipeline import STEPS

    r = sub.add_parser(
        "run",
        help="the whole flow from a build config (YAML or JSON): import, map, compile, "
        "simulate, build; outputs, logs and times in one directory",
        parents=[
            output_option("dir", "every step's outputs, logs/ and time_per_step.json "
                          "(overrides the config's 'output')", default=None),
            json_option("the run's summary (every step's status, seconds, log and result)"),
        ],
    )
    r.add_argument("config", nargs="?",
                   help="the build config (.yaml, .yml or .json); its 'budget' is the share of "
                   f"each board resource the folding may use ({BUDGET_DEFAULT})")
    r.add_argument("--from", dest="start", choices=STEPS, metavar="STEP",
                   help="resume from STEP; the steps before it must have finished in the output "
                   f"directory (steps: {', '.join(STEPS)}; default: the config's first)")
    r.add_argument("--to", dest="stop", choices=STEPS, metavar="STEP",
                   help="stop after STEP (default: the config's last)")
    r.add_argument("--list-steps", action="store_true", help="list the steps and exit")
    r.add_argument("--schema", action="store_true",
                   help="print the config's JSON Schema (every key, its type and range) and exit")
    r.set_defaults(func=cmd_run)
