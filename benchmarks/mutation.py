"""Mutation benchmark (issue 17): do the targeted tests catch every realistic single bug?

A fixed list of single-site mutants over the RTL (``hw/``), the integer oracle (``sw_reference/``),
the graph's reference (``ir/graph.py``), the cycle models (``hw/*/spec.py``, ``hw/stream/*``,
``mapping/``) and the control block (``hw/axi/control.py``). Each mutant names its file, the exact
original snippet (found exactly once), the replacement and the targeted tests that should kill it.

The script extracts the committed tree (``git archive``) into a temporary directory, links it as
``lowbit`` on ``PYTHONPATH``, and for each mutant in turn: patches the copy, runs
``pytest -x -q`` on the mutant's tests (with a private Verilator cache and a time limit; a test
run that times out counts as killed, a hang being a detected bug), restores the file. The working
tree is never touched. Prints the kill rate per package and every survivor with its explanation,
and writes ``benchmarks/results/mutation.md``.

    nice .venv/bin/python benchmarks/mutation.py            # all mutants
    nice .venv/bin/python benchmarks/mutation.py -k fifo    # the mutants whose id contains "fifo"
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lowbit._io import atomic_write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TIMEOUT_S = 900


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    note: str = ""
    """What the bug models, or why the mutant is equivalent."""
    equivalent: bool = False
    """No test can kill it: the mutated program behaves identically (``note`` says why). The kill
    rate counts the other mutants."""

    @property
    def package(self) -> str:
        parts = self.file.split("/")
        return "/".join(parts[:2]) if parts[0] == "hw" else parts[0]


# -- targeted tests --------------------------------------------------------------------------------
SW = ("tests/test_sw_reference.py",)
SPARSE_REF = ("tests/test_sparse_reference.py",)
DATAFLOW = ("tests/test_dataflow.py",)
GRID = ("tests/test_dataflow_cocotb.py::test_block_in_the_amaranth_simulator",)
POOL_RTL = ("tests/test_hw_streams.py::"
            "test_maxpool_with_a_dropped_column_and_a_power_of_two_line_memory",)
THRESHOLD_RTL = ("tests/test_hw_streams.py::test_threshold_unit_with_folds_not_a_power_of_two",)
SWG_RTL = ("tests/test_hw_streams.py::test_swg_steady_cycles_equal_the_model",)
FIFO_RTL = ("tests/test_hw_streams.py::test_fifo_holds_exactly_depth_beats_with_the_output_stalled",)
DWC = ("tests/test_hw_streams.py::test_dwc_steady_state_full_rate",
       "tests/test_hw_streams.py::test_dwc_throttled_preserves_sequence")
LABEL = ("tests/test_hw_streams.py::test_label_select",)
ACCEL = ("tests/test_hw_streams.py::test_accelerator_steady_state",)
CONTROL = ("tests/test_hw_mac_axil.py",)
MVTU = ("tests/test_hw_mvtu.py::test_mvtu_steady_state",)
DFMODEL = ("tests/test_dataflow_model.py",)
MAPPING = ("tests/test_mapping.py", "tests/test_map_report.py")
CYCLES_EXACT = ("tests/test_cycles_exact.py",)

M = Mutant
MUTANTS: list[Mutant] = [
    # -- sw_reference: the oracle --------------------------------------------------------------
    M("xnor-mismatches", "sw_reference/ops.py", "    return n - mismatches\n",
      "    return mismatches\n", SW),
    M("bipolar-roth-eq13", "sw_reference/ops.py",
      "return 2 * xnor_popcount(x_bits, w_bits) - n", "return n - 2 * xnor_popcount(x_bits, w_bits)",
      SW),
    M("int-bipolar-sign", "sw_reference/ops.py", "return xi @ (2 * wb - 1).T",
      "return xi @ (1 - 2 * wb).T", SW),
    M("threshold-strict", "sw_reference/ops.py", "(a[..., None] >= t)", "(a[..., None] > t)", SW),
    M("threshold-no-bias", "sw_reference/ops.py", "return out_bias + (a[..., None]",
      "return (a[..., None]", SW),
    M("window-square", "sw_reference/ops.py",
      "oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1",
      "oh, ow = (h - kernel) // stride + 1, (h - kernel) // stride + 1", SW),
    M("window-kx-ky", "sw_reference/ops.py",
      "xi[:, ky : ky + stride * (oh - 1) + 1 : stride, kx : kx + stride * (ow - 1) + 1 : stride, :]",
      "xi[:, kx : kx + stride * (oh - 1) + 1 : stride, ky : ky + stride * (ow - 1) + 1 : stride, :]",
      SW),
    M("window-pad-zero", "sw_reference/ops.py", "constant_values=pad_value)", "constant_values=0)",
      SW),
    M("maxpool-min", "sw_reference/ops.py", ".max(axis=3)", ".min(axis=3)", SW),
    M("maxpool-stride-1", "sw_reference/ops.py", "stride = kernel if stride is None else stride",
      "stride = 1 if stride is None else stride", SW),
    M("sum-pool-axes", "sw_reference/ops.py", "return xi.sum(axis=(1, 2))",
      "return xi.sum(axis=(1, 2)) - xi[:, 0, 0]", SW),
    M("argmax-ties-high", "sw_reference/ops.py", "return np.argmax(s, axis=-1).astype(np.int64)",
      "return (s.shape[-1] - 1 - np.argmax(s[..., ::-1], axis=-1)).astype(np.int64)", SW),
    M("binary-maxpool-and", "sw_reference/ops.py",
      "np.bitwise_or.reduce(np.bitwise_or.reduce(win, axis=4), axis=2)",
      "np.bitwise_and.reduce(np.bitwise_and.reduce(win, axis=4), axis=2)", SW),
    M("int-matmul-bound-wraps", "sw_reference/ops.py",
      "bound = _abs_max(xi) * _abs_max(wi) * max(1, xi.shape[1])",
      "bound = np.abs(xi).max(initial=0) * np.abs(wi).max(initial=0) * max(1, xi.shape[1])", SW),
    M("bits-to-bipolar-sign", "sw_reference/bits.py", "return b.astype(np.int64) * 2 - 1",
      "return 1 - b.astype(np.int64) * 2", SW),
    M("bipolar-to-bits-sign", "sw_reference/bits.py", "return (v > 0).astype(np.uint8)",
      "return (v < 0).astype(np.uint8)", SW),
    M("requantize-truncates", "sw_reference/sparse.py",
      "y = (y + (1 << (shift - 1))) >> shift", "y = y >> shift", SPARSE_REF),
    M("requantize-clip-high", "sw_reference/sparse.py",
      "return np.clip(y, -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1)",
      "return np.clip(y, -(1 << (out_bits - 1)), (1 << (out_bits - 1)))", SPARSE_REF),
    # -- the graph's reference ---------------------------------------------------------------------
    M("graph-xnor-score-sign", "ir/graph.py",
      "return 2 * acc - self.mw if self.xnor else acc", "return self.mw - 2 * acc if self.xnor else acc",
      SW, "issue 17's mutant 4 (no hand-worked test before)"),
    M("graph-score-range", "ir/graph.py",
      "return (2 * lo - self.mw, 2 * hi - self.mw) if self.xnor else (lo, hi)",
      "return (lo, hi)", SW),
    # -- stream blocks ----------------------------------------------------------------------------
    M("fifo-one-short", "hw/stream/fifo.py", "depth=self.spec.depth)", "depth=self.spec.depth - 1)",
      FIFO_RTL, "issue 17's mutant 1"),
    M("fifo-reads-when-stalled", "hw/stream/fifo.py", "q.r_en.eq(self.o.ready)", "q.r_en.eq(1)",
      FIFO_RTL),
    M("fifo-cycles", "hw/stream/fifo.py", "        return beats\n", "        return beats + 1\n",
      GRID),
    M("swg-ring-one-short", "hw/stream/swg.py", "self.i.ready.eq(filled < R)",
      "self.i.ready.eq(filled < R - 1)", SWG_RTL + GRID),
    M("swg-pad-right-edge", "hw/stream/swg.py", "(ix < 0) | (ix >= W)", "(ix < 0) | (ix > W)",
      GRID + SWG_RTL),
    M("swg-need-hi-bound", "hw/stream/swg.py", "need_hi.eq(Mux(last_row | (iy0 + max(K, S) > H), H,",
      "need_hi.eq(Mux(last_row | (iy0 + max(K, S) >= H), H,", SWG_RTL + GRID,
      "equivalent: at iy0 + max(K, S) == H both branches give H", equivalent=True),
    M("swg-need-one-row-less", "hw/stream/swg.py", "m.d.comb += avail.eq(filled >= need_hi - rbase)",
      "m.d.comb += avail.eq(filled >= need_hi - rbase - 1)", SWG_RTL + GRID),
    M("swg-old-cycle-model", "hw/stream/swg.py",
      "return steady_cycles(h, w, self.channel_folds, n.kernel, n.stride, n.pad, self.lines)",
      "return max(self.in_beats, self.out_beats)", DATAFLOW + SWG_RTL,
      "the model before issue 17 (stride 2: 36 predicted, 41 measured)"),
    M("swg-model-release-at-last-beat", "hw/stream/swg.py", "freed.append(start + beats)",
      "freed.append(start + beats - 1)", DATAFLOW + SWG_RTL),
    M("swg-model-ring-size", "hw/stream/swg.py", "free_at(j - lines + 1))", "free_at(j - lines))",
      DATAFLOW + SWG_RTL),
    M("maxpool-compare", "hw/stream/pool.py", "Mux(first | (b > a), b, a)",
      "Mux(first | (b < a), b, a)", GRID),
    M("maxpool-bipolar-and", "hw/stream/pool.py", "Mux(first, b, a | b)", "Mux(first, b, a & b)",
      GRID),
    M("maxpool-writes-dropped", "hw/stream/pool.py", "wr.en.eq(in_fire & inside & ~last)",
      "wr.en.eq(in_fire & ~last)", GRID + POOL_RTL),
    M("maxpool-out-dims-ceil", "hw/stream/pool.py",
      "return h // self.node.kernel, w // self.node.kernel",
      "return -(-h // self.node.kernel), -(-w // self.node.kernel)", GRID + DATAFLOW),
    M("accpool-bipolar-as-bits", "hw/stream/pool.py",
      "value = 2 * v - 1 if s.dtype.kind is Kind.BIPOLAR else v", "value = v", GRID),
    M("accpool-last-pixel", "hw/stream/pool.py", "first, last = pix == 0, pix == H * W - 1",
      "first, last = pix == 0, pix == H * W - 2", GRID),
    M("threshold-half-rate", "hw/stream/threshold.py",
      "        m.d.comb += [\n            self.i.ready.eq(~out_valid | self.o.ready),",
      "        m.d.comb += [\n            self.i.ready.eq(~out_valid),", GRID,
      "issue 17's mutant 3 (passed the old 1 % / 15-cycle tolerance)"),
    M("threshold-strict-rtl", "hw/stream/threshold.py", "tree_sum([acc >= t for t in thr])",
      "tree_sum([acc > t for t in thr])", GRID),
    M("threshold-fold-wrap", "hw/stream/threshold.py",
      "fold.eq(Mux(fold == s.folds - 1, 0, fold + 1))", "fold.eq(Mux(fold == s.folds, 0, fold + 1))",
      GRID + THRESHOLD_RTL),
    M("dwc-ready-one-short", "hw/stream/dwc.py", "self.i.ready.eq(count + self.n_in <= cap)",
      "self.i.ready.eq(count + self.n_in < cap)", DWC),
    M("dwc-valid-late", "hw/stream/dwc.py", "self.o.valid.eq(count >= self.n_out)",
      "self.o.valid.eq(count > self.n_out)", DWC),
    M("dwc-cycles-faster-side", "hw/stream/dwc.py",
      "math.ceil(self.size / min(self.n_in, self.n_out))",
      "math.ceil(self.size / max(self.n_in, self.n_out))", ACCEL + ("tests/test_unit_protocol.py",)),
    M("label-ties-last", "hw/stream/label.py", "take = (v > cur) | ((beat == 0) & (p == 0))",
      "take = (v >= cur) | ((beat == 0) & (p == 0))", LABEL),
    # -- the MVTU's cycle model --------------------------------------------------------------------
    M("mvtu-cycle-per-vector", "hw/mvtu/spec.py", "cycles = self.cycles() * vectors",
      "cycles = (self.cycles() + 1) * vectors", CYCLES_EXACT,
      "a mapper one cycle per vector slow (passed the old demo test's 1 %)"),
    M("mvtu-cycles", "hw/mvtu/spec.py",
      "return self.neuron_folds * self.synapse_folds * self.plane_pairs",
      "return self.neuron_folds * (self.synapse_folds + 1) * self.plane_pairs", MVTU),
    # -- control block -----------------------------------------------------------------------------
    M("control-images-swapped", "hw/axi/control.py",
      '(REGISTERS["IMAGES_IN"], images_in),\n                    (REGISTERS["IMAGES_OUT"], images_out),',
      '(REGISTERS["IMAGES_IN"], images_out),\n                    (REGISTERS["IMAGES_OUT"], images_in),',
      CONTROL, "issue 17's mutant 2"),
    M("control-status-order", "hw/axi/control.py", "Cat(~running, done, running)",
      "Cat(running, done, ~running)", CONTROL),
    M("control-done-late", "hw/axi/control.py", "with m.If(images_out + 1 == target):",
      "with m.If(images_out == target):", CONTROL),
    M("control-image-beats", "hw/axi/control.py", "with m.If(beat == self.beats_per_image - 1):",
      "with m.If(beat == self.beats_per_image - 2):", CONTROL),
    M("control-cycles-hi", "hw/axi/control.py", '(REGISTERS["CYCLES_HI"], cycles[32:]),',
      '(REGISTERS["CYCLES_HI"], cycles[:32]),', CONTROL),
    M("control-strobe-lane", "hw/axi/control.py",
      "reg[8 * k : 8 * k + 8].eq(bus.wdata[8 * k : 8 * k + 8])", "reg[8 * k : 8 * k + 8].eq(bus.wdata[0:8])",
      CONTROL),
    M("control-wctrl-flags", "hw/axi/control.py",
      "self.wen | (self.werror << 8) | (self.wbusy << 16)",
      "self.wen | (self.wbusy << 8) | (self.werror << 16)", CONTROL),
    M("control-target-zero", "hw/axi/control.py", "running.eq(target != 0),", "running.eq(1),",
      CONTROL),
    M("axil-strobe", "hw/axi/axil.py", "with m.If(w_strb[b]):", "with m.If(w_strb[0]):", CONTROL),
    # -- mapping: the schedule's and the dataflow model's cycles -----------------------------------
    M("stream-cycles-floor", "mapping/schedule.py", "return math.ceil(elements * bits / per_cycle)",
      "return elements * bits // per_cycle", CYCLES_EXACT + MAPPING),
    M("dataflow-bound-ignores-io", "mapping/dataflow_model.py",
      "return max([s.cycles for s in stages] + [stages[0].in_words, stages[-1].out_words])",
      "return max([s.cycles for s in stages])", DFMODEL,
      "equivalent: in_ratio >= 1, so in_words = sf * vectors / in_ratio <= nf * sf * vectors "
      "= cycles, and out_words = nf * vectors <= cycles: the I/O terms never raise the bound",
      equivalent=True),
    M("dataflow-stage-cycles", "mapping/dataflow_model.py",
      "        return self.nf * self.sf * self.vectors\n",
      "        return self.nf * self.sf * self.vectors + 1\n", DFMODEL),
]


def _extract(dest: Path, rev: str) -> Path:
    pkg = dest / "lowbit"
    pkg.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(pkg)], input=archive, check=True)
    return pkg


def _run(m: Mutant, pkg: Path, env: dict) -> tuple[str, float, str]:
    """``(outcome, seconds, last line)``: outcome ``killed``, ``survived`` or ``timeout``."""
    path = pkg / m.file
    text = path.read_text()
    path.write_text(text.replace(m.original, m.replacement))
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                            "-p", "no:unraisableexception", *m.tests], cwd=pkg, env=env,
                           capture_output=True, text=True, timeout=TIMEOUT_S)
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        last = lines[-1] if lines else "no output"
        # killed only by a failing test (or a collection error), never by a crash after passing
        failed = r.returncode == 1 and (" failed" in last or " error" in last)
        outcome = "survived" if r.returncode == 0 else "killed" if failed else "crashed"
    except subprocess.TimeoutExpired:
        outcome, last = "timeout", f"no result in {TIMEOUT_S} s"
    finally:
        path.write_text(text)
    return outcome, time.perf_counter() - t0, str(last)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only the mutants whose id contains this")
    ap.add_argument("--rev", default="HEAD", help="the commit to mutate (default HEAD)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if args.k in m.id]
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lowbit-mutation-") as tmp:
        pkg = _extract(Path(tmp), args.rev)
        for m in chosen:  # every snippet first, so that a stale one stops the run at once
            n = (pkg / m.file).read_text().count(m.original)
            if n != 1:
                raise SystemExit(f"mutant {m.id!r}: the original snippet occurs {n} times in "
                                 f"{m.file} at {rev}, not once")
        env = dict(os.environ, PYTHONPATH=tmp, LOWBIT_CACHE=str(Path(tmp) / "cache"))
        for m in chosen:
            outcome, secs, last = _run(m, pkg, env)
            rows.append((m, outcome, secs, last))
            print(f"{outcome:8s} {secs:6.1f} s  {m.id:32s} {m.file}  {last}", flush=True)
    by_pkg: dict[str, list[int]] = {}
    for m, outcome, _, _ in rows:
        if m.equivalent:
            continue
        k = by_pkg.setdefault(m.package, [0, 0])
        k[0] += outcome in ("killed", "timeout")
        k[1] += 1
    killed = sum(k for k, _ in by_pkg.values())
    counted = sum(n for _, n in by_pkg.values())
    out = [f"# Mutation benchmark at {rev}", "",
           f"{len(rows)} single-site mutants (`benchmarks/mutation.py`), each run against its "
           "targeted tests only (`pytest -x`). A timeout counts as killed; a crash after passing "
           f"tests does not. {len(rows) - counted} equivalent mutants are not counted.", "",
           f"**Killed {killed} / {counted} ({100 * killed / max(1, counted):.1f} %)**", "",
           "| package | killed | mutants | rate |", "|---|---:|---:|---:|"]
    for p, (k, n) in sorted(by_pkg.items()):
        out.append(f"| {p} | {k} | {n} | {100 * k / n:.0f} % |")
    out += ["", "| mutant | file | outcome | seconds | tests | note |", "|---|---|---|---:|---|---|"]
    for m, outcome, secs, _ in rows:
        out.append(f"| {m.id} | {m.file} | {outcome} | {secs:.0f} | "
                   f"{', '.join(t.replace('tests/', '') for t in m.tests)} | {m.note} |")
    survivors = [(m, last) for m, outcome, _, last in rows if outcome in ("survived", "crashed")]
    out += ["", "## Survivors", ""]
    out += [f"- `{m.id}` ({m.file}): {m.note or 'no explanation: a test is missing'}"
            for m, _ in survivors] or ["None."]
    text = "\n".join(out) + "\n"
    print(text)
    if not args.no_write and not args.k:
        RESULTS.mkdir(exist_ok=True)
        atomic_write(RESULTS / "mutation.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
