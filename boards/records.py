"""One frozen record per board: the programmable-logic resources, PS facts, the fabric clock and
what the build flows need (the open-flow shell's pins, the Vivado board part and DDR part).

Adding a board means adding one :class:`Board` to :data:`BOARDS` (or calling
:func:`register_board`); nothing else in lowbit names boards or keys facts by board name: the
mapper, the open-flow constraints (:func:`lowbit.deploy.openflow.constraints`) and the Vivado plans
(:func:`lowbit.deploy.vivado.vivado_plan_files`) read the record. Every record says where its
figures come from (``source``, and ``Pins.source`` for its pin map).

The cost model (:mod:`lowbit.hw.cost`) counts Xilinx 7-series / UltraScale+ primitives: 6-input
LUTs, flip-flops, RAMB36 tiles and DSP slices. :meth:`Board.capacity` states every board's
programmable logic in those units, so the mapper compares like with like:

* LUTs: a board of 4-input LUTs (iCE40, ECP5) holds ``lut / LUT4_PER_LUT6`` LUT6 equivalents, with
  ``LUT4_PER_LUT6 = 1.6``, the factor by which Xilinx counts one LUT6 as 1.6 "logic cells"
  (DS190, device table footnote). It is a conversion, not a calibration for these families.
* Block RAM: ``bram_kbits / 36`` RAMB36 equivalents (for Xilinx parts ``bram_kbits`` is
  ``36 * bram36``, so this is exactly ``bram36``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from .. import LowbitError
from ..ir.resources import Resources

__all__ = [
    "Board",
    "Pins",
    "BOARDS",
    "FAMILIES",
    "OPEN_FLOW_FAMILIES",
    "PS_TYPES",
    "LUT4_PER_LUT6",
    "get_board",
    "board_names",
    "register_board",
]

FAMILIES = ("zynq-7000", "zynq-ultrascale+", "ice40", "ecp5")
"""Device families a board record may name."""
OPEN_FLOW_FAMILIES = ("ice40", "ecp5")
"""Families built with the open flow (yosys, nextpnr and the packer); the others need Vivado."""
PS_TYPES = ("PS7", "ZynqMP", "none")
"""Processing systems: Zynq-7000 (PS7), Zynq UltraScale+ (ZynqMP), or no hard processor."""
LUT4_PER_LUT6 = 1.6
"""4-input LUTs per 6-input LUT when a LUT4 device's capacity is stated in the cost model's
units."""

# Device figures: PL LUTs, FFs, 36 Kb block RAMs, 288 Kb UltraRAMs, DSP slices.
_DS190 = "AMD/Xilinx DS190, Zynq-7000 SoC Data Sheet: Overview, device table"
_DS891 = "AMD/Xilinx DS891, Zynq UltraScale+ MPSoC Data Sheet: Overview, device table"
_DS987 = "AMD/Xilinx DS987, Kria K26 SOM Data Sheet"
_UG585 = "AXI-HP ports: UG585 Zynq-7000 TRM (4 x S_AXI_HP, 64-bit)"
_UG1085 = "AXI-HP ports: UG1085 Zynq UltraScale+ TRM (4 x S_AXI_HP_FPD, 128-bit)"
_CLOCK = "fabric clock: PS FCLK_CLK0 default of the PYNQ/vendor base designs, 100 MHz"
_OFL = "openFPGALoader board name: src/board.hpp of trabucayre/openFPGALoader"
_LITEX = "cross-checked, every site agrees, against LiteX-Boards'"


@dataclass(frozen=True)
class Pins:
    """Where the open-flow UART shell's top-level ports sit on a board.

    The ports are those of ``lowbit_uart_top`` (:mod:`lowbit.deploy.openflow`), in the order the
    constraint file lists them (:attr:`PORTS`). Every port needs a site: a port left out would be
    placed on an arbitrary pin.

    Attributes
    ----------
    clk : str
        The board oscillator's pin (the fabric clock, ``Board.fabric_clock_mhz``).
    uart_rx : str
        The pin on which the FPGA receives: the USB UART bridge's TX.
    uart_tx : str
        The pin on which the FPGA sends: the USB UART bridge's RX.
    btn_n : str
        A button that reads low while pressed; held, it resets the shell.
    led_err_n, led_busy_n : str
        The error and busy LEDs, driven low to light (on a board whose LEDs light when high they
        read inverted).
    source : str
        Where the sites come from (the board's published constraint file).
    """

    PORTS = ("clk", "uart_rx", "uart_tx", "btn_n", "led_err_n", "led_busy_n")
    """The shell's top-level ports, in constraint-file order (a class constant, not a field)."""

    clk: str
    uart_rx: str
    uart_tx: str
    btn_n: str
    led_err_n: str
    led_busy_n: str
    source: str

    def __post_init__(self):
        for port in self.PORTS + ("source",):
            v = getattr(self, port)
            if not isinstance(v, str) or not v:
                raise ValueError(f"pins: {port} must be a non-empty string, not {v!r}")

    def sites(self) -> dict[str, str]:
        """Port name -> site, in :attr:`PORTS` order."""
        return {port: getattr(self, port) for port in self.PORTS}

    def as_dict(self) -> dict:
        """Every field, ``source`` included."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
        One of :data:`FAMILIES`.
    package : str
        Device package (``"clg400"``).
    speed_grade : str
        Speed grade as the vendor writes it (``"-1"``, ``"-2LV"``, ``"6"``); ``""`` when the family
        has none.
    ps : str
        Hard processing system, one of :data:`PS_TYPES`.
    lut, ff, bram36, uram, dsp : int
        Programmable-logic resources in the device's own units: LUTs (of ``lut_inputs`` inputs),
        flip-flops, 36 Kb block RAMs (Xilinx RAMB36, each two RAMB18; 0 on other families, whose
        block RAM is ``bram_kbits``), 288 Kb UltraRAMs, DSP slices (multipliers on Lattice parts).
    fabric_clock_mhz : float
        The clock the generated hardware is timed for by default.
    source : str
        Where the figures come from.
    lut_inputs : int
        4 or 6.
    bram_kbits : int or None
        Total initialisable block RAM in Kbit; by default ``36 * bram36``.
    ddr_bandwidth_gbps : float or None
        Peak bandwidth of the PS DDR memory in Gbit/s (bus width x transfer rate); ``None`` when
        not recorded or when there is no PS.
    axi_hp_ports : int
        Number of high-performance AXI slave ports from the fabric into the PS memory.
    axi_hp_width_bits : int or None
        Maximum data width of one AXI-HP port: the widest input stream a DMA can deliver per fabric
        cycle. ``None`` leaves the input stream unbounded in the mapper's model.
    openfpgaloader_board : str or None
        The ``openFPGALoader -b`` name of the board, where one exists.
    pins : Pins or None
        Where the open-flow UART shell's ports sit (open-flow boards only). An open-flow board
        without them maps and compiles, but :func:`lowbit.deploy.openflow.constraints` refuses it.
    vivado_board_part : str or None
        Glob for the board's Vivado board part (``"*pynq-z2*"``), tried when a plan is built; the
        plan falls back to the bare part when no installed board files match. Boards with a PS only.
    ddr_part : str or None
        The PS7 DDR memory part (``PCW_UIPARAM_DDR_PARTNO``, from the board's reference manual),
        set in the plan when no board preset is installed. PS7 boards only.
    """

    name: str
    part: str
    family: str
    package: str
    speed_grade: str
    ps: str
    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int
    fabric_clock_mhz: float
    source: str
    lut_inputs: int = 6
    bram_kbits: int | None = None
    ddr_bandwidth_gbps: float | None = None
    axi_hp_ports: int = 0
    axi_hp_width_bits: int | None = None
    openfpgaloader_board: str | None = None
    pins: Pins | None = None
    vivado_board_part: str | None = None
    ddr_part: str | None = None

    def __post_init__(self):
        for field in ("name", "part", "family", "package", "ps", "source"):
            v = getattr(self, field)
            if not isinstance(v, str) or not v:
                raise ValueError(f"board {field} must be a non-empty string, not {v!r}")
        if not isinstance(self.speed_grade, str):
            raise ValueError(
                f"board {self.name!r}: speed_grade must be a string, not {self.speed_grade!r}"
            )
        if self.family not in FAMILIES:
            raise ValueError(
                f"board {self.name!r}: family must be one of {', '.join(FAMILIES)}, "
                f"not {self.family!r}"
            )
        if self.ps not in PS_TYPES:
            raise ValueError(
                f"board {self.name!r}: ps must be one of {', '.join(PS_TYPES)}, not {self.ps!r}"
            )
        for field in ("lut", "ff", "bram36", "uram", "dsp", "axi_hp_ports"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(
                    f"board {self.name!r}: {field} must be a non-negative integer, not {v!r}"
                )
        if self.lut_inputs not in (4, 6):
            raise ValueError(
                f"board {self.name!r}: lut_inputs must be 4 or 6, not {self.lut_inputs!r}"
            )
        if self.bram_kbits is not None and (
            not isinstance(self.bram_kbits, int)
            or isinstance(self.bram_kbits, bool)
            or self.bram_kbits < 0
        ):
            raise ValueError(
                f"board {self.name!r}: bram_kbits must be a non-negative integer or None, "
                f"not {self.bram_kbits!r}"
            )
        if not isinstance(self.fabric_clock_mhz, (int, float)) or not self.fabric_clock_mhz > 0:
            raise ValueError(
                f"board {self.name!r}: fabric_clock_mhz must be a positive number, "
                f"not {self.fabric_clock_mhz!r}"
            )
        if self.axi_hp_width_bits is not None and (
            not isinstance(self.axi_hp_width_bits, int) or self.axi_hp_width_bits < 1
        ):
            raise ValueError(
                f"board {self.name!r}: axi_hp_width_bits must be a positive integer or None, "
                f"not {self.axi_hp_width_bits!r}"
            )
        if (self.ps == "none") != (self.axi_hp_ports == 0):
            raise ValueError(
                f"board {self.name!r}: a board with ps {self.ps!r} cannot have "
                f"{self.axi_hp_ports} AXI-HP ports"
            )
        if self.pins is not None:
            if not isinstance(self.pins, Pins):
                raise ValueError(
                    f"board {self.name!r}: pins must be a Pins or None, not {self.pins!r}"
                )
            if not self.is_open_flow:
                raise ValueError(
                    f"board {self.name!r}: pins must be None on a {self.family} board "
                    f"(they place the open-flow UART shell), not {self.pins!r}"
                )
        for field in ("vivado_board_part", "ddr_part"):
            v = getattr(self, field)
            if v is not None and (not isinstance(v, str) or not v):
                raise ValueError(
                    f"board {self.name!r}: {field} must be a non-empty string or None, not {v!r}"
                )
        if self.vivado_board_part is not None and not self.has_ps:
            raise ValueError(
                f"board {self.name!r}: vivado_board_part must be None on a board with "
                f"ps {self.ps!r}, not {self.vivado_board_part!r}"
            )
        if self.ddr_part is not None and self.ps != "PS7":
            raise ValueError(
                f"board {self.name!r}: ddr_part must be None on a board with ps "
                f"{self.ps!r} (only the PS7 takes one), not {self.ddr_part!r}"
            )

    @property
    def has_ps(self) -> bool:
        """Whether the board has a hard processing system (``ps`` is not ``"none"``)."""
        return self.ps != "none"

    @property
    def is_open_flow(self) -> bool:
        """Whether the board's family is built with the open flow (:data:`OPEN_FLOW_FAMILIES`)."""
        return self.family in OPEN_FLOW_FAMILIES

    @property
    def block_ram_kbits(self) -> int:
        """Total block RAM in Kbit (``bram_kbits``, or ``36 * bram36``)."""
        return 36 * self.bram36 if self.bram_kbits is None else self.bram_kbits

    def capacity(self):
        """The programmable logic in the cost model's units, a :class:`lowbit.hw.cost.Resources`.

        LUT6 equivalents (``lut / LUT4_PER_LUT6`` for LUT4 families, rounded down), flip-flops,
        RAMB36 equivalents (``block_ram_kbits / 36``) and DSP slices.
        """

        lut = self.lut if self.lut_inputs == 6 else int(self.lut / LUT4_PER_LUT6)
        bram36 = self.bram36 if self.bram_kbits is None else self.bram_kbits / 36
        return Resources(lut=lut, ff=self.ff, bram36=bram36, dsp=self.dsp)

    def as_dict(self) -> dict:
        """Every field by name, plain data (``pins`` as :meth:`Pins.as_dict`), for JSON."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["pins"] = None if self.pins is None else self.pins.as_dict()
        return d


def _zynq7000(
    name: str,
    part: str,
    device: str,
    board_doc: str,
    ddr_gbps: float | None,
    openfpgaloader: str | None,
    *,
    board_part: str,
    ddr_part: str | None = None,
) -> Board:
    lut, ff, bram36, dsp = _Z7_DEVICES[device]
    m = re.fullmatch(r"xc7z\d+([a-z]+\d+)(-\d+)", part)
    if m is None:
        raise ValueError(f"board {name!r}: {part!r} is not a Zynq-7000 part name")
    package, speed = m.groups()
    ofl = f"; {_OFL}" if openfpgaloader else ""
    return Board(
        name=name,
        part=part,
        family="zynq-7000",
        package=package,
        speed_grade=speed,
        ps="PS7",
        lut=lut,
        ff=ff,
        bram36=bram36,
        uram=0,
        dsp=dsp,
        fabric_clock_mhz=100.0,
        ddr_bandwidth_gbps=ddr_gbps,
        axi_hp_ports=4,
        axi_hp_width_bits=64,
        openfpgaloader_board=openfpgaloader,
        vivado_board_part=board_part,
        ddr_part=ddr_part,
        source=f"{device}: {_DS190}; {board_doc}; {_UG585}; {_CLOCK}{ofl}",
    )


# device: (LUT, FF, BRAM36, DSP)
_Z7_DEVICES = {
    "xc7z010": (17_600, 35_200, 60, 80),
    "xc7z020": (53_200, 106_400, 140, 220),
    "xc7z045": (218_600, 437_200, 545, 900),
}

# Board memories (board reference manuals): a 16-bit DDR3 bus at 1050 Mb/s is 16.8 Gbit/s, a
# 32-bit bus (the widest a Zynq-7000 PS drives) at 1066 Mb/s 34.1 Gbit/s.
# board_part: glob for the board's Vivado board part, matched against the installed board files;
# ddr_part: the PS7 DDR memory part (board reference manuals), set in the plan when no board preset
# is installed (none is recorded for the Zybo Z7 and the ZC706).
_MT41K256M16 = "MT41K256M16 RE-125"
_BOARD_LIST = [
    _zynq7000(
        "pynq-z1",
        "xc7z020clg400-1",
        "xc7z020",
        "Digilent PYNQ-Z1 reference manual (512 MB DDR3, 16-bit, 1050 Mb/s)",
        16.8,
        None,
        board_part="*pynq-z1*",
        ddr_part=_MT41K256M16,
    ),
    _zynq7000(
        "pynq-z2",
        "xc7z020clg400-1",
        "xc7z020",
        "TUL PYNQ-Z2 product page (512 MB DDR3, 16-bit, 1050 Mb/s)",
        16.8,
        "pynq_z2",
        board_part="*pynq-z2*",
        ddr_part=_MT41K256M16,
    ),
    _zynq7000(
        "zedboard",
        "xc7z020clg484-1",
        "xc7z020",
        "Avnet ZedBoard hardware user guide (512 MB DDR3, 32-bit, 1066 Mb/s)",
        34.1,
        "zedboard",
        board_part="*zedboard*",
        ddr_part="MT41K128M16 JT-125",
    ),
    _zynq7000(
        "zybo-z7-20",
        "xc7z020clg400-1",
        "xc7z020",
        "Digilent Zybo Z7 reference manual (1 GB DDR3L, 32-bit, 1066 Mb/s)",
        34.1,
        "zybo_z7_20",
        board_part="*zybo-z7-20*",
    ),
    _zynq7000(
        "zybo-z7-10",
        "xc7z010clg400-1",
        "xc7z010",
        "Digilent Zybo Z7 reference manual (1 GB DDR3L, 32-bit, 1066 Mb/s)",
        34.1,
        "zybo_z7_10",
        board_part="*zybo-z7-10*",
    ),
    _zynq7000(
        "arty-z7-20",
        "xc7z020clg400-1",
        "xc7z020",
        "Digilent Arty Z7 reference manual (512 MB DDR3, 16-bit, 1050 Mb/s)",
        16.8,
        "arty_z7_20",
        board_part="*arty-z7-20*",
        ddr_part=_MT41K256M16,
    ),
    _zynq7000(
        "arty-z7-10",
        "xc7z010clg400-1",
        "xc7z010",
        "Digilent Arty Z7 reference manual (512 MB DDR3, 16-bit, 1050 Mb/s)",
        16.8,
        "arty_z7_10",
        board_part="*arty-z7-10*",
        ddr_part=_MT41K256M16,
    ),
    _zynq7000(
        "cora-z7-10",
        "xc7z010clg400-1",
        "xc7z010",
        "Digilent Cora Z7 reference manual (512 MB DDR3L, 16-bit, 1050 Mb/s)",
        16.8,
        None,
        board_part="*cora-z7-10*",
        ddr_part=_MT41K256M16,
    ),
    _zynq7000(
        "zc706",
        "xc7z045ffg900-2",
        "xc7z045",
        "AMD/Xilinx UG954 ZC706 evaluation board user guide (1 GB PS DDR3, four x8 devices: "
        "32-bit, 1066 Mb/s)",
        34.1,
        "zc706",
        board_part="*zc706*",
    ),
    Board(
        name="ultra96-v2",
        part="xczu3eg-sbva484-1-i",
        family="zynq-ultrascale+",
        package="sbva484",
        speed_grade="-1",
        ps="ZynqMP",
        lut=70_560,
        ff=141_120,
        bram36=216,
        uram=0,
        dsp=360,
        fabric_clock_mhz=100.0,
        ddr_bandwidth_gbps=34.1,
        axi_hp_ports=4,
        axi_hp_width_bits=128,
        vivado_board_part="*ultra96v2*",
        source=f"xczu3eg: {_DS891}; Avnet Ultra96-V2 product brief (2 GB LPDDR4, 512M x32); its PS "
        f"configuration in Xilinx/BNN-PYNQ (bnn/src/library/script/ultra96/ultra96.tcl: "
        f"PSU__CRF_APB__DDR_CTRL__FREQMHZ 533, i.e. 1066 Mb/s on 32 bits = 34.1 Gbit/s); "
        f"{_UG1085}; {_CLOCK}; not in openFPGALoader's board list",
    ),
    Board(
        name="kv260",
        part="xck26-sfvc784-2lv-c",
        family="zynq-ultrascale+",
        package="sfvc784",
        speed_grade="-2LV",
        ps="ZynqMP",
        lut=117_120,
        ff=234_240,
        bram36=144,
        uram=64,
        dsp=1_248,
        fabric_clock_mhz=100.0,
        ddr_bandwidth_gbps=153.6,
        axi_hp_ports=4,
        axi_hp_width_bits=128,
        vivado_board_part="*kv260_som*",
        source=f"xck26 (zu5ev class): {_DS987} (4 GB DDR4, 64-bit, 2400 Mb/s); {_UG1085}; "
        f"{_CLOCK}; not in openFPGALoader's board list (its issue #583)",
    ),
    Board(
        name="zcu104",
        part="xczu7ev-ffvc1156-2-e",
        family="zynq-ultrascale+",
        package="ffvc1156",
        speed_grade="-2",
        ps="ZynqMP",
        lut=230_400,
        ff=460_800,
        bram36=312,
        uram=96,
        dsp=1_728,
        fabric_clock_mhz=100.0,
        axi_hp_ports=4,
        axi_hp_width_bits=128,
        vivado_board_part="*zcu104*",
        source=f"xczu7ev: {_DS891}; AMD/Xilinx UG1267 ZCU104 user guide (PS DDR4 bandwidth not "
        f"recorded); {_UG1085}; {_CLOCK}; not in openFPGALoader's board list",
    ),
    Board(
        name="icebreaker",
        part="ice40up5k-sg48",
        family="ice40",
        package="sg48",
        speed_grade="",
        ps="none",
        lut=5_280,
        ff=5_280,
        bram36=0,
        uram=0,
        dsp=8,
        lut_inputs=4,
        bram_kbits=120,
        fabric_clock_mhz=12.0,
        openfpgaloader_board="ice40_generic",
        pins=Pins(
            clk="35",
            uart_rx="6",
            uart_tx="9",
            btn_n="10",
            led_err_n="11",
            led_busy_n="37",
            source=f"1BitSquared icebreaker.pcf (CLK 35 the 12 MHz oscillator, RX 6 the "
            f"FTDI's TX, TX 9 the FTDI's RX, BTN_N 10 the user button, LEDR_N 11 "
            f"and LEDG_N 37, lit when low); {_LITEX} 1bitsquared_icebreaker.py "
            f"(clk12 35, serial rx 6 / tx 9, user_btn_n 10, user_led_n 11 and 37)",
        ),
        source="iCE40UP5K: Lattice FPGA-DS-02008 iCE40 UltraPlus data sheet, table 1.1 (5,280 LUT4 "
        "and DFF, 30 EBR of 4 Kb = 120 Kb, 8 DSP MAC16; the 4 x 256 Kb SPRAM cannot be initialised "
        "and is not counted); 1BitSquared iCEBreaker (12 MHz oscillator, no DDR); "
        f"{_OFL} (ice40_generic serves the iCEBreaker)",
    ),
    Board(
        name="ulx3s-85f",
        part="lfe5u-85f-6bg381c",
        family="ecp5",
        package="bg381",
        speed_grade="6",
        ps="none",
        lut=83_640,
        ff=83_640,
        bram36=0,
        uram=0,
        dsp=156,
        lut_inputs=4,
        bram_kbits=3_744,
        fabric_clock_mhz=25.0,
        openfpgaloader_board="ulx3s",
        pins=Pins(
            clk="G2",
            uart_rx="M1",
            uart_tx="L4",
            btn_n="D6",
            led_err_n="B2",
            led_busy_n="C2",
            source=f"Radiona ulx3s_v20.lpf (clk_25mhz G2 the oscillator, ftdi_txd M1 the "
            f"FTDI's TX, ftdi_rxd L4 the FTDI's RX, BTN_PWRn D6 the PWR button, "
            f"active low; LEDs B2 and C2 light when high, so the shell's _n outputs "
            f"read inverted); {_LITEX} radiona_ulx3s.py (clk25 G2, serial rx M1 / "
            f"tx L4, user_led B2 and C2; it resets with R1, FIRE1, instead)",
        ),
        source="LFE5U-85F: Lattice FPGA-DS-02012 ECP5 family data sheet, table 1.1 (41,820 slices "
        "of two LUT4 and two FFs, 208 sysMEM EBR of 18 Kb = 3,744 Kb, 156 18x18 multipliers); "
        f"Radiona ULX3S (25 MHz oscillator, 32 MB SDRAM on fabric pins, no PS); {_OFL}",
    ),
]

BOARDS: dict[str, Board] = {b.name: b for b in _BOARD_LIST}
"""The known boards by name."""


def register_board(board: Board) -> Board:
    """Add ``board`` to :data:`BOARDS`; every command that takes a board then accepts it.

    Raises
    ------
    LowbitError
        If a board of that name is already registered.
    """
    if not isinstance(board, Board):
        raise TypeError(f"board must be a Board, not {board!r}")
    if board.name in BOARDS:
        raise LowbitError(f"a board named {board.name!r} is already registered")
    BOARDS[board.name] = board
    return board


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
        raise LowbitError(
            f"unknown board {name!r}; known boards: {', '.join(board_names())}"
        ) from None
