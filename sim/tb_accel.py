"""cocotb testbench of the stitched accelerator (run by :mod:`lowbit.sim.accel_sim`).

Configuration comes from the JSON file named by ``LOWBIT_TB_CONFIG``: the model file, the images
file, the stream format and a list of runs (``valid_prob``, ``ready_prob``, ``seed``, ``images``).
For each run the driver pushes the images' beats, an input monitor reassembles the images that
were *accepted*, the reference model (``sw_reference`` through the integer graph) turns each into
expected scores and label (the graph's class decision, through its class map when it has one),
and an in-order scoreboard compares them with the output monitor's transactions using ``==``.
Results go to the JSON file named in the configuration.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from ..hw.codec import StreamFormat, decode_result, input_beats
from ..ir.graph import IntegerGraph
from .streams import Cycle, InOrderScoreboard, StreamDriver, StreamMonitor


def _compare(layer: str):
    def compare(got, expected):
        (glabel, gscores), (elabel, escores) = got, expected
        diffs = [
            (f"{layer}.scores", i, g, e) for i, (g, e) in enumerate(zip(gscores, escores)) if g != e
        ]
        if glabel != elabel:
            diffs.append(("label", 0, glabel, elabel))
        return diffs

    return compare


def _unpack_input(fmt: StreamFormat, beats: list[int]) -> list[int]:
    mask = (1 << fmt.in_bits) - 1
    return [(word >> (i * fmt.in_bits)) & mask for word in beats for i in range(fmt.simd)]


def _write_progress(path: str, run: str, done: int, total: int) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump({"run": run, "done": done, "total": total}, f)
    os.replace(path + ".tmp", path)


async def _reset(dut):
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


@cocotb.test()
async def accelerator_matches_reference(dut):
    with open(os.environ["LOWBIT_TB_CONFIG"]) as f:
        cfg = json.load(f)
    fmt = StreamFormat(**cfg["format"])
    graph = IntegerGraph.load(cfg["model"])
    with np.load(cfg["images"]) as z:
        x_all = z["x"]
    layer = graph.nodes[-1].name
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    results = []
    for run in cfg["runs"]:
        await _reset(dut)
        n = min(run["images"], len(x_all))
        x = x_all[:n]
        rng = random.Random(run["seed"])
        cycle = Cycle(dut.clk)
        scoreboard = InOrderScoreboard(_compare(layer))
        pending: list[int] = []

        def on_input(word, _cycle):
            pending.append(word)
            if len(pending) == fmt.beats_per_image:
                img = np.array([_unpack_input(fmt, pending)], dtype=np.int64)
                scores = graph.scores(img)[0]
                label = int(graph.decide(scores[None])[0])  # through the class map, if any
                scoreboard.expect((label, [int(v) for v in scores]))
                pending.clear()

        labels: list[int] = []

        every = max(1, n // 20)

        def on_output(word, _cycle):
            label, scores = decode_result(fmt, word)
            labels.append(label)
            scoreboard.observe((label, scores))
            if cfg.get("progress") and (len(labels) % every == 0 or len(labels) == n):
                _write_progress(cfg["progress"], run["name"], len(labels), n)

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
        for beats in input_beats(fmt, x):
            driver.send(beats)
        limit = run.get("max_cycles", 1000 + 200 * n * max(1, cfg.get("predicted_cycles", 1000)))
        while len(out_mon.beats) < n and cycle.count < limit:
            await RisingEdge(dut.clk)
        for t in tasks:
            t.cancel()
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        oc = out_mon.cycles
        warm = min(len(oc) - 1, max(1, len(oc) // 10))
        steady = (oc[-1] - oc[warm]) / (len(oc) - 1 - warm) if len(oc) - 1 > warm else None
        result = {
            "name": run["name"],
            "valid_prob": run["valid_prob"],
            "ready_prob": run["ready_prob"],
            "seed": run["seed"],
            "images": n,
            "outputs": len(out_mon.beats),
            "checked": scoreboard.checked,
            "mismatched_images": scoreboard.mismatched_items,
            "mismatches": [m.__dict__ for m in scoreboard.mismatches[:20]],
            "labels": labels,
            "cycles_total": cycle.count,
            "cycles_per_image": steady,
            "first_output_cycle": oc[0] if oc else None,
            "timed_out": len(out_mon.beats) < n,
        }
        dut._log.info(
            "run %s: %d images, %d mismatched, %s cycles/image",
            run["name"],
            n,
            scoreboard.mismatched_items,
            steady,
        )
        results.append(result)
    tmp = cfg["results"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"runs": results}, f)
    os.replace(tmp, cfg["results"])
    bad = [r["name"] for r in results if r["mismatched_images"] or r["timed_out"]]
    assert not bad, f"runs with mismatches or time-outs: {bad}"
