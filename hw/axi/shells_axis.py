# amaranth: UnusedElaboratable=no
# (the control block and the weight fetchers are created here for their signatures only)
"""The Zynq boards' shell: the accelerator between an AXI DMA's streams, with its control block and
weight fetchers.

:class:`AXISAdapter` (Verilog module ``lowbit_axis``, written by
:func:`lowbit.deploy.vivado.axis_adapter_verilog`) is the block the Vivado plan's block design
instantiates (``create_bd_cell -type module -reference lowbit_axis``):

* ``s_axis`` (``tdata``/``tvalid``/``tready``/``tlast``, from the DMA's MM2S): the input beats, the
  payload in the low ``in_bits`` bits of ``tdata`` (:func:`axis_width` bits, a power of two from 32
  to 1024); ``beats_per_image`` beats per image.
* ``m_axis`` (to the DMA's S2MM): one beat per image, ``{label, scores}`` in the low ``out_bits``
  bits of ``tdata``, the upper bits zero.
* **tlast**: the result of an image carries ``tlast`` when the last input beat of the same image
  did, so one DMA transfer of N images comes back as one transfer of N results. The flags of the
  images in flight wait in a FIFO of :data:`TLAST_FIFO_DEPTH` entries (``tlast`` of a beat that is
  not an image's last is ignored); the input stalls (``s_axis_tready`` low) while it is full, so
  results never outnumber their flags. Its pointers carry one bit more than its index, so "full"
  stays exact once they wrap.
* ``s_axi``: the AXI4-Lite control block ``lowbit_ctrl``
  (:class:`~lowbit.hw.axi.control.ControlBlock`, register map in :mod:`lowbit.hw.axi.control`),
  which counts the accepted input beats and results.
* ``m_axi_w<k>``: for each :class:`WeightPort` (a layer whose weights stream from DDR), the AXI4
  read master of its weight fetcher ``lowbit_wfetch<k>``
  (:class:`~lowbit.hw.axi.wfetch.WeightFetcher`), which feeds ``lowbit_top``'s ``ws<unit>`` port
  from the DDR address in the control block's ``WBASE(k)`` while ``WCTRL`` bit 0 is set.
* ``aclk`` and ``aresetn`` (active low, synchronous) clock and reset everything, with the Xilinx
  interface attributes (:attr:`AXISAdapter.port_attrs`) that associate every bus with the clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from amaranth.hdl import Cat, ClockDomain, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ... import LowbitError
from .axil import AXI4LiteSignature
from .control import ADDR_BITS, MAX_WEIGHT_PORTS, ControlBlock
from .shells import accelerator_signature, black_box, flat_members
from .wfetch import AXI4ReadSignature, WeightFetcher

__all__ = [
    "TLAST_FIFO_DEPTH",
    "WeightPort",
    "AXI4StreamSignature",
    "axis_width",
    "axis_adapter_signature",
    "AXISAdapter",
]

TLAST_FIFO_DEPTH = 64
"""Images in flight the AXI-Stream adapter can track (their ``tlast`` flags)."""


def axis_width(bits: int) -> int:
    """The AXI DMA stream width carrying ``bits``: a power of two from 32 to 1024."""
    width = max(32, 1 << max(0, math.ceil(math.log2(bits))))
    if width > 1024:
        raise LowbitError(
            f"a {bits}-bit stream beat is wider than the AXI DMA's 1024-bit streams; "
            f"choose a smaller SIMD for the first layer"
        )
    return width


@dataclass(frozen=True)
class WeightPort:
    """A layer whose weights stream from DDR: unit ``unit`` of ``lowbit_top`` (its port
    ``ws<unit>``) reads ``words`` words of ``word_bits`` bits per vector; the shell's fetcher
    ``lowbit_wfetch<index>`` reads them over an AXI-HP port of ``data_bits`` bits with
    ``addr_bits``-bit addresses, keeping ``outstanding`` bursts of 16 beats in flight (it holds the
    port's rate while the DDR's latency plus one burst stays under
    ``outstanding * 16 * data_bits / rate`` cycles; see ``benchmarks/results/ddr_fetch.md``).
    ``layer`` is the graph node's name, the one messages and reports give the layer (``""`` when
    not known)."""

    index: int
    unit: int
    word_bits: int
    words: int
    data_bits: int
    addr_bits: int
    outstanding: int = 8
    layer: str = ""

    @property
    def module(self) -> str:
        return f"lowbit_wfetch{self.index}"

    @property
    def bus(self) -> str:
        """Prefix of the port's AXI4 read-master ports on ``lowbit_axis`` (interface
        ``m_axi_w<index>``)."""
        return f"m_axi_w{self.index}"

    def fetcher(self) -> WeightFetcher:
        """The port's :class:`~lowbit.hw.axi.wfetch.WeightFetcher` (module :attr:`module`)."""
        return WeightFetcher(
            word_bits=self.word_bits,
            words=self.words,
            data_bits=self.data_bits,
            addr_bits=self.addr_bits,
            outstanding=self.outstanding,
        )


