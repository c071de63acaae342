"""Regenerate the README's demo figures from a run of the demo, so that they cannot go stale.

    .venv/bin/python benchmarks/readme_figures.py [--readme README.md]
        [--record benchmarks/results/readme_figures.json] [--from-record]

Runs :func:`lowbit.flow.run_demo` with its defaults (what ``make demo``'s ``lowbit demo`` runs:
pynq-z2, the demo's budget, the default epochs) in a temporary directory, keeps the figures the
README quotes in ``--record`` (the demo's report as ``lowbit demo --json`` writes it, less its
paths, and the resources of the width converters and label select from the compiled report), and
rewrites every marked block of the README from that record::

    <!-- figures:NAME begin ... -->TEXT<!-- figures:NAME end -->

``demo`` is the terminal output of ``lowbit demo`` (less the line naming the Verilog file, whose
path is the output directory's), ``demo-overhead`` the width converters' and label select's share of
the resources. ``--from-record`` rewrites the README from the record without running the demo.
``tests/test_readme_figures.py`` checks that the README's blocks are what :func:`render` makes of
the record.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RECORD = ROOT / "benchmarks" / "results" / "readme_figures.json"

BLOCK = re.compile(
    r"<!-- figures:(?P<name>[\w-]+) begin(?P<note>[^>]*)-->(?P<body>.*?)"
    r"<!-- figures:(?P=name) end -->",
    re.S,
)
"""A marked block; its body is everything between the two comments."""

_MARK = re.compile(r"<!-- figures:([\w-]+) (begin|end)")


def blocks(text: str) -> dict[str, str]:
    """The bodies of the marked blocks of ``text`` by name.

    Raises
    ------
    ValueError
        If a marker has no partner, a block is nested in another or a name is used twice.
    """
    found: dict[str, str] = {}
    spans = []
    for m in BLOCK.finditer(text):
        if m["name"] in found:
            raise ValueError(f"figures block {m['name']!r} appears twice")
        if _MARK.search(m["body"]):
            raise ValueError(f"figures block {m['name']!r} holds another marker")
        found[m["name"]] = m["body"]
        spans.append(m.span())
    for m in _MARK.finditer(text):
        if not any(a <= m.start() < b for a, b in spans):
            raise ValueError(f"'figures:{m[1]} {m[2]}' has no partner")
    return found


def demo_output(report: dict) -> list[str]:
    """What ``lowbit demo`` prints for ``report``, line by line (the CLI's own formatting)."""
    from lowbit.cli.app import _print_demo

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _print_demo(report)
    return buf.getvalue().splitlines()


def render(record: dict) -> dict[str, str]:
    """The body of each marked block for ``record`` (see :func:`figures`)."""
    lines = [line for line in demo_output(record["demo"]) if not line.startswith("  verilog ")]
    overhead = record["overhead"]
    return {
        "demo": "\n```\n" + "\n".join(lines) + "\n```\n",
        "demo-overhead": f"{overhead['lut']:,.0f} LUT and {overhead['ff']:,.0f} FF",
    }


def rewrite(text: str, bodies: dict[str, str]) -> str:
    """``text`` with the body of each marked block replaced by ``bodies[name]``.

    Raises
    ------
    ValueError
        If ``text`` has a block ``bodies`` does not hold, or lacks one it does.
    """
    have = blocks(text)
    if set(have) != set(bodies):
        raise ValueError(
            f"the README's figures blocks are {sorted(have)}, the renderer makes {sorted(bodies)}"
        )

    def body(m: re.Match) -> str:
        name = m["name"]
        return f"<!-- figures:{name} begin{m['note']}-->{bodies[name]}<!-- figures:{name} end -->"

    return BLOCK.sub(body, text)


def figures(out_dir: str | Path) -> dict:
    """Run the demo in ``out_dir`` with its defaults and return the record the README is made of:
    ``demo`` (the demo's report less its ``outputs``, which name files in ``out_dir``) and
    ``overhead`` (LUT and FF of the width converters and the label select, from the compiled
    report's mapping)."""
    from lowbit.flow import run_demo

    report = run_demo(out_dir)
    mapping = json.loads((Path(out_dir) / "report.json").read_text())["mapping"]
    parts = [c["resources"] for c in mapping["width_converters"]]
    parts.append(mapping["label_select"]["resources"])
    overhead = {k: sum(p[k] for p in parts) for k in ("lut", "ff")}
    demo = {k: v for k, v in report.items() if k != "outputs"}
    demo["outputs"] = {"verilog": "demo_out/lowbit_top.v"}  # where 'make demo' writes it
    return {"demo": demo, "overhead": overhead}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", type=Path, default=README, help="the README to rewrite")
    ap.add_argument("--record", type=Path, default=RECORD, help="where the figures are kept")
    ap.add_argument(
        "--from-record", action="store_true", help="rewrite from --record; do not run the demo"
    )
    args = ap.parse_args(argv)
    if args.from_record:
        record = json.loads(args.record.read_text())
    else:
        from lowbit.flow import write_json

        with tempfile.TemporaryDirectory(prefix="readme_figures_") as tmp:
            write_json(args.record, figures(Path(tmp) / "demo_out"))
        print(f"wrote {args.record}", file=sys.stderr)
        record = json.loads(args.record.read_text())  # the README is made of what is kept
    text = args.readme.read_text()
    new = rewrite(text, render(record))
    if new != text:
        args.readme.write_text(new)
    print(f"{args.readme}: {'rewritten' if new != text else 'already up to date'}", file=sys.stderr)
    for name, body in render(record).items():
        print(f"--- {name} ---{body}" if body.startswith("\n") else f"--- {name} --- {body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
