"""A simulation-only model of the PS's DDR behind one AXI-HP port: an AXI4 read slave.

:class:`SimulatedDDR` holds ``2 ** log_depth`` 32-bit words, loaded through its ``load`` port one
word per cycle while ``load.we`` is 1. A read burst of byte address ``A`` returns the words
``(A >> 2) & (2 ** log_depth - 1)`` onwards (the driver aligns each buffer to a power of two at
least its size). Up to 16 bursts queue; a burst's data starts ``latency`` cycles after its address
was accepted, and a beat of ``data_bits`` goes out when the credit, earned at ``rate`` bits per
cycle and banked up to two beats, covers it. ``rresp`` is always OKAY.

It stands behind each weight fetcher of the simulated PYNQ overlay
(:class:`~lowbit.hw.axi.shells_sim.SimulatedShell`), so the overlay's measured cycles include the
DDR's bandwidth and latency (``benchmarks/ddr_fetch.py``).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .wfetch import AXI4ReadSignature

__all__ = ["SimulatedDDR", "DDR_READ_SIGNALS", "QUEUE_DEPTH", "log_depth"]

QUEUE_DEPTH = 16
"""Read bursts the model queues (``arready`` falls when they are all taken)."""

DDR_READ_SIGNALS = (
    "araddr",
    "arlen",
    "arvalid",
    "arready",
    "rdata",
    "rresp",
    "rlast",
    "rvalid",
    "rready",
)
"""The AXI4 read signals the model has (not ``arsize``, ``arburst``, ``arcache`` nor ``arprot``)."""


def log_depth(image_bytes: int) -> int:
    """log2 of the 32-bit words of a simulated memory holding ``image_bytes`` bytes (at least 16
    words)."""
    if not isinstance(image_bytes, int) or isinstance(image_bytes, bool) or image_bytes < 0:
        raise ValueError(f"image_bytes must be a non-negative integer, not {image_bytes!r}")
    return max(4, (-(-image_bytes // 4) - 1).bit_length())


def _positive(name: str, v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, not {v!r}")
    return v


class SimulatedDDR(wiring.Component):
    """The DDR model (see the module docstring).

    Parameters
    ----------
    addr_bits, data_bits : int
        Address and data width of the AXI4 read port (``data_bits`` a multiple of 32).
    log_depth : int
        log2 of the 32-bit words held.
    rate : int
        Bits per cycle delivered.
    latency : int
        Cycles from a burst's address to its first beat.

    Members
    -------
    load : ``In``: ``we``, ``addr`` (``log_depth`` bits), ``data`` (32 bits)
    bus : ``In(AXI4ReadSignature(...))`` restricted to :data:`DDR_READ_SIGNALS` (a slave)
    """

    def __init__(self, *, addr_bits: int, data_bits: int, log_depth: int, rate: int, latency: int):
        _positive("addr_bits", addr_bits)
        if _positive("data_bits", data_bits) % 32:
            raise ValueError(f"data_bits must be a multiple of 32, not {data_bits!r}")
        if (
            isinstance(log_depth, bool)
            or not isinstance(log_depth, int)
            or not 1 <= log_depth <= 30
        ):
            raise ValueError(f"log_depth must be an integer in 1..30, not {log_depth!r}")
        self.addr_bits, self.data_bits, self.log_depth = addr_bits, data_bits, log_depth
        self.rate, self.latency = _positive("rate", rate), _positive("latency", latency)
        read = AXI4ReadSignature(addr_bits, data_bits).flip().members
        super().__init__(
            {
                "load": In(
                    wiring.Signature({"we": Out(1), "addr": Out(log_depth), "data": Out(32)})
                ),
                "bus": Out(wiring.Signature({name: read[name] for name in DDR_READ_SIGNALS})),
            }
        )

    def elaborate(self, platform):
        m = Module()
        dw, depth_bits = self.data_bits, self.log_depth
        words = dw // 32
        bus, load = self.bus, self.load

        m.submodules.mem = mem = memory.Memory(shape=32, depth=1 << depth_bits, init=[])
        wr = mem.write_port()
        m.d.comb += [wr.en.eq(load.we), wr.addr.eq(load.addr), wr.data.eq(load.data)]

        qa = Array(Signal(depth_bits, name=f"qa{k}") for k in range(QUEUE_DEPTH))
        ql = Array(Signal(8, name=f"ql{k}") for k in range(QUEUE_DEPTH))
        qt = Array(Signal(32, name=f"qt{k}") for k in range(QUEUE_DEPTH))
        count = Signal(range(QUEUE_DEPTH + 1))
        head, tail = Signal(4), Signal(4)
        now = Signal(32)
        beat = Signal(8)
        credit = Signal(16)

        active = (count != 0) & (now >= qt[head])
        fire = Signal()
        m.d.comb += [
            bus.arready.eq(count != QUEUE_DEPTH),
            bus.rvalid.eq(active & (credit >= dw)),
            bus.rlast.eq(beat == ql[head]),
            bus.rresp.eq(0),
            fire.eq(bus.rvalid & bus.rready),
        ]
        for g in range(words):
            rd = mem.read_port(domain="comb")
            m.d.comb += [
                rd.addr.eq((qa[head] + beat * words + g)[:depth_bits]),
                bus.rdata[32 * g : 32 * (g + 1)].eq(rd.data),
            ]

        push = bus.arvalid & bus.arready
        pop = fire & bus.rlast
        m.d.sync += [now.eq(now + 1), count.eq(count + push - pop)]
        with m.If(push):
            m.d.sync += [
                qa[tail].eq(bus.araddr[2 : depth_bits + 2]),
                ql[tail].eq(bus.arlen),
                qt[tail].eq(now + self.latency),
                tail.eq(tail + 1),
            ]
        with m.If(fire):
            m.d.sync += beat.eq(Mux(bus.rlast, 0, beat + 1))
            with m.If(pop):
                m.d.sync += head.eq(head + 1)
        earned = credit + self.rate - Mux(fire, dw, 0)
        m.d.sync += credit.eq(Mux(earned > 2 * dw, 2 * dw, earned))
        return m