class AXI4StreamSignature(wiring.Signature):
    """AXI4-Stream with ``tdata``, ``tvalid``, ``tready`` and ``tlast``, from the master's side."""

    def __init__(self, data_bits: int):
        if not isinstance(data_bits, int) or isinstance(data_bits, bool) or data_bits < 1:
            raise ValueError(f"data_bits must be a positive integer, not {data_bits!r}")
        self.data_bits = data_bits
        super().__init__(
            {"tdata": Out(data_bits), "tvalid": Out(1), "tready": In(1), "tlast": Out(1)}
        )

    def __eq__(self, other):
        return isinstance(other, AXI4StreamSignature) and other.data_bits == self.data_bits

    def __hash__(self):
        return hash((AXI4StreamSignature, self.data_bits))

    def __repr__(self):
        return f"AXI4StreamSignature({self.data_bits})"


def _weight_ports(weight_ports) -> tuple[WeightPort, ...]:
    ports = tuple(weight_ports)
    if len(ports) > MAX_WEIGHT_PORTS:
        raise ValueError(
            f"weight_ports must hold at most {MAX_WEIGHT_PORTS} ports, not {len(ports)}"
        )
    for k, p in enumerate(ports):
        if not isinstance(p, WeightPort):
            raise TypeError(f"weight_ports[{k}] must be a WeightPort, not {p!r}")
        if p.index != k:
            raise ValueError(f"weight_ports[{k}].index must be {k}, not {p.index!r}")
    units = [p.unit for p in ports]
    if len(set(units)) != len(units):
        raise ValueError(f"weight_ports must name each unit once, not {units!r}")
    return ports


def axis_adapter_signature(
    in_tdata_bits: int, out_tdata_bits: int, weight_ports: Sequence[WeightPort] = ()
) -> wiring.Signature:
    """The ports of ``lowbit_axis`` (see the module docstring), flat, as the Vivado plan names them:
    ``aclk``, ``aresetn``, ``s_axis_*``, ``m_axis_*``, ``m_axi_w<k>_*`` and ``s_axi_*``."""
    members = {"aclk": In(1), "aresetn": In(1)}
    members.update(flat_members("s_axis", In(AXI4StreamSignature(in_tdata_bits))))
    members.update(flat_members("m_axis", Out(AXI4StreamSignature(out_tdata_bits))))
    for p in _weight_ports(weight_ports):
        members.update(flat_members(p.bus, Out(AXI4ReadSignature(p.addr_bits, p.data_bits))))
    members.update(flat_members("s_axi", In(AXI4LiteSignature(ADDR_BITS))))
    return wiring.Signature(members)


