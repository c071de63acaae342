"""Issue 17's fuzzer, long profile: malformed inputs through every command-line entry.

Runs ``--cases`` cases (split over the targets in proportion to ``WEIGHTS``) made by
``tests/fuzzing.py`` (Hypothesis draws mutating valid seeds: an ONNX model, a lowbit model file,
a schedule, a build directory, and numbers on flags), each in a forked child under a memory and a
time limit, and prints, per target, the cases, the refusals (exit 2), the acceptances (exit 0),
every failure of the property (traceback, hang, unbounded allocation, a long or unnamed message,
a file left behind, an invalid input accepted) and the time. The bounded profile is
``tests/test_fuzz.py`` in ``make test``.

    python benchmarks/fuzz.py --cases 10000 --markdown benchmarks/results/fuzz.md
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import fuzzing  # noqa: E402

WEIGHTS = {"onnx": 40, "graph": 30, "manifest": 15, "flag": 10, "schedule": 5, "config": 10}
"""Share of the cases per target (a schedule case compiles Verilog: the slowest)."""


def run_target(target: str, n: int, seeds, seed: int) -> dict:
    stats = collections.Counter()
    failures: list[str] = []
    seconds: list[float] = []

    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(case=fuzzing.cases(seeds, (target,)))
    def one(case):
        o = fuzzing.run_case(case)
        stats["cases"] += 1
        stats[f"exit {o.status}"] += 1
        seconds.append(o.seconds)
        for p in o.problems:
            stats[p.split(" (")[0]] += 1
        if o.problems:
            last = o.stderr.strip().splitlines()[-1:] or [""]
            failures.append(f"{case.mutation}: {' '.join(case.argv)}: {'; '.join(o.problems)} "
                            f"| {last[0][:160]}")
            print(f"  FAIL [{target}] {failures[-1]}", flush=True)

    import random

    random.seed(seed)
    one()
    return {"stats": stats, "failures": failures, "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000, help="cases in all (default 1000)")
    ap.add_argument("--targets", default=",".join(WEIGHTS), help="comma-separated targets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", help="write the results table here")
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    total_w = sum(WEIGHTS[t] for t in targets)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = fuzzing.make_seeds(Path(tmp))
    rows, all_failures = [], []
    for t in targets:
        n = max(1, round(args.cases * WEIGHTS[t] / total_w))
        t0 = time.monotonic()
        r = run_target(t, n, seeds, args.seed)
        s = r["stats"]
        rows.append((t, s["cases"], s["exit 2"], s["exit 0"], len(r["failures"]),
                     s["traceback"], s["hang"], s["unbounded allocation"],
                     s["accepted an invalid input"], time.monotonic() - t0))
        all_failures += [f"[{t}] {f}" for f in r["failures"]]
        print(f"{t:9s} cases {s['cases']:6d}  refused {s['exit 2']:6d}  accepted {s['exit 0']:6d}  "
              f"failures {len(r['failures']):4d}  ({time.monotonic() - t0:.0f} s)", flush=True)
    wall = time.monotonic() - start
    head = ("| target | cases | refused (exit 2) | accepted (exit 0) | failures | tracebacks | "
            "hangs | unbounded allocations | accepted-but-wrong | seconds |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append("| " + " | ".join(str(v) if not isinstance(v, float) else f"{v:.0f}"
                                       for v in r) + " |")
    tot = [sum(r[i] for r in rows) for i in range(1, 9)]
    lines.append("| **all** | " + " | ".join(map(str, tot)) + f" | {wall:.0f} |")
    table = "\n".join(lines)
    print(table)
    for f in all_failures[:50]:
        print(f)
    if args.markdown:
        Path(args.markdown).write_text(
            "# Fuzzer, long profile (`benchmarks/fuzz.py`)\n\n"
            f"`python benchmarks/fuzz.py --cases {args.cases} --seed {args.seed}`: "
            f"{tot[0]} cases in {wall:.0f} s.\n\n" + table + "\n\n"
            + ("Failures:\n\n" + "\n".join(f"- {f}" for f in all_failures) + "\n"
               if all_failures else "No failures.\n")
        )
    return 1 if all_failures else 0


if __name__ == "__main__":
    sys.exit(main())
