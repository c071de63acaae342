"""cocotb testbench of the sparse engine (run by :func:`lowbit.sim.sparse_sim.simulate`).

Configuration: the JSON file named by ``LOWBIT_TB_CONFIG`` holds the spec's parameters (without
weights), a list of layers (an ``.npz`` with the image to load through the ``load`` port, the image
the reference uses, and the activation vectors) and a list of runs (layer, ``valid_prob``,
``ready_prob``, seed). For each run the driver pushes every vector's beats; an input monitor
reassembles the vectors that were *accepted*, the reference (``sw_reference`` through the spec)
turns each into the expected outputs and the cycle model into the expected cycles; an in-order
scoreboard compares the output monitor's vectors with ``==`` (row index and both values on a
mismatch). In runs without throttling, the cycles measured from the first accepted input beat to
the last accepted output beat must equal the cycle model, and the engine's ``cycles`` status must
equal the measurement.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from ..hw.sparse.cycle_model import column_walk, engine_cycles
from ..hw.sparse.engine_spec import SparseEngineSpec
from ..sw_reference.sparse import PEImage, SparseImage, dense_weights, sparse_matvec
from .sparse_sim import decode_outputs, input_beats, load_words
from .streams import Cycle, InOrderScoreboard, StreamDriver, StreamMonitor


def _image(z, prefix: str, spec: SparseEngineSpec) -> SparseImage:
    pes = [
        PEImage(z[f"{prefix}ptr{p}"], z[f"{prefix}v{p}"], z[f"{prefix}z{p}"])
        for p in range(spec.pes)
    ]
    return SparseImage(
        spec.rows,
        spec.cols,
        spec.pes,
        z[f"{prefix}codebook"],
        tuple(pes),
        spec.index_bits,
        spec.zero_bits,
    )


def _compare(got, expected):
    gvals, gcyc = got
    evals, ecyc = expected
    diffs = [("row", i, g, e) for i, (g, e) in enumerate(zip(gvals, evals)) if g != e]
    if ecyc is not None and gcyc != ecyc:
        diffs.append(("cycles", 0, gcyc, ecyc))
    return diffs


async def _reset(dut):
    dut.rst.value = 1
    dut.load__valid.value = 0
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def _load(dut, words):
    for w in words:
        await FallingEdge(dut.clk)
        dut.load__valid.value = 1
        dut.load__payload.value = w
    await FallingEdge(dut.clk)
    dut.load__valid.value = 0


def _unpack(spec: SparseEngineSpec, beats: list[int]) -> np.ndarray:
    w, mask = spec.act_bits, (1 << spec.act_bits) - 1
    vals = [(word >> (i * w)) & mask for word in beats for i in range(spec.lanes)]
    vals = [v - (1 << w) if v >> (w - 1) else v for v in vals]
    return np.array(vals[: spec.cols], dtype=np.int64)


@cocotb.test()
async def sparse_engine_matches_reference(dut):
    cfg = json.loads(open(os.environ["LOWBIT_TB_CONFIG"]).read())
    spec = SparseEngineSpec(**cfg["spec"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    results = []
    loaded = None
    for run in cfg["runs"]:
        with np.load(cfg["layers"][run["layer"]]) as z:
            hw_image, ref_image = _image(z, "hw_", spec), _image(z, "ref_", spec)
            xs = z["x"]
        if loaded != run["layer"]:
            await _reset(dut)
            await _load(dut, load_words(spec, hw_image))
            loaded = run["layer"]
        weights = dense_weights(ref_image)
        cnt, squashed = column_walk(ref_image, spec.entries_per_word)
        steady = run["valid_prob"] >= 1.0 and run["ready_prob"] >= 1.0
        rng = random.Random(run["seed"])
        cycle = Cycle(dut.clk)
        scoreboard = InOrderScoreboard(_compare)
        pending: list[int] = []
        first_in: list[int] = []
        statuses: list[tuple[int, int]] = []
        outputs: list[list[int]] = []
        got_beats: list[int] = []

        def on_input(word, cyc):
            if not pending:
                first_in.append(cyc)
            pending.append(word)
            if len(pending) == spec.beats:
                x = _unpack(spec, pending)
                y = sparse_matvec(
                    ref_image,
                    x,
                    shift=spec.shift,
                    out_bits=spec.out_bits,
                    relu=spec.relu,
                    weights=weights,
                )
                ecyc = engine_cycles(
                    cnt, x, depth=spec.depth, lanes=spec.lanes, rows=spec.rows, squashed=squashed
                ).cycles
                scoreboard.expect(([int(v) for v in y], ecyc if steady else None))
                pending.clear()

        async def read_status():
            await RisingEdge(dut.clk)
            await ReadOnly()
            statuses.append((int(dut.done.value), int(dut.cycles.value)))

        def on_output(word, cyc):
            got_beats.append(word)
            if len(got_beats) == spec.out_beats:
                vals = decode_outputs(spec, got_beats)
                measured = cyc - first_in[len(outputs)] + 1
                outputs.append(vals)
                scoreboard.observe((vals, measured if steady else None))
                got_beats.clear()
                cocotb.start_soon(read_status())
                measured_all.append(measured)

        measured_all: list[int] = []
        driver = StreamDriver(
            dut, "i", dut.clk, valid_prob=run["valid_prob"], rng=random.Random(rng.random())
        )
        in_mon = StreamMonitor(dut, "i", dut.clk, cycle, callback=on_input)
        out_mon = StreamMonitor(
            dut,
            "o",
            dut.clk,
            cycle,
            drive_ready=True,
            ready_prob=run["ready_prob"],
            rng=random.Random(rng.random()),
            callback=on_output,
        )
        tasks = [cocotb.start_soon(c.run()) for c in (cycle, driver, in_mon, out_mon)]
        for x in xs:
            driver.send(input_beats(spec, x))
        limit = 1000 + 20 * len(xs) * (
            spec.cols * spec.rows_per_pe + spec.beats + spec.out_beats + 50
        )
        while len(outputs) < len(xs) and cycle.count < limit:
            await RisingEdge(dut.clk)
        await ClockCycles(dut.clk, 2)
        for t in tasks:
            t.cancel()
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        status_bad = [k for k, (done, c) in enumerate(statuses) if not done or c != measured_all[k]]
        result = {
            "name": run["name"],
            "layer": run["layer"],
            "valid_prob": run["valid_prob"],
            "ready_prob": run["ready_prob"],
            "seed": run["seed"],
            "vectors": len(xs),
            "checked": scoreboard.checked,
            "mismatched_vectors": scoreboard.mismatched_items,
            "mismatches": [mm.__dict__ for mm in scoreboard.mismatches[:20]],
            "cycles": measured_all,
            "status_mismatches": status_bad,
            "outputs": outputs,
            "timed_out": len(outputs) < len(xs),
        }
        dut._log.info(
            "run %s: %d vectors, %d mismatched, cycles %s",
            run["name"],
            len(xs),
            scoreboard.mismatched_items,
            measured_all[:8],
        )
        results.append(result)
    tmp = cfg["results"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"runs": results}, f)
    os.replace(tmp, cfg["results"])
    bad = [
        r["name"]
        for r in results
        if r["mismatched_vectors"] or r["timed_out"] or r["status_mismatches"]
    ]
    assert not bad, f"runs with mismatches, time-outs or wrong cycle status: {bad}"
