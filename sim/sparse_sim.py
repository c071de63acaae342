"""Simulate the sparse engine (:class:`lowbit.hw.sparse.SparseEngine`) and check it against the oracle.

* :func:`input_beats`, :func:`decode_outputs`, :func:`load_words` — the stream encodings (flat
  integers, first lane at the LSB), shared by every simulator.
* :func:`run_amaranth` — the Amaranth simulator (unit-test tier).
* :func:`simulate` — cocotb on Verilator: one build per spec (memories loaded at run time through
  the ``load`` port, so one build serves many layers of the same shape), the testbench
  :mod:`lowbit.sim.tb_sparse` compares outputs with ``sw_reference`` using ``==`` and measured
  cycles with the cycle model; on failure it runs again with VCD waves.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import LowbitError
from ..hw.sparse_spec import SparseEngineSpec
from ..sw_reference.sparse import SparseImage

__all__ = ["input_beats", "decode_outputs", "load_words", "run_amaranth", "AmaranthRun", "simulate",
           "SparseSimReport", "TOPLEVEL"]

log = logging.getLogger(__name__)

TOPLEVEL = "sparse_top"


def input_beats(spec: SparseEngineSpec, x) -> list[int]:
    """The input beats of one activation vector ``x`` (``cols`` integers), zero-padded to whole beats."""
    x = [int(v) for v in np.asarray(x).reshape(-1)]
    if len(x) != spec.cols:
        raise ValueError(f"x must have {spec.cols} activations, not {len(x)}")
    lo, hi = -(1 << (spec.act_bits - 1)), (1 << (spec.act_bits - 1)) - 1
    if x and (min(x) < lo or max(x) > hi):
        raise ValueError(f"activations must fit act_bits={spec.act_bits} ({lo}..{hi}), not {min(x)}..{max(x)}")
    x += [0] * (spec.beats * spec.lanes - len(x))
    mask = (1 << spec.act_bits) - 1
    return [sum((x[b * spec.lanes + i] & mask) << (i * spec.act_bits) for i in range(spec.lanes))
            for b in range(spec.beats)]


def decode_outputs(spec: SparseEngineSpec, beats: list[int]) -> list[int]:
    """The ``rows`` outputs carried by one vector's output beats (row ``g*N + p`` in lane ``p``)."""
    w, mask = spec.out_bits, (1 << spec.out_bits) - 1
    vals = []
    for word in beats:
        for p in range(spec.pes):
            v = (word >> (p * w)) & mask
            vals.append(v - (1 << w) if v >> (w - 1) else v)
    return vals[:spec.rows]


def load_words(spec: SparseEngineSpec, image: SparseImage) -> list[int]:
    """Payloads of the ``load`` stream that write ``image`` into every PE's memories."""
    from ..hw.sparse import load_layout, memory_images

    layout = load_layout(spec)
    if image.max_entries > spec.capacity:
        raise ValueError(f"image needs {image.max_entries} entries per PE; the engine holds {spec.capacity} (capacity)")
    off = {name: layout[name].offset for name in ("pe", "mem", "addr", "data")}
    words = []
    for p, mems in enumerate(memory_images(spec, image)):
        for kind, content in mems.items():
            for addr, value in enumerate(content):
                words.append(p << off["pe"] | kind << off["mem"] | addr << off["addr"] | value << off["data"])
    return words


@dataclass(frozen=True)
class AmaranthRun:
    outputs: tuple[tuple[int, ...], ...]   # per vector, the rows' outputs
    cycles: tuple[int, ...]                # per vector, the engine's cycle-count status


def run_amaranth(spec: SparseEngineSpec, xs, *, image: SparseImage | None = None, ready_prob: float = 1.0,
                 valid_prob: float = 1.0, seed: int = 0, vcd: str | None = None) -> AmaranthRun:
    """Run vectors ``xs`` through the engine in the Amaranth simulator.

    The engine is elaborated with ``spec.image``; ``image`` (optional) is written through the
    ``load`` port first.
    """
    from amaranth.sim import Simulator

    dut = spec.create()
    xs = np.atleast_2d(np.asarray(xs))
    rng = random.Random(seed)
    outputs, cycles = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        if image is not None:
            for word in load_words(spec, image):
                ctx.set(dut.load.valid, 1)
                ctx.set(dut.load.payload.as_value(), word)
                await ctx.tick()
            ctx.set(dut.load.valid, 0)
        for x in xs:
            beats = input_beats(spec, x)
            got = []
            while len(got) < spec.out_beats:
                if beats and rng.random() < valid_prob:
                    ctx.set(dut.i.valid, 1)
                    ctx.set(dut.i.payload.as_value(), beats[0])
                else:
                    ctx.set(dut.i.valid, 0)
                ready = rng.random() < ready_prob
                ctx.set(dut.o.ready, ready)
                _, _, iv, ir, ov, payload = await ctx.tick().sample(
                    dut.i.valid, dut.i.ready, dut.o.valid, dut.o.payload.as_value())
                if iv and ir:
                    beats.pop(0)
                if ov and ready:
                    got.append(int(payload))
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 0)
            await ctx.tick()
            outputs.append(tuple(decode_outputs(spec, got)))
            cycles.append(int(ctx.get(dut.cycles)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return AmaranthRun(tuple(outputs), tuple(cycles))
