# amaranth: UnusedElaboratable=no
"""Every dataflow block under cocotb on Verilator, bit-exact against ``sw_reference``.

One Verilog design holds the whole grid of blocks side by side (ports ``b<k>_i`` / ``b<k>_o``), so
one Verilator build covers them all. The grid: sliding-window generators, max-pools, global
accumulate-pools, a FIFO, MultiThreshold units, width converters and top-k label selects, at the
smallest shapes, non-power-of-two shapes, ``SIMD = C`` / ``PE = C``, with padding and strides,
plus shapes drawn from a seeded generator (seed in the test id). For each block the
cocotb test drives its input stream, monitors its output, and compares with the reference in
order with ``==``:

* ``steady`` — ``valid`` and ``ready`` always high: values, and the measured steady-state cycles
  per image (interval between the last output beats of consecutive images) equal to the spec's
  ``cycles()`` (``==``: every block's model claims exactness);
* ``throttled-seed<s>`` — ``valid`` and ``ready`` random from seed ``s``: values;
* ``reset`` — a reset in the middle of the first image, then the whole stream again: values.

The cocotb coroutine is in this file; the pytest launcher below builds and runs it.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest


GRID_SEED = 20261122
IMAGES = 3


# -- the grid ------------------------------------------------------------------------------------

def _grid():
    """``(name, spec-builder)``: each builder returns ``(component, x, expected, per-image cycles)``."""
    from lowbit.hw.stream.fifo import FIFOSpec
    from lowbit.hw.stream.pool import AccPoolSpec, MaxPoolSpec
    from lowbit.hw.stream.swg import SWGSpec
    from lowbit.hw.stream.threshold import ThresholdSpec
    from lowbit.ir import BIPOLAR, DataType
    from lowbit.ir.graph import GlobalAccPool, MaxPool, SlidingWindow

    U2, U3 = DataType.uint(2), DataType.uint(3)
    rng = np.random.default_rng(GRID_SEED)
    grid = []

    def images(dtype, shape):
        lo, hi = (0, 1) if dtype is BIPOLAR else (dtype.min, dtype.max)
        return rng.integers(lo, hi + 1, size=(IMAGES, *shape))

    def swg(name, shape, k, s, p, simd, dtype, pad_value=0):
        spec = SWGSpec(SlidingWindow(name, k, s, p, pad_value), shape, dtype, simd)
        x = images(dtype, shape)
        grid.append((name, spec, x, spec.reference(x), spec.cycles()))

    def maxpool(name, shape, k, simd, dtype):
        spec = MaxPoolSpec(MaxPool(name, k), shape, dtype, simd)
        x = images(dtype, shape)
        grid.append((name, spec, x, spec.reference(x), spec.cycles()))

    def accpool(name, shape, simd, dtype):
        spec = AccPoolSpec(GlobalAccPool(name, dtype), shape, dtype, simd)
        x = images(dtype, shape)
        grid.append((name, spec, x, spec.reference(x), spec.cycles()))

    swg("swg_smallest", (1, 1, 1), 1, 1, 0, 1, BIPOLAR)
    swg("swg_pad_nonpow2", (5, 3, 3), 3, 1, 1, 3, U3, pad_value=5)
    swg("swg_simd_eq_c_stride2", (6, 5, 6), 3, 2, 0, 6, U2)
    swg("swg_k2s2_dropped_row", (7, 7, 4), 2, 2, 0, 2, BIPOLAR)
    swg("swg_bipolar_pad1", (4, 4, 2), 3, 1, 1, 2, BIPOLAR, pad_value=1)
    for j in range(2):  # drawn from GRID_SEED
        k = int(rng.integers(1, 4))
        c = int(rng.choice([1, 2, 3, 4, 6]))
        h, w = (int(v) for v in rng.integers(k, 8, size=2))
        simd = int(rng.choice([d for d in range(1, c + 1) if c % d == 0]))
        swg(f"swg_random{j}", (h, w, c), k, int(rng.integers(1, 3)), int(rng.integers(0, k)), simd, U3,
            pad_value=int(rng.integers(0, 8)))
    maxpool("maxpool_smallest", (2, 2, 1), 2, 1, BIPOLAR)
    maxpool("maxpool_nonpow2_dropped", (5, 7, 6), 2, 3, U3)
    maxpool("maxpool_pe_eq_c_k3", (6, 6, 4), 3, 4, U2)
    maxpool("maxpool_bipolar_or", (4, 6, 4), 2, 2, BIPOLAR)
    accpool("accpool_bipolar", (3, 3, 4), 2, BIPOLAR)
    accpool("accpool_nonpow2", (2, 5, 3), 3, U3)

    spec = FIFOSpec(U3, 3, 4)
    x = images(U3, (5, 3))
    grid.append(("fifo", spec, x, spec.reference(x), spec.cycles(5)))
    for name, c, pe, dt, k in (("threshold_uint2", 6, 3, DataType.int(6), 3),
                               ("threshold_bipolar_pe_eq_c", 4, 4, DataType.uint(5), 1),
                               ("threshold_smallest", 1, 1, DataType.int(2), 1)):
        t = np.sort(rng.integers(dt.min, dt.max + 2, size=(c, k)), axis=1)
        spec = ThresholdSpec(t, dt, pe, name=name)
        x = images(dt, (3, c))
        grid.append((name, spec, x, spec.reference(x), spec.cycles(3)))
    return grid


def _dwc_grid():
    from lowbit.hw.stream.dwc import StreamWidthConverter
    from amaranth.hdl import unsigned
    rng = np.random.default_rng(GRID_SEED + 1)
    out = []
    for n_in, n_out in ((2, 3), (6, 4), (1, 5)):
        n = 2 * 3 * 5 * 2  # elements per image, a multiple of every width
        x = rng.integers(0, 4, size=(IMAGES, n))
        out.append((f"dwc_{n_in}_to_{n_out}", StreamWidthConverter(unsigned(2), n_in=n_in, n_out=n_out),
                    x, x, max(n // n_in, n // n_out)))
    return out


def _label_grid():
    from lowbit.hw.stream.label import LabelSelect
    from amaranth.hdl import signed
    rng = np.random.default_rng(GRID_SEED + 2)
    out = []
    for classes, pe, k in ((10, 2, 3), (6, 3, 1), (4, 1, 4)):
        scores = rng.integers(-4, 4, size=(IMAGES, classes))  # narrow range: many ties
        out.append((f"topk_c{classes}_pe{pe}_k{k}", LabelSelect(signed(5), classes=classes, pe=pe, top_k=k),
                    scores, scores, classes // pe))
    return out


# -- packing -------------------------------------------------------------------------------------

def _beats(values: np.ndarray, per_beat: int, width: int) -> list[int]:
    flat = np.asarray(values).reshape(-1, per_beat)
    mask = (1 << width) - 1
    return [sum((int(v) & mask) << (i * width) for i, v in enumerate(row)) for row in flat]


def _label_words(comp, scores: np.ndarray) -> list[int]:
    """Expected result beats of a top-k label select: ``label``, ``scores``, then ``top`` (k labels)."""
    from amaranth.hdl import Shape
    from amaranth.lib import data
    layout = comp.result_layout
    words = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda c: (-int(row[c]), c))  # ties: lowest index first
        fields = {"label": order[0], "scores": [int(v) for v in row]}
        if "top" in layout.members:
            fields["top"] = order[:comp.top_k]
        word = 0
        for name, value in fields.items():
            f = layout[name]
            if isinstance(f.shape, data.ArrayLayout):
                ew = Shape.cast(f.shape.elem_shape).width
                for i, v in enumerate(value):
                    word |= (int(v) & ((1 << ew) - 1)) << (f.offset + i * ew)
            else:
                word |= (int(value) & ((1 << Shape.cast(f.shape).width) - 1)) << f.offset
        words.append(word)
    return words


def _elem_width(port) -> tuple[int, int]:
    from amaranth.hdl import Shape
    from amaranth.lib import data
    shape = port.payload.shape()
    if isinstance(shape, data.ArrayLayout):
        return shape.length, Shape.cast(shape.elem_shape).width
    return 1, shape.size


def build_bench():
    """The bench component and the cocotb configuration of every block."""
    from amaranth.hdl import Module
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import In, Out, connect, flipped

    entries = [(n, spec.create(), x, y, c) for n, spec, x, y, c in _grid()] + _dwc_grid() + _label_grid()

    class Bench(wiring.Component):
        def __init__(self):
            members = {}
            for k, (_, comp, *_rest) in enumerate(entries):
                members[f"b{k}_i"] = In(stream.Signature(comp.i.payload.shape()))
                members[f"b{k}_o"] = Out(stream.Signature(comp.o.payload.shape()))
            super().__init__(members)
            self.entries = entries

        def elaborate(self, platform):
            m = Module()
            for k, (name, comp, *_rest) in enumerate(entries):
                m.submodules[name] = comp
                connect(m, flipped(getattr(self, f"b{k}_i")), comp.i)
                connect(m, comp.o, flipped(getattr(self, f"b{k}_o")))
            return m

    blocks = []
    for k, (name, comp, x, y, cycles) in enumerate(entries):
        n_in, w_in = _elem_width(comp.i)
        ins = _beats(x, n_in, w_in)
        if name.startswith("topk"):
            outs = _label_words(comp, y)
        else:
            n_out, w_out = _elem_width(comp.o)
            outs = _beats(y, n_out, w_out)
        blocks.append({"name": name, "port": f"b{k}", "in": ins, "out": outs, "images": IMAGES,
                       "out_per_image": len(outs) // IMAGES, "cycles": cycles})
    return Bench(), blocks


# -- the cocotb test (runs inside the simulator) ---------------------------------------------------

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, RisingEdge
except ImportError:  # pragma: no cover - cocotb is a test dependency
    cocotb = None

if cocotb is not None:
    @cocotb.test()
    async def blocks_match_reference(dut):
        from lowbit.sim.streams import Cycle, StreamDriver, StreamMonitor

        cfg = json.loads(Path(os.environ["LOWBIT_TB_CONFIG"]).read_text())
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        results = []

        async def reset():
            dut.rst.value = 1
            await ClockCycles(dut.clk, 3)
            dut.rst.value = 0
            await RisingEdge(dut.clk)

        async def run(name, vp, rp, seed, stop_after=None):
            await reset()
            cycle = Cycle(dut.clk)
            tasks, mons = [cocotb.start_soon(cycle.run())], []
            for b in cfg["blocks"]:
                rng = random.Random(f"{seed}-{b['name']}")
                drv = StreamDriver(dut, f"{b['port']}_i", dut.clk, valid_prob=vp, rng=random.Random(rng.random()))
                mon = StreamMonitor(dut, f"{b['port']}_o", dut.clk, cycle, drive_ready=True, ready_prob=rp,
                                    rng=random.Random(rng.random()))
                drv.send(b["in"])
                tasks += [cocotb.start_soon(drv.run()), cocotb.start_soon(mon.run())]
                mons.append(mon)
            limit = stop_after or 200_000
            while cycle.count < limit and not all(len(m.beats) >= len(b["out"]) for m, b in zip(mons, cfg["blocks"])):
                await RisingEdge(dut.clk)
            for t in tasks:
                t.cancel()
            for b in cfg["blocks"]:
                getattr(dut, f"{b['port']}_i__valid").value = 0
                getattr(dut, f"{b['port']}_o__ready").value = 0
            if stop_after is not None:
                return
            for m, b in zip(mons, cfg["blocks"]):
                per, oc = b["out_per_image"], m.cycles
                ends = [oc[(i + 1) * per - 1] for i in range(b["images"])] if len(oc) >= len(b["out"]) else []
                steady = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else None
                bad = [(i, g, e) for i, (g, e) in enumerate(zip(m.beats, b["out"])) if g != e]
                results.append({"run": name, "block": b["name"], "outputs": len(m.beats), "expected": len(b["out"]),
                                "first_mismatch": bad[0] if bad else None, "mismatches": len(bad),
                                "cycles_per_image": steady, "model_cycles": b["cycles"]})

        await run("steady", 1.0, 1.0, 0)
        for seed in cfg["seeds"]:
            await run(f"throttled-seed{seed}", 0.6, 0.5, seed)
        await run("reset-abort", 1.0, 1.0, 99, stop_after=cfg["reset_after"])
        await run("reset", 0.8, 0.8, 100)
        Path(cfg["results"]).write_text(json.dumps(results))


# -- the pytest launcher -------------------------------------------------------------------------

SEEDS = (3,)


@pytest.fixture(scope="module")
def bench_results(tmp_path_factory):
    from lowbit.hw.verilog import to_verilog
    from lowbit.tools import simulators as runner

    work = tmp_path_factory.mktemp("dataflow_cocotb")
    bench, blocks = build_bench()
    vpath = work / "bench.v"
    vpath.write_text(to_verilog(bench, "dataflow_bench"))
    cfg = {"blocks": blocks, "seeds": list(SEEDS), "reset_after": 7, "results": str(work / "results.json")}
    (work / "cfg.json").write_text(json.dumps(cfg))
    runner.build(vpath, "dataflow_bench", work / "build")
    here = str(Path(__file__).resolve().parent)
    env = {"LOWBIT_TB_CONFIG": str(work / "cfg.json"),
           "PYTHONPATH": os.pathsep.join([here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    runner.run_test("test_dataflow_cocotb", "dataflow_bench", work / "build", env=env)
    assert (work / "results.json").is_file(), f"no results; see {work / 'build' / 'sim.log'}"
    return json.loads((work / "results.json").read_text()), blocks


def _names():
    return [b for b in ["swg_smallest", "swg_pad_nonpow2", "swg_simd_eq_c_stride2", "swg_k2s2_dropped_row",
                        "swg_bipolar_pad1", "swg_random0", "swg_random1", "maxpool_smallest",
                        "maxpool_nonpow2_dropped", "maxpool_pe_eq_c_k3", "maxpool_bipolar_or", "accpool_bipolar",
                        "accpool_nonpow2", "fifo", "threshold_uint2", "threshold_bipolar_pe_eq_c",
                        "threshold_smallest", "dwc_2_to_3", "dwc_6_to_4", "dwc_1_to_5",
                        "topk_c10_pe2_k3", "topk_c6_pe3_k1", "topk_c4_pe1_k4"]]


@pytest.mark.cocotb
@pytest.mark.parametrize("block", _names())
@pytest.mark.parametrize("run", ["steady"] + [f"throttled-seed{s}" for s in SEEDS] + ["reset"])
def test_block_bit_exact(bench_results, block, run):
    results, _ = bench_results
    r = next(r for r in results if r["block"] == block and r["run"] == run)
    assert r["outputs"] == r["expected"], r
    assert r["mismatches"] == 0, f"{block} ({run}): first mismatch (beat, got, expected) = {r['first_mismatch']}"


@pytest.mark.cocotb
@pytest.mark.parametrize("block", _names())
def test_block_steady_cycles_match_model(bench_results, block):
    results, _ = bench_results
    r = next(r for r in results if r["block"] == block and r["run"] == "steady")
    measured, model = r["cycles_per_image"], r["model_cycles"]
    assert measured is not None
    assert measured == model, f"{block}: measured {measured}, model {model}"


def test_grid_is_seeded_and_covers_the_corners():
    names = [g[0] for g in _grid()]
    assert names == [n for n in _names() if not n.startswith(("dwc", "topk"))]
    assert [g[0] for g in _grid()] == names  # the same grid twice: drawn from GRID_SEED


# -- the same grid in the Amaranth simulator (no Verilator build: fast, for the mutation benchmark) --

@pytest.mark.amaranth_sim
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # the other blocks
@pytest.mark.parametrize("block", _names())
def test_block_in_the_amaranth_simulator(block):
    """Each block alone, ``valid`` and ``ready`` high: the reference's beats, and every image after
    the first ends exactly the model's cycles after the previous one."""
    from test_hw_streams import stream_through

    bench, blocks = build_bench()
    k = next(k for k, b in enumerate(blocks) if b["name"] == block)
    b, comp = blocks[k], bench.entries[k][1]
    outs, cycles = stream_through(comp, b["in"], len(b["out"]), 50 * (len(b["in"]) + len(b["out"])) + 100)
    assert outs == b["out"]
    per = b["out_per_image"]
    ends = [cycles[(i + 1) * per - 1] for i in range(b["images"])]
    assert np.diff(ends).tolist() == [b["cycles"]] * (b["images"] - 1), ends
