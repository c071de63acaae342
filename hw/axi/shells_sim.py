"""The simulated PYNQ overlay's shell: ``lowbit_axis`` with a DDR model behind each weight fetcher.

:class:`SimulatedShell` (Verilog module ``lowbit_sim_shell``, written by
:func:`lowbit.deploy.simbackend.shell_wrapper_verilog`) is the top that
:class:`~lowbit.deploy.simbackend.SimulatedOverlay` Verilates with the plan's own ``lowbit_top.v``,
``lowbit_ctrl.v``, ``lowbit_axis.v`` and ``lowbit_wfetch.v``. It exposes ``lowbit_axis``'s
AXI4-Stream ports as streams the compiled fast path drives (:mod:`lowbit.sim.fast`):

* ``i``: ``s_axis``, ``tdata`` in the low ``in_tdata_bits`` bits of the payload and ``tlast`` as its
  top bit; ``o``: ``m_axis`` the same way;
* ``ctrl``: ``s_axi``, the control block's AXI4-Lite port (Amaranth names: ``ctrl__awaddr`` ...);
* ``ddr<k>__we`` / ``__addr`` / ``__data``: for weight port ``k``, the load port of a
  :class:`~lowbit.hw.axi.sim_ddr.SimulatedDDR` memory on its AXI read port ``m_axi_w<k>``:
  32-bit words written one per cycle while ``we`` is 1, ``2 ** log_depth`` words in all, read
  back at the rate and latency of the board's DDR (``rate`` bits per cycle, ``latency`` cycles per
  burst);
* ``clk`` and ``rst`` (active high; ``lowbit_axis`` gets ``aresetn = ~rst``).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .axil import AXI4LiteSignature
from .control import ADDR_BITS
from .shells import black_box
from .shells_axis import WeightPort, _weight_ports, axis_adapter_signature
from .sim_ddr import DDR_READ_SIGNALS, SimulatedDDR, log_depth
from .wfetch import AXI4ReadSignature

__all__ = ["SimulatedShell"]

class SimulatedShell(wiring.Component):
    """``lowbit_axis`` with its streams as ``i``/``o`` and a DDR model per weight port (see the
    module docstring). Simulation only.

    Parameters
    ----------
    in_tdata_bits, out_tdata_bits : int
        ``tdata`` widths of ``lowbit_axis`` (``build.json``'s ``axis``).
    weight_ports : sequence of WeightPort
        ``lowbit_axis``'s weight ports, ``weight_ports[k].index == k``.
    log_depths : sequence of int, optional
        log2 of the 32-bit words of each port's memory; by default :func:`log_depth` of the port's
        weight image (:attr:`~lowbit.hw.axi.wfetch.WeightFetcher.image_bytes`).
    rate : int
        Bits per cycle each memory delivers.
    latency : int
        Cycles from a burst's address to its first data beat.
    """

    def __init__(
        self,
        *,
        in_tdata_bits: int,
        out_tdata_bits: int,
        weight_ports: Sequence[WeightPort] = (),
        log_depths: Sequence[int] | None = None,
        rate: int = 64,
        latency: int = 16,
    ):
        for name, v in (
            ("in_tdata_bits", in_tdata_bits),
            ("out_tdata_bits", out_tdata_bits),
            ("rate", rate),
            ("latency", latency),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self.in_tdata_bits, self.out_tdata_bits = in_tdata_bits, out_tdata_bits
        self.weight_ports = _weight_ports(weight_ports)
        if log_depths is None:
            log_depths = [log_depth(p.fetcher().image_bytes) for p in self.weight_ports]
        log_depths = list(log_depths)
        if len(log_depths) != len(self.weight_ports):
            raise ValueError(
                f"log_depths must hold one entry per weight port "
                f"({len(self.weight_ports)}), not {log_depths!r}"
            )
        for k, d in enumerate(log_depths):
            if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= 30:
                raise ValueError(f"log_depths[{k}] must be an integer in 1..30, not {d!r}")
        self.log_depths, self.rate, self.latency = log_depths, rate, latency
        self.adapter = axis_adapter_signature(in_tdata_bits, out_tdata_bits, self.weight_ports)
        members = {
            "ctrl": In(AXI4LiteSignature(ADDR_BITS)),
            "i": In(stream.Signature(in_tdata_bits + 1)),
            "o": Out(stream.Signature(out_tdata_bits + 1)),
        }
        for p, d in zip(self.weight_ports, log_depths):
            members[f"ddr{p.index}"] = In(
                wiring.Signature({"we": Out(1), "addr": Out(d), "data": Out(32)})
            )
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        tin, tout = self.in_tdata_bits, self.out_tdata_bits
        axis = {
            "aclk": ClockSignal(),
            "aresetn": ~ResetSignal(),
            "s_axis_tdata": self.i.payload[:tin],
            "s_axis_tvalid": self.i.valid,
            "s_axis_tready": self.i.ready,
            "s_axis_tlast": self.i.payload[tin],
            "m_axis_tdata": self.o.payload[:tout],
            "m_axis_tvalid": self.o.valid,
            "m_axis_tready": self.o.ready,
            "m_axis_tlast": self.o.payload[tout],
        }
        axis.update(
            {
                f"s_axi_{name}": getattr(self.ctrl, name)
                for name in AXI4LiteSignature(ADDR_BITS).members
            }
        )
        for p, depth in zip(self.weight_ports, self.log_depths):
            read = AXI4ReadSignature(p.addr_bits, p.data_bits)
            bus = {
                name: Signal(read.members[name].shape, name=f"{p.bus}_{name}")
                for name in read.members
            }
            axis.update({f"{p.bus}_{name}": s for name, s in bus.items()})
            m.submodules[f"ddr{p.index}"] = ddr = SimulatedDDR(
                addr_bits=p.addr_bits,
                data_bits=p.data_bits,
                log_depth=depth,
                rate=self.rate,
                latency=self.latency,
            )
            connect(m, flipped(getattr(self, f"ddr{p.index}")), ddr.load)
            slave = wiring.Signature(
                {name: read.flip().members[name] for name in DDR_READ_SIGNALS}
            )
            for name in DDR_READ_SIGNALS:
                if slave.members[name].flow == In:  # driven by the fetcher
                    m.d.comb += getattr(ddr.bus, name).eq(bus[name])
                else:
                    m.d.comb += bus[name].eq(getattr(ddr.bus, name))
        m.submodules.shell = black_box("lowbit_axis", self.adapter, axis)
        return m
