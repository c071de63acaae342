"""Long profile of the randomised regression: many engine configurations on the fast path, and a
deliberately broken component caught and shrunk by Hypothesis to a minimal configuration.

    .venv/bin/python benchmarks/regression.py [--examples 220] [--vectors 12] [--shrink-budget 60]
        [--markdown benchmarks/results/regression.md]

``--vectors`` input vectors per configuration: the (configuration, input) cases are their product;
three configurations in four run with random valid/ready stalls.

Prints the number of distinct configurations checked, mismatches (must be 0), the time per
configuration, and the minimal failing configuration Hypothesis finds for the mutant
(``lowbit.sim.regress.flip_adder_bit``: one adder output bit flipped).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, find, given, settings

from lowbit.sim.regress import check_config, engine_configs, flip_adder_bit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=220)
    ap.add_argument("--shrink-budget", type=int, default=60)
    ap.add_argument("--vectors", type=int, default=12, help="input vectors per configuration")
    ap.add_argument("--markdown", help="write the result here")
    args = ap.parse_args()

    seen, failures, kinds = set(), [], Counter()
    cases = Counter()
    t0 = time.perf_counter()

    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cfg=engine_configs())
    def run(cfg):
        if cfg in seen:
            return
        seen.add(cfg)
        kinds[(cfg.input.rstrip("0123456789"), cfg.output)] += 1
        res = check_config(cfg, vectors=args.vectors)
        stalled = (cfg.valid_prob, cfg.ready_prob) != (1.0, 1.0)
        cases["all"] += args.vectors
        cases["stalled"] += args.vectors if stalled else 0
        cases["mismatched"] += res.mismatches
        if not res.ok:
            failures.append(res)
        if len(seen) % 20 == 0:
            print(f"  {len(seen)} configurations, {len(failures)} failing, "
                  f"{(time.perf_counter() - t0) / len(seen):.1f} s each", flush=True)

    run()
    elapsed = time.perf_counter() - t0
    print(f"distinct configurations: {len(seen)}; failing: {len(failures)}; "
          f"{elapsed:.0f} s ({elapsed / max(1, len(seen)):.1f} s per configuration, build included)")
    print("by (input kind, output):", dict(sorted(kinds.items())))
    print(f"(configuration, input) cases: {cases['all']}, {cases['stalled']} of them with random "
          f"valid/ready stalls; failing configurations: {len(failures)}")
    if args.markdown:
        Path(args.markdown).write_text(
            "# Randomised regression, long profile (`benchmarks/regression.py`)\n\n"
            f"`--examples {args.examples} --vectors {args.vectors}`: {len(seen)} distinct MVTU "
            f"configurations (shape, folding, input, weight and output types, MAC mode, density, "
            f"stalls), {cases['all']} (configuration, input) cases, {cases['stalled']} with random "
            f"valid/ready stalls, each output compared with the reference by ==: "
            f"**{len(failures)} failing configurations**. {elapsed:.0f} s "
            f"({elapsed / max(1, len(seen)):.1f} s per configuration, Verilator build included).\n"
        )
    for f in failures[:5]:
        print("  FAIL", f.config, f.first)

    t0 = time.perf_counter()
    calls = [0]

    def broken(cfg):
        calls[0] += 1
        return not check_config(cfg, mutate=flip_adder_bit).ok

    minimal = find(engine_configs(), broken, settings=settings(max_examples=args.shrink_budget, deadline=None,
                                                              database=None, suppress_health_check=list(HealthCheck)))
    print(f"mutant (one adder bit flipped) caught; shrunk in {calls[0]} checks, {time.perf_counter() - t0:.0f} s, "
          f"to: {minimal}")
    res = check_config(minimal, mutate=flip_adder_bit)
    print(f"  first mismatch (vector, output, got, expected) = {res.first}; "
          f"unmutated design on that configuration passes: {check_config(minimal).ok}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
