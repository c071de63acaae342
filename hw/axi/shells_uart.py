"""The open-flow boards' shell: the accelerator's streams over the board's USB UART.

:class:`UARTShell` (Verilog module ``lowbit_uart_top``, written by
:func:`lowbit.deploy.openflow.uart_shell_verilog`) puts ``lowbit_top`` behind a UART, 8N1 at
``baud`` baud, ``div = round(clk_hz / baud)`` clock cycles per bit:

* **in**: each input beat (``i__payload``, ``W_in`` bits) is sent as ``ceil(W_in / 8)`` bytes, least
  significant byte first; the shell presents the beat to the accelerator when its last byte arrives.
  One completed beat is held while the next is received; a beat that completes while the previous
  one is still waiting is dropped and lights the error LED (the accelerator takes a beat within a
  few hundred cycles, a UART byte lasts ``10 * clk / baud`` cycles, so this does not happen in use).
* **out**: each result beat (``o__payload``: label and scores, ``W_out`` bits) is sent back as
  ``ceil(W_out / 8)`` bytes, least significant byte first.
* reset: a power-on reset of 16 cycles, and the board's button (``btn_n``, held low: reset), through
  a two-flop synchroniser. The accelerator's ``rst`` is held while either lasts.
* clock: the board's oscillator (``clk``), or with ``pll`` (a :class:`~lowbit.hw.axi.pll.PLL`) the
  family's PLL from ``clk``: the shell and the accelerator run on its output, and the power-on
  reset counts only once the PLL's ``LOCK``, through a two-flop synchroniser, is high (it starts
  again if ``LOCK`` falls), so the design is held in reset until the PLL has locked.

The receiver synchronises ``uart_rx`` through three flops, waits ``div / 2`` cycles after the start
bit's falling edge (a start bit still low there is taken, a glitch is not), then samples the eight
data bits (LSB first) and the stop bit ``div`` cycles apart; a byte counts when its stop bit is
high. The transmitter sends start bit, eight data bits (LSB first) and stop bit, ``div`` cycles
each, and takes the next result only once all bytes of the previous one are out.

``led_err_n`` is low once a beat was dropped (until reset); ``led_busy_n`` is low while an input
beat waits for the accelerator or a byte is being sent.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, ClockDomain, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pll import PLL
from .shells import accelerator_signature, black_box

__all__ = ["UARTShell", "POR_CYCLES"]

POR_CYCLES = 16
"""Cycles of the power-on reset."""


class UARTShell(wiring.Component):
    """``lowbit_top`` behind a UART (see the module docstring).

    Parameters
    ----------
    in_bits, out_bits : int
        Widths of the accelerator's ``i`` and ``o`` payloads
        (:func:`~lowbit.hw.axi.shells.payload_bits` of its stream format).
    clk_hz : float
        Frequency of the design's clock: ``clk``, or the PLL's output with ``pll``.
    baud : int
        UART rate; ``round(clk_hz / baud)`` (:attr:`div`) must be at least 4.
    pll : PLL, optional
        The PLL from ``clk`` to the design's clock (its ``out_mhz`` is ``clk_hz``); ``None``: the
        design runs on ``clk``.

    Ports
    -----
    clk : In(1)
        The board's oscillator; the shell has no reset input besides ``btn_n``.
    btn_n : In(1)
        The board's button, low while pressed: holds the shell and the accelerator in reset.
    uart_rx : In(1), uart_tx : Out(1)
        The UART lines (idle high).
    led_err_n, led_busy_n : Out(1)
        Low: a beat was dropped; busy (see the module docstring).
    """

    def __init__(
        self, *, in_bits: int, out_bits: int, clk_hz: float, baud: int, pll: PLL | None = None
    ):
        for name, v in (("in_bits", in_bits), ("out_bits", out_bits), ("baud", baud)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if (
            isinstance(clk_hz, bool)
            or not isinstance(clk_hz, (int, float))
            or not clk_hz > 0
            or not math.isfinite(clk_hz)
        ):
            raise ValueError(f"clk_hz must be a positive number, not {clk_hz!r}")
        if pll is not None and not isinstance(pll, PLL):
            raise TypeError(f"pll must be a PLL or None, not {pll!r}")
        if pll is not None and pll.out_mhz * 1e6 != clk_hz:
            raise ValueError(
                f"clk_hz must be the PLL's output ({pll.out_mhz:g} MHz), not {clk_hz!r}"
            )
        self.pll = pll
        self.div = round(clk_hz / baud)
        if self.div < 4:
            raise ValueError(
                f"clk_hz must give at least 4 clocks per bit at {baud} baud, not {clk_hz!r}"
            )
        self.in_bits, self.out_bits, self.clk_hz, self.baud = in_bits, out_bits, clk_hz, baud
        self.in_bytes, self.out_bytes = -(-in_bits // 8), -(-out_bits // 8)
        self.accelerator = accelerator_signature(in_bits, out_bits)
        super().__init__(
            {
                "clk": In(1),
                "btn_n": In(1),
                "uart_rx": In(1),
                "uart_tx": Out(1),
                "led_err_n": Out(1),
                "led_busy_n": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        div, nin, nout = self.div, self.in_bytes, self.out_bytes
        m.domains.sync = cd = ClockDomain(reset_less=True, local=True)  # resets are explicit below
        clk = self.clk
        if self.pll is not None:
            pll_clk, lock = Signal(), Signal()
            m.submodules.pll = self.pll.instance(self.clk, pll_clk, lock)
            clk = pll_clk
        m.d.comb += cd.clk.eq(clk)

        # power-on reset (once the PLL has locked) and the button
        por = Signal(range(2 * POR_CYCLES))
        btn_sync = Signal(2, init=0b11)
        rst = Signal(init=1)  # registered: every reset and clock-enable path starts at a flop
        if self.pll is None:
            with m.If(~por[-1]):
                m.d.sync += por.eq(por + 1)
        else:
            lock_sync = Signal(2)
            m.d.sync += lock_sync.eq(Cat(lock, lock_sync[0]))
            with m.If(~lock_sync[1]):
                m.d.sync += por.eq(0)
            with m.Elif(~por[-1]):
                m.d.sync += por.eq(por + 1)
        m.d.sync += btn_sync.eq(Cat(self.btn_n, btn_sync[0]))
        m.d.sync += rst.eq(~por[-1] | ~btn_sync[1])

        # receiver
        rx_sync = Signal(3, init=0b111)
        rx = rx_sync[2]
        rx_busy = Signal()
        rx_strobe = Signal()
        rx_cnt = Signal(range(div))
        rx_bit = Signal(4)
        rx_shift = Signal(8)
        m.d.sync += [rx_sync.eq(Cat(self.uart_rx, rx_sync[:2])), rx_strobe.eq(0)]
        with m.If(rst):
            m.d.sync += rx_busy.eq(0)
        with m.Elif(~rx_busy):
            with m.If(~rx):
                m.d.sync += [rx_busy.eq(1), rx_cnt.eq(div // 2), rx_bit.eq(0)]
        with m.Elif(rx_cnt != 0):
            m.d.sync += rx_cnt.eq(rx_cnt - 1)
        with m.Else():
            m.d.sync += [rx_cnt.eq(div - 1), rx_bit.eq(rx_bit + 1)]
            with m.If(rx_bit == 0):
                with m.If(rx):  # a glitch, not a start bit
                    m.d.sync += rx_busy.eq(0)
            with m.Elif(rx_bit <= 8):
                m.d.sync += rx_shift.eq(Cat(rx_shift[1:], rx))
            with m.Else():  # stop bit high: a byte
                m.d.sync += [rx_busy.eq(0), rx_strobe.eq(rx)]

        # bytes -> input beats
        in_shift = Signal(8 * nin)
        in_hold = Signal(8 * nin)
        in_count = Signal(range(nin))
        in_valid = Signal()
        i_ready = Signal()
        err = Signal()
        word = Cat(in_shift[8:], rx_shift)
        with m.If(rst):
            m.d.sync += [in_count.eq(0), in_valid.eq(0), err.eq(0)]
        with m.Else():
            with m.If(in_valid & i_ready):
                m.d.sync += in_valid.eq(0)
            with m.If(rx_strobe):
                m.d.sync += in_shift.eq(word)
                with m.If(in_count == nin - 1):
                    m.d.sync += in_count.eq(0)
                    with m.If(in_valid & ~i_ready):  # the previous beat still waits: drop
                        m.d.sync += err.eq(1)
                    with m.Else():
                        m.d.sync += [in_valid.eq(1), in_hold.eq(word)]
                with m.Else():
                    m.d.sync += in_count.eq(in_count + 1)

        # result beats -> bytes
        o_payload = Signal(self.out_bits)
        o_valid = Signal()
        o_ready = Signal()
        out_shift = Signal(8 * nout)
        out_left = Signal(range(nout + 1))
        tx_busy = Signal()
        tx_cnt = Signal(range(div))
        tx_bit = Signal(4)
        tx_frame = Signal(10, init=0x3FF)
        # registered (a flop drives the accelerator's ready, not the byte counter's compare):
        # ready the cycle after the shell is idle and took no beat; one idle cycle more per
        # result than a combinational ready, and never ready while it is not
        m.d.sync += o_ready.eq(~rst & (out_left == 0) & ~tx_busy & ~(o_valid & o_ready))
        with m.If(rst):
            m.d.sync += [out_left.eq(0), tx_busy.eq(0), tx_frame.eq(0x3FF)]
        with m.Elif(o_valid & o_ready):
            m.d.sync += [out_shift.eq(o_payload), out_left.eq(nout)]
        with m.Elif(~tx_busy & (out_left != 0)):
            m.d.sync += [
                tx_frame.eq(Cat(Const(0, 1), out_shift[:8], Const(1, 1))),
                out_shift.eq(out_shift[8:]),
                out_left.eq(out_left - 1),
                tx_busy.eq(1),
                tx_cnt.eq(div - 1),
                tx_bit.eq(0),
            ]
        with m.Elif(tx_busy):
            with m.If(tx_cnt != 0):
                m.d.sync += tx_cnt.eq(tx_cnt - 1)
            with m.Else():
                m.d.sync += [
                    tx_cnt.eq(div - 1),
                    tx_frame.eq(Cat(tx_frame[1:], Const(1, 1))),
                    tx_bit.eq(tx_bit + 1),
                ]
                with m.If(tx_bit == 9):
                    m.d.sync += tx_busy.eq(0)
        m.d.comb += self.uart_tx.eq(tx_frame[0])

        m.submodules.accel = black_box(
            "lowbit_top",
            self.accelerator,
            {
                "i__valid": in_valid,
                "i__ready": i_ready,
                "i__payload": in_hold[: self.in_bits],
                "o__valid": o_valid,
                "o__ready": o_ready,
                "o__payload": o_payload,
            },
            clk=clk,
            rst=rst,
        )

        m.d.comb += [self.led_err_n.eq(~err), self.led_busy_n.eq(~(in_valid | tx_busy))]
        return m
