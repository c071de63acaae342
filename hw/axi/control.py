"""The accelerator shell's AXI4-Lite control block (Amaranth): start, done, image counts, cycle
counter.

Register map (32-bit registers, byte addresses; :data:`REGISTERS`):

====== ============ ===============================================================================
offset name         meaning
====== ============ ===============================================================================
0x00   CTRL         write 1 to bit 0: start a run (clears the counters); bit 1: stop the run
0x04   STATUS       bit 0 idle, bit 1 done (the run's last result was accepted), bit 2 running
0x08   TARGET       images in the run: it is done when that many results have been accepted
0x0C   IMAGES_IN    images whose last input beat was accepted in this run
0x10   IMAGES_OUT   results accepted in this run
0x14   CYCLES_LO    clock cycles from start to done (or to now while running), low word
0x18   CYCLES_HI    high word
0x1C   ID           :data:`ID_VALUE` ("lowbit" magic and the register map's version)
0x20   WCTRL        bit 0 (read/write): the weight fetchers run (see below). Read: bits 8 + k the
                    sticky error flag of weight port ``k`` (an AXI read answered other than OKAY),
                    bits 16 + k its busy flag (bursts in flight or words buffered)
0x24   WPORTS       number of weight ports (read-only)
0x40   WBASE_LO(k)  at ``0x40 + 8 k``: low word of the DDR byte address of port ``k``'s weight image
0x44   WBASE_HI(k)  at ``0x44 + 8 k``: high word
====== ============ ===============================================================================

Weight ports: a layer whose weights stream from DDR has a
:class:`~lowbit.hw.axi.wfetch.WeightFetcher` in the shell reading its weight image
(:func:`~lowbit.hw.axi.wfetch.pack_image`) from ``WBASE(k)`` over and over. Software writes every
``WBASE(k)``, then ``WCTRL`` = 1, once, before the first run; the fetchers then keep the layers
supplied across runs. Writing ``WCTRL`` = 0 stops and flushes them.

The block only observes the data path: the shell feeds it ``in_beat`` (an input beat accepted) and
``out_result`` (a result accepted); the DMA decides how many images flow. Software writes
``TARGET``, then ``CTRL`` = 1, then starts the DMA transfers, and polls ``STATUS`` for done. Writes
to unknown or read-only offsets are ignored with an OKAY response, as simple AXI4-Lite peripherals
do; reads of unknown offsets return 0.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axil import AXI4LiteSignature

__all__ = [
    "REGISTERS",
    "ID_VALUE",
    "ADDR_BITS",
    "MAX_WEIGHT_PORTS",
    "wbase_offsets",
    "ControlBlock",
]

REGISTERS = {
    "CTRL": 0x00,
    "STATUS": 0x04,
    "TARGET": 0x08,
    "IMAGES_IN": 0x0C,
    "IMAGES_OUT": 0x10,
    "CYCLES_LO": 0x14,
    "CYCLES_HI": 0x18,
    "ID": 0x1C,
    "WCTRL": 0x20,
    "WPORTS": 0x24,
    "WBASE": 0x40,
}
"""Byte offsets; ``WBASE`` is port 0's low word (see :func:`wbase_offsets`)."""
ID_VALUE = 0x10B1_0002
"""Read from ``ID``: ``0x10B1`` ("lowbit") and register-map version 2."""
ADDR_BITS = 8
"""Width of the control port's byte addresses."""
MAX_WEIGHT_PORTS = 8


def wbase_offsets(k: int) -> tuple[int, int]:
    """Byte offsets of ``(WBASE_LO(k), WBASE_HI(k))``."""
    if not isinstance(k, int) or not 0 <= k < MAX_WEIGHT_PORTS:
        raise ValueError(f"weight port must be an integer in [0, {MAX_WEIGHT_PORTS}), not {k!r}")
    lo = REGISTERS["WBASE"] + 8 * k
    return lo, lo + 4


