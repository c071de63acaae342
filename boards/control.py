"""The accelerator shell's AXI4-Lite control block (Amaranth): start, done, image counts, cycle counter.

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
====== ============ ===============================================================================

The block only observes the data path: the shell feeds it ``in_beat`` (an input beat accepted) and
``out_result`` (a result accepted); the DMA decides how many images flow. Software writes
``TARGET``, then ``CTRL`` = 1, then starts the DMA transfers, and polls ``STATUS`` for done. Writes to unknown or read-only offsets are ignored with an OKAY
response, as simple AXI4-Lite peripherals do; reads of unknown offsets return 0.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..hw.axil import AXI4LiteSignature

__all__ = ["REGISTERS", "ID_VALUE", "ControlBlock"]

REGISTERS = {"CTRL": 0x00, "STATUS": 0x04, "TARGET": 0x08, "IMAGES_IN": 0x0C, "IMAGES_OUT": 0x10,
             "CYCLES_LO": 0x14, "CYCLES_HI": 0x18, "ID": 0x1C}
ID_VALUE = 0x10B1_0001
"""Read from ``ID``: ``0x10B1`` ("lowbit") and register-map version 1."""


class ControlBlock(wiring.Component):
    """The control registers of one accelerator with ``beats_per_image`` input beats per image."""

    def __init__(self, beats_per_image: int):
        if not isinstance(beats_per_image, int) or beats_per_image < 1:
            raise ValueError(f"beats_per_image must be a positive integer, not {beats_per_image!r}")
        self.beats_per_image = beats_per_image
        super().__init__({
            "axil": In(AXI4LiteSignature(5)),
            "in_beat": In(1),
            "out_result": In(1),
        })

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
                    m.d.comb += [start.eq(bus.wdata[0] & bus.wstrb[0]), stop.eq(bus.wdata[1] & bus.wstrb[0])]
                with m.Case(REGISTERS["TARGET"]):
                    for k in range(4):
                        with m.If(bus.wstrb[k]):
                            m.d.sync += target[8 * k:8 * k + 8].eq(bus.wdata[8 * k:8 * k + 8])
        with m.Elif(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        # Reads: one register per address, answered the cycle after the address.
        m.d.comb += [bus.arready.eq(~bus.rvalid), bus.rresp.eq(0)]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += bus.rvalid.eq(1)
            with m.Switch(bus.araddr):
                for name, value in (("STATUS", Cat(~running, done, running)), ("TARGET", target),
                                    ("IMAGES_IN", images_in), ("IMAGES_OUT", images_out),
                                    ("CYCLES_LO", cycles[:32]), ("CYCLES_HI", cycles[32:]), ("ID", ID_VALUE)):
                    with m.Case(REGISTERS[name]):
                        m.d.sync += bus.rdata.eq(value)
                with m.Default():
                    m.d.sync += bus.rdata.eq(0)
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        # The run.
        with m.If(start):
            m.d.sync += [running.eq(target != 0), done.eq(target == 0), images_in.eq(0), images_out.eq(0),
                         cycles.eq(0), beat.eq(0)]
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
