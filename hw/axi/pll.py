"""The open-flow shells' PLL: the dividers of the family's PLL for a fabric clock, and its instance.

:func:`plan_pll` searches the dividers of one PLL output for a requested frequency, as the
PyPI tools that ship with the nextpnr wheels do (``yowasp-ecppll``, Project Trellis
``libtrellis/tools/ecppll.cpp``; ``yowasp-icepll``, IceStorm ``icepll/icepll.cc``), with exact
fractions instead of their floats; :class:`PLL` holds the result and instantiates the primitive
(:meth:`PLL.instance`) in :class:`~lowbit.hw.axi.shells_uart.UARTShell`.

* **ECP5** ``EHXPLLL``, feedback from ``CLKOP``: ``f_pfd = f_in / CLKI_DIV``,
  ``f_out = f_pfd * CLKFB_DIV``, ``f_vco = f_out * CLKOP_DIV``. Ranges (ecppll's, within the ECP5
  data sheet FPGA-DS-02012's sysCLOCK PLL timing): input 8-400 MHz, PFD 3.125-400 MHz, VCO
  400-800 MHz, output 3.125-400 MHz (the data sheet's; ecppll warns below 10 MHz); ``CLKI_DIV``
  1-128, ``CLKFB_DIV`` 1-80, ``CLKOP_DIV`` 1-128.
  Among the outputs closest to the request, the VCO closest to 600 MHz (ecppll's rule), then the
  first in ``(CLKI_DIV, CLKFB_DIV, CLKOP_DIV)`` order. ``CLKOP_CPHASE = CLKOP_DIV // 2`` (ecppll's
  half-period shift; with ``CLKOP`` as the feedback the output's phase is the loop's) and the
  loop-filter attributes ecppll writes (``ICP_CURRENT`` 12, ``LPF_RESISTOR`` 8, ...).
* **iCE40** ``SB_PLL40_PAD`` (the clock pin is the PLL's pad on the iCEBreaker), ``SIMPLE``
  feedback: ``f_pfd = f_in / (DIVR + 1)``, ``f_vco = f_pfd * (DIVF + 1)``,
  ``f_out = f_vco / 2**DIVQ``. Ranges (icepll's, the iCE40 sysCLOCK PLL guide TN1251's): input and
  PFD 10-133 MHz, VCO 533-1066 MHz, output 16-275 MHz; ``DIVR`` 0-15, ``DIVF`` 0-127, ``DIVQ``
  1-6; ``FILTER_RANGE`` from the PFD (icepll's table). The first closest output in
  ``(DIVR, DIVF, DIVQ)`` order (icepll's rule).

Settings outside any range are never taken. A request outside the family's output range, or one
the best setting misses by more than :data:`TOLERANCE`, is refused (``ValueError`` naming the
parameter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import Instance, Value

__all__ = ["TOLERANCE", "PLLLimits", "PLL_LIMITS", "PLL", "plan_pll"]

TOLERANCE = 0.01
"""The largest relative difference between the requested and the achieved output."""


@dataclass(frozen=True)
class PLLLimits:
    """A family's PLL: the family's name as written, its primitive and the frequency ranges (MHz,
    inclusive) its dividers keep to (see the module docstring for their source)."""

    family: str
    label: str
    primitive: str
    in_mhz: tuple[float, float]
    pfd_mhz: tuple[float, float]
    vco_mhz: tuple[float, float]
    out_mhz: tuple[float, float]


PLL_LIMITS: dict[str, PLLLimits] = {
    "ecp5": PLLLimits("ecp5", "ECP5", "EHXPLLL", (8, 400), (3.125, 400), (400, 800), (3.125, 400)),
    "ice40": PLLLimits(
        "ice40", "iCE40", "SB_PLL40_PAD", (10, 133), (10, 133), (533, 1066), (16, 275)
    ),
}
"""The PLL of each open-flow family."""


@dataclass(frozen=True)
class PLL:
    """One PLL output: ``in_mhz`` to ``out_mhz`` (the achieved frequency, the design's clock) for a
    request of ``requested_mhz``.

    Attributes
    ----------
    family : str
        ``"ecp5"`` or ``"ice40"`` (:data:`PLL_LIMITS`).
    in_mhz, requested_mhz, out_mhz, pfd_mhz, vco_mhz : float
        The input (the board's oscillator), the request, the output, the phase detector's and the
        VCO's frequency.
    dividers : tuple of (str, int)
        The primitive's divider parameters by name (``CLKI_DIV``, ``CLKFB_DIV``, ``CLKOP_DIV`` on
        ECP5; ``DIVR``, ``DIVF``, ``DIVQ``, ``FILTER_RANGE`` on iCE40).
    """

    family: str
    in_mhz: float
    requested_mhz: float
    out_mhz: float
    pfd_mhz: float
    vco_mhz: float
    dividers: tuple[tuple[str, int], ...]

    @property
    def primitive(self) -> str:
        """The vendor primitive (``EHXPLLL``, ``SB_PLL40_PAD``)."""
        return PLL_LIMITS[self.family].primitive

    def divider(self, name: str) -> int:
        """The divider parameter ``name``."""
        return dict(self.dividers)[name]

    def as_dict(self) -> dict:
        """For ``build.json``: the primitive, the frequencies and the dividers."""
        return {
            "primitive": self.primitive,
            "in_mhz": self.in_mhz,
            "requested_mhz": self.requested_mhz,
            "out_mhz": self.out_mhz,
            "pfd_mhz": self.pfd_mhz,
            "vco_mhz": self.vco_mhz,
            **dict(self.dividers),
        }

    def instance(self, clk_in: Value, clk_out: Value, lock: Value) -> Instance:
        """The primitive from ``clk_in`` (the oscillator's pin) to ``clk_out``, ``lock`` high once
        locked."""
        d = dict(self.dividers)
        if self.family == "ecp5":
            return Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{self.in_mhz:g}",
                a_FREQUENCY_PIN_CLKOP=f"{self.out_mhz:g}",
                a_ICP_CURRENT="12",
                a_LPF_RESISTOR="8",
                a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED",
                p_INTFB_WAKE="DISABLED",
                p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED",
                p_OUTDIVIDER_MUXA="DIVA",
                p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC",
                p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=d["CLKI_DIV"],
                p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_DIV=d["CLKOP_DIV"],
                p_CLKOP_CPHASE=d["CLKOP_DIV"] // 2,
                p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP",
                p_CLKFB_DIV=d["CLKFB_DIV"],
                i_RST=0,
                i_STDBY=0,
                i_CLKI=clk_in,
                i_CLKFB=clk_out,
                i_PHASESEL0=0,
                i_PHASESEL1=0,
                i_PHASEDIR=1,
                i_PHASESTEP=1,
                i_PHASELOADREG=1,
                i_PLLWAKESYNC=0,
                i_ENCLKOP=0,
                o_CLKOP=clk_out,
                o_LOCK=lock,
            )
        return Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=d["DIVR"],
            p_DIVF=d["DIVF"],
            p_DIVQ=d["DIVQ"],
            p_FILTER_RANGE=d["FILTER_RANGE"],
            i_PACKAGEPIN=clk_in,
            i_RESETB=1,
            i_BYPASS=0,
            o_PLLOUTGLOBAL=clk_out,
            o_LOCK=lock,
        )


def _within(f: Fraction, bounds: tuple[float, float]) -> bool:
    return Fraction(bounds[0]) <= f <= Fraction(bounds[1])


def _ecp5(f_in: Fraction, want: Fraction, lim: PLLLimits):
    """ecppll's search: (error, |VCO - 600|, dividers) of the best setting, or ``None``."""
    best = None
    for clki in range(1, 129):
        pfd = f_in / clki
        if not _within(pfd, lim.pfd_mhz):
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            if not _within(out, lim.out_mhz):
                continue
            lo = max(1, math.ceil(Fraction(lim.vco_mhz[0]) / out))
            for clkop in range(lo, min(128, math.floor(Fraction(lim.vco_mhz[1]) / out)) + 1):
                vco = out * clkop
                key = (abs(out - want), abs(vco - 600))
                if best is None or key < best[0]:
                    best = (key, pfd, vco, out, (clki, clkfb, clkop))
    if best is None:
        return None
    _, pfd, vco, out, (clki, clkfb, clkop) = best
    return pfd, vco, out, (("CLKI_DIV", clki), ("CLKFB_DIV", clkfb), ("CLKOP_DIV", clkop))


def _ice40_filter_range(pfd: Fraction) -> int:
    """icepll's FILTER_RANGE for the PFD frequency (MHz)."""
    for k, upper in enumerate((17, 26, 44, 66, 101), start=1):
        if pfd < upper:
            return k
    return 6


def _ice40(f_in: Fraction, want: Fraction, lim: PLLLimits):
    """icepll's search (SIMPLE feedback): the first closest setting, or ``None``."""
    best = None
    for divr in range(16):
        pfd = f_in / (divr + 1)
        if not _within(pfd, lim.pfd_mhz):
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not _within(vco, lim.vco_mhz):
                continue
            for divq in range(1, 7):
                out = vco / 2**divq
                if not _within(out, lim.out_mhz):
                    continue
                if best is None or abs(out - want) < best[0]:
                    best = (abs(out - want), pfd, vco, out, (divr, divf, divq))
    if best is None:
        return None
    _, pfd, vco, out, (divr, divf, divq) = best
    dividers = (("DIVR", divr), ("DIVF", divf), ("DIVQ", divq))
    return pfd, vco, out, dividers + (("FILTER_RANGE", _ice40_filter_range(pfd)),)


def plan_pll(family: str, in_mhz: float, out_mhz: float, *, name: str = "out_mhz") -> PLL:
    """The PLL of ``family`` from ``in_mhz`` closest to ``out_mhz`` (the module docstring's search).

    Raises
    ------
    ValueError
        ``family`` has no PLL here; ``in_mhz`` is outside the PLL's input range; ``out_mhz`` is
        above the family's output limit, or the best setting misses it by more than
        :data:`TOLERANCE` (the message names ``name``, the parameter the request came from).
    """
    if family not in PLL_LIMITS:
        raise ValueError(f"family must be one of {', '.join(sorted(PLL_LIMITS))}, not {family!r}")
    lim = PLL_LIMITS[family]
    what = f"the {lim.label} PLL ({lim.primitive})"
    if not lim.in_mhz[0] <= in_mhz <= lim.in_mhz[1]:
        raise ValueError(
            f"in_mhz must be within {what}'s input range {lim.in_mhz[0]:g}-{lim.in_mhz[1]:g} MHz, "
            f"not {in_mhz!r}"
        )
    if not lim.out_mhz[0] <= out_mhz <= lim.out_mhz[1]:
        side = "above" if out_mhz > lim.out_mhz[1] else "below"
        raise ValueError(
            f"{name} {out_mhz:g}: {side} {what}'s output range of {lim.out_mhz[0]:g}-"
            f"{lim.out_mhz[1]:g} MHz"
        )
    f_in, want = Fraction(in_mhz), Fraction(out_mhz)
    found = (_ecp5 if family == "ecp5" else _ice40)(f_in, want, lim)
    if found is None or abs(found[2] - want) > want * Fraction(str(TOLERANCE)):
        best = "no setting" if found is None else f"at best {float(found[2]):g} MHz"
        raise ValueError(
            f"{name} {out_mhz:g}: {what} makes {best} from the {in_mhz:g} MHz oscillator, more "
            f"than {TOLERANCE:.0%} off"
        )
    pfd, vco, out, dividers = found
    return PLL(
        family=family,
        in_mhz=float(in_mhz),
        requested_mhz=float(out_mhz),
        out_mhz=float(out),
        pfd_mhz=float(pfd),
        vco_mhz=float(vco),
        dividers=dividers,
    )