class ControlBlock(wiring.Component):
    """The control registers of one accelerator with ``beats_per_image`` input beats per image and
    ``weight_ports`` weight fetchers (ports ``wen``, ``wbase<k>``, ``werror``,
    ``wbusy`` when > 0)."""

    def __init__(self, beats_per_image: int, weight_ports: int = 0):
        if not isinstance(beats_per_image, int) or beats_per_image < 1:
            raise ValueError(f"beats_per_image must be a positive integer, not {beats_per_image!r}")
        if not isinstance(weight_ports, int) or not 0 <= weight_ports <= MAX_WEIGHT_PORTS:
            raise ValueError(
                f"weight_ports must be an integer in [0, {MAX_WEIGHT_PORTS}], not {weight_ports!r}"
            )
        self.beats_per_image, self.weight_ports = beats_per_image, weight_ports
        members = {
            "axil": In(AXI4LiteSignature(ADDR_BITS)),
            "in_beat": In(1),
            "out_result": In(1),
        }
        if weight_ports:
            members.update({"wen": Out(1), "werror": In(weight_ports), "wbusy": In(weight_ports)})
            members.update({f"wbase{k}": Out(64) for k in range(weight_ports)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        running, done = Signal(), Signal()
        target, images_in, images_out = Signal(32), Signal(32), Signal(32)
        cycles = Signal(64)
        beat = Signal(range(self.beats_per_image))
        start, stop = Signal(), Signal()

        # Writes: take address and data together, then answer OKAY.
        write = Signal()
        m.d.comb += [
            write.eq(bus.awvalid & bus.wvalid & ~bus.bvalid),
            bus.awready.eq(write),
            bus.wready.eq(write),
            bus.bresp.eq(0),
        ]
        with m.If(write):
            m.d.sync += bus.bvalid.eq(1)
            with m.Switch(bus.awaddr):
                with m.Case(REGISTERS["CTRL"]):
                    m.d.comb += [
                        start.eq(bus.wdata[0] & bus.wstrb[0]),
                        stop.eq(bus.wdata[1] & bus.wstrb[0]),
                    ]
                with m.Case(REGISTERS["TARGET"]):
                    self._write(m, target, bus)
                if self.weight_ports:
                    with m.Case(REGISTERS["WCTRL"]):
                        with m.If(bus.wstrb[0]):
                            m.d.sync += self.wen.eq(bus.wdata[0])
                    for k in range(self.weight_ports):
                        lo, hi = wbase_offsets(k)
                        base = getattr(self, f"wbase{k}")
                        with m.Case(lo):
                            self._write(m, base[:32], bus)
                        with m.Case(hi):
                            self._write(m, base[32:], bus)
        with m.Elif(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        # Reads: one register per address, answered the cycle after the address.
        m.d.comb += [bus.arready.eq(~bus.rvalid), bus.rresp.eq(0)]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += bus.rvalid.eq(1)
            with m.Switch(bus.araddr):
                regs = [
                    (REGISTERS["STATUS"], Cat(~running, done, running)),
                    (REGISTERS["TARGET"], target),
                    (REGISTERS["IMAGES_IN"], images_in),
                    (REGISTERS["IMAGES_OUT"], images_out),
                    (REGISTERS["CYCLES_LO"], cycles[:32]),
                    (REGISTERS["CYCLES_HI"], cycles[32:]),
                    (REGISTERS["ID"], ID_VALUE),
                    (REGISTERS["WPORTS"], self.weight_ports),
                ]
                if self.weight_ports:
                    n = self.weight_ports
                    regs.append(
                        (REGISTERS["WCTRL"], self.wen | (self.werror << 8) | (self.wbusy << 16))
                    )
                    for k in range(n):
                        lo, hi = wbase_offsets(k)
                        base = getattr(self, f"wbase{k}")
                        regs += [(lo, base[:32]), (hi, base[32:])]
                for offset, value in regs:
                    with m.Case(offset):
                        m.d.sync += bus.rdata.eq(value)
                with m.Default():
                    m.d.sync += bus.rdata.eq(0)
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        # The run.
        with m.If(start):
            m.d.sync += [
                running.eq(target != 0),
                done.eq(target == 0),
                images_in.eq(0),
                images_out.eq(0),
                cycles.eq(0),
                beat.eq(0),
            ]
        with m.Elif(stop):
            m.d.sync += running.eq(0)
        with m.Elif(running):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(self.in_beat):
                with m.If(beat == self.beats_per_image - 1):
                    m.d.sync += [beat.eq(0), images_in.eq(images_in + 1)]
                with m.Else():
                    m.d.sync += beat.eq(beat + 1)
            with m.If(self.out_result):
                m.d.sync += images_out.eq(images_out + 1)
                with m.If(images_out + 1 == target):
                    m.d.sync += [running.eq(0), done.eq(1)]
        return m

    @staticmethod
    def _write(m: Module, reg, bus) -> None:
        """A 32-bit register write honouring the byte strobes."""
        for k in range(4):
            with m.If(bus.wstrb[k]):
                m.d.sync += reg[8 * k : 8 * k + 8].eq(bus.wdata[8 * k : 8 * k + 8])
