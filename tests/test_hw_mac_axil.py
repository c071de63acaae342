# amaranth: UnusedElaboratable=no
"""Run-time weights over AXI4-Lite (Amaranth simulator): an MVTU with ``weights_writable=True``
whose weight memory is overwritten through :class:`AXI4LiteWeightWriter` computes with the new
weights exactly; byte strobes, read-back and out-of-range addresses behave as documented."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib.wiring import connect
from amaranth.sim import Simulator

from lowbit.hw._util import pack_words
from lowbit.hw.axi.axil import AXI4LiteWeightWriter, chunk_address, weight_chunks
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.ir import BIPOLAR, DataType, MatMulThreshold
from lowbit.ir.datatypes import TERNARY

pytestmark = pytest.mark.amaranth_sim


async def axil_write(ctx, bus, addr, data, strb=0xF):
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wdata, data)
    ctx.set(bus.wstrb, strb)
    ctx.set(bus.wvalid, 1)
    ctx.set(bus.bready, 1)
    aw_done = w_done = False
    while not (aw_done and w_done):
        _, _, awr, wr = await ctx.tick().sample(bus.awready, bus.wready)
        aw_done, w_done = aw_done or awr, w_done or wr
        if aw_done:
            ctx.set(bus.awvalid, 0)
        if w_done:
            ctx.set(bus.wvalid, 0)
    while True:
        _, _, bvalid, bresp = await ctx.tick().sample(bus.bvalid, bus.bresp)
        if bvalid:
            ctx.set(bus.bready, 0)
            return bresp


async def axil_read(ctx, bus, addr):
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    ctx.set(bus.rready, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    while True:
        _, _, rvalid, rdata, rresp = await ctx.tick().sample(bus.rvalid, bus.rdata, bus.rresp)
        if rvalid:
            ctx.set(bus.rready, 0)
            return rdata, rresp


def _node(rng, weights, name="fc"):
    in_dt = DataType.uint(3)
    w = rng.integers(-1, 2, (6, 12)) if weights is None else weights
    return MatMulThreshold(name, in_dt, w, None, weight_dtype=TERNARY)


@pytest.mark.parametrize("pe, simd", [(3, 4), (6, 12)])  # 24-bit and 144-bit (5 chunks) words
def test_new_weights_over_axi4_lite_are_used_exactly(pe, simd):
    rng = np.random.default_rng(pe)
    old = _node(rng, None)
    new_w = rng.integers(-1, 2, (6, 12))
    new = _node(rng, new_w, "fc_new")
    spec = MVTUSpec(old, pe=pe, simd=simd, weights_writable=True, weight_ram="distributed")
    mvtu, writer = spec.create(), AXI4LiteWeightWriter(spec)
    m = Module()
    m.submodules.mvtu, m.submodules.writer = mvtu, writer
    connect(m, writer.w, mvtu.w)
    x = rng.integers(0, 8, (3, 12))
    beats = [pack_words(row[k * simd:(k + 1) * simd], 3) for row in x for k in range(spec.synapse_folds)]
    got, resps = [], []

    async def producer(ctx):
        for addr, data in weight_chunks(spec, new_w):
            resps.append(await axil_write(ctx, writer.axil, addr, data))
        for beat in beats:
            ctx.set(mvtu.i.valid, 1)
            ctx.set(mvtu.i.payload.as_value(), beat)
            await ctx.tick().until(mvtu.i.ready)
        ctx.set(mvtu.i.valid, 0)

    async def consumer(ctx):
        ctx.set(mvtu.o.ready, 1)
        for _ in range(5000):
            _, _, valid, payload = await ctx.tick().sample(mvtu.o.valid, mvtu.o.payload.as_value())
            if valid:
                got.append(payload)
            if len(got) == len(x) * spec.neuron_folds:
                return
        raise AssertionError(f"only {len(got)} output beats")

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    ob = mvtu.out_shape.width
    vals = [(w >> (p * ob)) & ((1 << ob) - 1) for w in got for p in range(pe)]
    vals = np.array([v - (1 << ob) if v >> (ob - 1) else v for v in vals]).reshape(len(x), 6)
    assert set(resps) == {0}
    expected, stale = new.reference(x), old.reference(x)
    assert (expected != stale).any()  # the new weights make a difference
    bad = np.argwhere(vals != expected)
    assert not len(bad), f"vector {bad[0][0]} output {bad[0][1]}: {vals[tuple(bad[0])]} != {expected[tuple(bad[0])]}"


def test_strobes_readback_and_out_of_range():
    rng = np.random.default_rng(9)
    spec = MVTUSpec(_node(rng, None), pe=6, simd=12, weights_writable=True)  # 144-bit words, 5 chunks
    writer = AXI4LiteWeightWriter(spec)
    log = {}

    async def bench(ctx):
        bus = writer.axil
        log["w0"] = await axil_write(ctx, bus, chunk_address(spec, 0, 1), 0x11223344)
        log["w1"] = await axil_write(ctx, bus, chunk_address(spec, 0, 1), 0xAABBCCDD, strb=0b0101)
        log["r"] = await axil_read(ctx, bus, chunk_address(spec, 0, 1))
        log["bad_w"] = await axil_write(ctx, bus, chunk_address(spec, 1, 0), 1)  # one word only
        log["bad_chunk"] = await axil_write(ctx, bus, chunk_address(spec, 0, 5), 1)  # 5 chunks: 0..4
        log["bad_r"] = await axil_read(ctx, bus, chunk_address(spec, 0, 6))

    sim = Simulator(writer)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert log["w0"] == log["w1"] == 0
    assert log["r"] == (0x11BB33DD, 0)
    assert log["bad_w"] == log["bad_chunk"] == 0b10
    assert log["bad_r"] == (0, 0b10)


def test_writer_needs_a_writable_unit():
    spec = MVTUSpec(_node(np.random.default_rng(1), None), pe=1, simd=1)
    with pytest.raises(ValueError, match=r"^node 'fc': the MVTU needs weights_writable=True"):
        AXI4LiteWeightWriter(spec)


def test_bipolar_unit_is_writable_too():
    node = MatMulThreshold("b", BIPOLAR, np.zeros((2, 4), dtype=np.uint8), None)
    spec = MVTUSpec(node, pe=2, simd=4, weights_writable=True, weight_ram="block")
    assert spec.weight_word_bits == 8
    assert weight_chunks(spec, np.ones((2, 4), dtype=np.uint8)) == [(0, 0xFF)]
