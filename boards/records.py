"""One frozen record per board: the programmable-logic resources, PS facts and the fabric clock.

Adding a board means adding one :class:`Board` to :data:`BOARDS`; nothing else in lowbit names
boards. Every record says where its figures come from (``source``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import LowbitError

__all__ = ["Board", "BOARDS", "get_board", "board_names"]

# Device figures: PL LUTs, FFs, 36 Kb block RAMs, 288 Kb UltraRAMs, DSP slices.
_DS190 = "AMD/Xilinx DS190, Zynq-7000 SoC Data Sheet: Overview, device table"
_DS891 = "AMD/Xilinx DS891, Zynq UltraScale+ MPSoC Data Sheet: Overview, device table"
_DS987 = "AMD/Xilinx DS987, Kria K26 SOM Data Sheet"
_UG585 = "AXI-HP ports: UG585 Zynq-7000 TRM (4 x S_AXI_HP, 64-bit)"
_UG1085 = "AXI-HP ports: UG1085 Zynq UltraScale+ TRM (4 x S_AXI_HP_FPD, 128-bit)"
_CLOCK = "fabric clock: PS FCLK_CLK0 default of the PYNQ/vendor base designs, 100 MHz"


@dataclass(frozen=True)
class Board:
    """A board: its programmable-logic part, resources, PS facts and default fabric clock.

    Attributes
    ----------
    name : str
        Registry key, lower case with hyphens (``"pynq-z2"``).
    part : str
        Full part number of the device (``"xc7z020clg400-1"``).
    family : str
        ``"zynq-7000"`` or ``"zynq-ultrascale+"``.
    lut, ff, bram36, uram, dsp : int
        Programmable-logic resources: 6-input LUTs, flip-flops, 36 Kb block RAMs (each two
        RAMB18), 288 Kb UltraRAMs, DSP slices.
    fabric_clock_mhz : float
        The clock the generated hardware is timed for by default.
    source : str
        Where the figures come from.
    ddr_bandwidth_gbps : float or None
        Peak bandwidth of the PS DDR memory in Gbit/s (bus width x transfer rate); ``None`` when
        not recorded.
    axi_hp_ports : int
        Number of high-performance AXI slave ports from the fabric into the PS memory.
    axi_hp_width_bits : int or None
        Maximum data width of one AXI-HP port: the widest input stream a DMA can deliver per fabric
        cycle. ``None`` leaves the input stream unbounded in the mapper's model.
    """

    name: str
    part: str
    family: str
    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int
    fabric_clock_mhz: float
    source: str
    ddr_bandwidth_gbps: float | None = None
    axi_hp_ports: int = 0
    axi_hp_width_bits: int | None = None

    def __post_init__(self):
        for field in ("name", "part", "family", "source"):
            v = getattr(self, field)
            if not isinstance(v, str) or not v:
                raise ValueError(f"board {field} must be a non-empty string, not {v!r}")
        for field in ("lut", "ff", "bram36", "uram", "dsp", "axi_hp_ports"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"board {self.name!r}: {field} must be a non-negative integer, not {v!r}")
        if not isinstance(self.fabric_clock_mhz, (int, float)) or not self.fabric_clock_mhz > 0:
            raise ValueError(f"board {self.name!r}: fabric_clock_mhz must be a positive number, "
                             f"not {self.fabric_clock_mhz!r}")
        if self.axi_hp_width_bits is not None and (not isinstance(self.axi_hp_width_bits, int)
                                                   or self.axi_hp_width_bits < 1):
            raise ValueError(f"board {self.name!r}: axi_hp_width_bits must be a positive integer or None, "
                             f"not {self.axi_hp_width_bits!r}")

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _zynq7000(name: str, part: str, device: str, board_doc: str, ddr_gbps: float | None) -> Board:
    lut, ff, bram36, dsp = _Z7_DEVICES[device]
    return Board(name=name, part=part, family="zynq-7000", lut=lut, ff=ff, bram36=bram36, uram=0, dsp=dsp,
                 fabric_clock_mhz=100.0, ddr_bandwidth_gbps=ddr_gbps, axi_hp_ports=4, axi_hp_width_bits=64,
                 source=f"{device}: {_DS190}; {board_doc}; {_UG585}; {_CLOCK}")


# device: (LUT, FF, BRAM36, DSP)
_Z7_DEVICES = {
    "xc7z010": (17_600, 35_200, 60, 80),
    "xc7z020": (53_200, 106_400, 140, 220),
    "xc7z045": (218_600, 437_200, 545, 900),
}

# Board memories (board reference manuals): a 16-bit DDR3 bus at 1050 Mb/s is 16.8 Gbit/s, a
# 32-bit bus at 1066 Mb/s 34.1 Gbit/s.
_BOARD_LIST = [
    _zynq7000("pynq-z1", "xc7z020clg400-1", "xc7z020",
              "Digilent PYNQ-Z1 reference manual (512 MB DDR3, 16-bit, 1050 Mb/s)", 16.8),
    _zynq7000("pynq-z2", "xc7z020clg400-1", "xc7z020",
              "TUL PYNQ-Z2 product page (512 MB DDR3, 16-bit, 1050 Mb/s)", 16.8),
    _zynq7000("zedboard", "xc7z020clg484-1", "xc7z020",
              "Avnet ZedBoard hardware user guide (512 MB DDR3, 32-bit, 1066 Mb/s)", 34.1),
    _zynq7000("zybo-z7-20", "xc7z020clg400-1", "xc7z020",
              "Digilent Zybo Z7 reference manual (1 GB DDR3L, 32-bit, 1066 Mb/s)", 34.1),
    _zynq7000("zybo-z7-10", "xc7z010clg400-1", "xc7z010",
              "Digilent Zybo Z7 reference manual (1 GB DDR3L, 32-bit, 1066 Mb/s)", 34.1),
    _zynq7000("arty-z7-20", "xc7z020clg400-1", "xc7z020",
              "Digilent Arty Z7 reference manual (512 MB DDR3, 16-bit, 1050 Mb/s)", 16.8),
    _zynq7000("arty-z7-10", "xc7z010clg400-1", "xc7z010",
              "Digilent Arty Z7 reference manual (512 MB DDR3, 16-bit, 1050 Mb/s)", 16.8),
    _zynq7000("cora-z7-10", "xc7z010clg400-1", "xc7z010",
              "Digilent Cora Z7 reference manual (512 MB DDR3L, 16-bit, 1050 Mb/s)", 16.8),
    _zynq7000("zc706", "xc7z045ffg900-2", "xc7z045",
              "AMD/Xilinx UG954 ZC706 evaluation board user guide (PS DDR bandwidth not recorded)", None),
    Board(name="ultra96-v2", part="xczu3eg-sbva484-1-i", family="zynq-ultrascale+",
          lut=70_560, ff=141_120, bram36=216, uram=0, dsp=360, fabric_clock_mhz=100.0,
          axi_hp_ports=4, axi_hp_width_bits=128,
          source=f"xczu3eg: {_DS891}; Avnet Ultra96-V2 product brief (2 GB LPDDR4, bandwidth not recorded); "
                 f"{_UG1085}; {_CLOCK}"),
    Board(name="kv260", part="xck26-sfvc784-2lv-c", family="zynq-ultrascale+",
          lut=117_120, ff=234_240, bram36=144, uram=64, dsp=1_248, fabric_clock_mhz=100.0,
          ddr_bandwidth_gbps=153.6, axi_hp_ports=4, axi_hp_width_bits=128,
          source=f"xck26 (zu5ev class): {_DS987} (4 GB DDR4, 64-bit, 2400 Mb/s); {_UG1085}; {_CLOCK}"),
    Board(name="zcu104", part="xczu7ev-ffvc1156-2-e", family="zynq-ultrascale+",
          lut=230_400, ff=460_800, bram36=312, uram=96, dsp=1_728, fabric_clock_mhz=100.0,
          axi_hp_ports=4, axi_hp_width_bits=128,
          source=f"xczu7ev: {_DS891}; AMD/Xilinx UG1267 ZCU104 user guide (PS DDR bandwidth not recorded); "
                 f"{_UG1085}; {_CLOCK}"),
]

BOARDS: dict[str, Board] = {b.name: b for b in _BOARD_LIST}
"""The known boards by name."""


def board_names() -> list[str]:
    """Names of the known boards, sorted."""
    return sorted(BOARDS)


def get_board(name: str | Board) -> Board:
    """The board called ``name`` (case-insensitive; ``_`` and spaces read as ``-``).

    A :class:`Board` is returned unchanged, so callers may take either.

    Raises
    ------
    LowbitError
        If no board has that name; the message lists the known boards.
    """
    if isinstance(name, Board):
        return name
    if not isinstance(name, str):
        raise TypeError(f"board must be a board name or a Board, not {name!r}")
    key = re.sub(r"[\s_]+", "-", name.strip().lower())
    try:
        return BOARDS[key]
    except KeyError:
        raise LowbitError(f"unknown board {name!r}; known boards: {', '.join(board_names())}") from None