class AXISAdapter(wiring.Component):
    """``lowbit_top`` with AXI4-Stream ports for an AXI DMA (see the module docstring).

    Parameters
    ----------
    in_bits, out_bits : int
        Widths of the accelerator's ``i`` and ``o`` payloads
        (:func:`~lowbit.hw.axi.shells.payload_bits` of its stream format); ``tdata`` is
        :func:`axis_width` of each.
    beats_per_image : int
        Input beats per image.
    weight_ports : sequence of WeightPort
        The layers whose weights stream from DDR, ``weight_ports[k].index == k``.
    tlast_depth : int
        Entries of the ``tlast`` FIFO, a power of two.

    Ports
    -----
    :func:`axis_adapter_signature` of the ``tdata`` widths and ``weight_ports``.

    Attributes
    ----------
    control : ControlBlock
        The control block ``lowbit_ctrl`` instantiated (its signature gives the instance's ports).
    fetchers : tuple of WeightFetcher
        The weight fetchers ``lowbit_wfetch<k>`` instantiated, likewise.
    port_attrs : dict
        ``{port: {attribute: value}}``: Vivado's interface attributes of ``aclk`` (its
        ``ASSOCIATED_BUSIF`` names every bus) and ``aresetn``, written on the top module's ports by
        :func:`~lowbit.hw.axi.shells.shell_verilog`.
    """

    def __init__(
        self,
        *,
        in_bits: int,
        out_bits: int,
        beats_per_image: int,
        weight_ports: Sequence[WeightPort] = (),
        tlast_depth: int = TLAST_FIFO_DEPTH,
    ):
        for name, v in (
            ("in_bits", in_bits),
            ("out_bits", out_bits),
            ("beats_per_image", beats_per_image),
            ("tlast_depth", tlast_depth),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if tlast_depth & (tlast_depth - 1):
            raise ValueError(f"tlast_depth must be a power of two, not {tlast_depth!r}")
        self.in_bits, self.out_bits, self.beats_per_image = in_bits, out_bits, beats_per_image
        self.tlast_depth = tlast_depth
        self.weight_ports = _weight_ports(weight_ports)
        self.in_tdata_bits, self.out_tdata_bits = axis_width(in_bits), axis_width(out_bits)
        self.accelerator = accelerator_signature(
            in_bits, out_bits, {p.unit: p.word_bits for p in self.weight_ports}
        )
        self.control = ControlBlock(beats_per_image, len(self.weight_ports))
        self.fetchers = tuple(p.fetcher() for p in self.weight_ports)
        busif = ":".join(["s_axis", "m_axis", "s_axi", *(p.bus for p in self.weight_ports)])
        self.port_attrs = {
            "aclk": {
                "X_INTERFACE_INFO": "xilinx.com:signal:clock:1.0 aclk CLK",
                "X_INTERFACE_PARAMETER": f"ASSOCIATED_BUSIF {busif}, ASSOCIATED_RESET aresetn",
            },
            "aresetn": {
                "X_INTERFACE_INFO": "xilinx.com:signal:reset:1.0 aresetn RST",
                "X_INTERFACE_PARAMETER": "POLARITY ACTIVE_LOW",
            },
        }
        super().__init__(
            axis_adapter_signature(self.in_tdata_bits, self.out_tdata_bits, self.weight_ports)
        )

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain(local=True)
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        depth, bpi = self.tlast_depth, self.beats_per_image

        # tlast flags of the images in flight
        m.submodules.flags = flags = memory.Memory(shape=1, depth=depth, init=[])
        flag_in = flags.write_port()
        flag_out = flags.read_port(domain="comb")
        wr = Signal(range(2 * depth))
        rd = Signal(range(2 * depth))
        used = Signal(range(2 * depth))  # modulo 2 * depth, also once wr has wrapped
        full = Signal()
        in_fire = Signal()
        out_fire = Signal()
        i_ready = Signal()
        beat = Signal(range(bpi))
        last_beat = Signal()
        m.d.comb += [
            used.eq(wr - rd),
            last_beat.eq(beat == bpi - 1),
            full.eq(used == depth),
            in_fire.eq(self.s_axis_tvalid & self.s_axis_tready),
            out_fire.eq(self.m_axis_tvalid & self.m_axis_tready),
            self.s_axis_tready.eq(i_ready & ~full),
            flag_in.addr.eq(wr[:-1]),
            flag_in.data.eq(self.s_axis_tlast),
            flag_in.en.eq(in_fire & last_beat),
            flag_out.addr.eq(rd[:-1]),
            self.m_axis_tlast.eq(flag_out.data),
        ]
        with m.If(in_fire):
            m.d.sync += beat.eq(beat + 1)
            with m.If(last_beat):
                m.d.sync += [beat.eq(0), wr.eq(wr + 1)]
        with m.If(out_fire):
            m.d.sync += rd.eq(rd + 1)

        # weight fetchers: the layers' weight images from DDR, pass after pass
        n = len(self.weight_ports)
        wen = Signal()
        ctrl_w, top_w = {}, {}
        werror, wbusy = [], []
        for p, fetcher_block in zip(self.weight_ports, self.fetchers):
            k, u = p.index, p.unit
            wbase = Signal(64, name=f"wbase{k}")
            error, busy = Signal(name=f"werror{k}"), Signal(name=f"wbusy{k}")
            valid, ready = Signal(name=f"ws{u}_valid"), Signal(name=f"ws{u}_ready")
            payload = Signal(p.word_bits, name=f"ws{u}_payload")
            fetcher = {
                "base": wbase[: p.addr_bits],
                "enable": wen,
                "error": error,
                "busy": busy,
                "o__valid": valid,
                "o__ready": ready,
                "o__payload": payload,
            }
            fetcher.update(
                {
                    f"axi__{name}": getattr(self, f"{p.bus}_{name}")
                    for name in AXI4ReadSignature(p.addr_bits, p.data_bits).members
                }
            )
            m.submodules[f"wfetch{k}"] = black_box(
                p.module, fetcher_block.signature, fetcher, clk=cd.clk, rst=cd.rst
            )
            ctrl_w[f"wbase{k}"] = wbase
            top_w.update(
                {f"ws{u}__valid": valid, f"ws{u}__ready": ready, f"ws{u}__payload": payload}
            )
            werror.append(error)
            wbusy.append(busy)
        if n:
            ctrl_w.update({"wen": wen, "werror": Cat(*werror), "wbusy": Cat(*wbusy)})

        ctrl = {"in_beat": in_fire, "out_result": out_fire, **ctrl_w}
        ctrl.update(
            {
                f"axil__{name}": getattr(self, f"s_axi_{name}")
                for name in AXI4LiteSignature(ADDR_BITS).members
            }
        )
        m.submodules.ctrl = black_box(
            "lowbit_ctrl", self.control.signature, ctrl, clk=cd.clk, rst=cd.rst
        )

        o_payload = Signal(self.out_bits)
        m.d.comb += self.m_axis_tdata.eq(o_payload)
        m.submodules.accel = black_box(
            "lowbit_top",
            self.accelerator,
            {
                "i__valid": self.s_axis_tvalid & ~full,
                "i__ready": i_ready,
                "i__payload": self.s_axis_tdata[: self.in_bits],
                "o__valid": self.m_axis_tvalid,
                "o__ready": self.m_axis_tready,
                "o__payload": o_payload,
                **top_w,
            },
            clk=cd.clk,
            rst=cd.rst,
        )
        return m
