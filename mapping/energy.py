"""Modelled energy per inference, from operation and memory-access counts (45 nm table).

This is a **model**, not a measurement: the energies per operation are Horowitz (ISSCC 2014) as
tabulated by Han et al. 2015 for a 45 nm process (``ARITHMETIC.md`` section 8), for 32-bit
operands. lowbit's operands are narrower, so the table is scaled, and the scaling is our
assumption, stated here and in every report:

* an add, subtract or compare of ``k`` bits costs ``0.1 pJ * k / 32`` (ripple logic grows linearly);
* a ``k x m``-bit multiply costs ``3.1 pJ * (k * m) / (32 * 32)`` (array multipliers grow with
  the product of the widths);
* an XNOR-popcount MAC is one 1-bit add (``0.1 / 32`` pJ): the popcount tree is a tree of
  ``MW`` one-bit additions; a power-of-two (shift) weight costs its accumulator add only
  (the shift is wiring);
* on-chip memory: ``5 pJ`` per 32 bits read (SRAM/cache); off-chip: ``640 pJ`` per 32 bits (DRAM).

Counts per inference: every MAC of every node (``MH * MW`` per input vector, one vector per output
pixel for convolutions), every threshold comparison, every weight bit read once per input vector
(the MVTU streams its weight memory once per vector), the input image read from DRAM, and — for
layers whose weights are placed off chip — their weights read from DRAM once per vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..ir.graph import IntegerGraph, MatMulThreshold
from ..ir.mac import MacOp

__all__ = ["ENERGY_PJ", "LayerEnergy", "EnergyReport", "energy_per_inference", "MODEL_LABEL"]

ENERGY_PJ = {"add32": 0.1, "mult32": 3.1, "sram32": 5.0, "dram32": 640.0}
"""Energy per 32-bit operation or access at 45 nm (Horowitz ISSCC 2014, via Han et al. 2015)."""

MODEL_LABEL = (
    "modelled energy, 45 nm (Horowitz 2014 table, scaled by bit width: linear for adds, "
    "product of widths for multiplies)"
)


_KIND_NAMES = {MacOp.XNOR: "xnor", MacOp.ADD: "add", MacOp.SHIFT: "shift", MacOp.MULTIPLY: "mult"}
"""The name of a layer's kind in the report: the arithmetic of its MACs (``node.mac_kind.op``)."""


@dataclass(frozen=True)
class LayerEnergy:
    """Counts and modelled energy (pJ) of one :class:`MatMulThreshold` node per inference."""

    name: str
    kind: str
    macs: int
    compares: int
    weight_bits_read: int
    off_chip: bool
    compute_pj: float
    memory_pj: float

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.memory_pj


@dataclass(frozen=True)
class EnergyReport:
    layers: tuple[LayerEnergy, ...]
    input_pj: float
    label: str = field(default=MODEL_LABEL)

    @property
    def total_pj(self) -> float:
        return self.input_pj + sum(layer.total_pj for layer in self.layers)

    def macs_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for layer in self.layers:
            out[layer.kind] = out.get(layer.kind, 0) + layer.macs
        return out

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "total_uj": self.total_pj * 1e-6,
            "input_pj": self.input_pj,
            "macs_by_kind": self.macs_by_kind(),
            "layers": [
                {
                    "name": e.name,
                    "kind": e.kind,
                    "macs": e.macs,
                    "compares": e.compares,
                    "weight_bits_read": e.weight_bits_read,
                    "off_chip": e.off_chip,
                    "compute_pj": e.compute_pj,
                    "memory_pj": e.memory_pj,
                }
                for e in self.layers
            ],
        }


def energy_per_inference(
    graph: IntegerGraph, *, off_chip: frozenset[str] | set[str] = frozenset()
) -> EnergyReport:
    """The modelled energy of one inference of ``graph``; ``off_chip`` names layers whose weights
    sit in DRAM."""
    unknown = set(off_chip) - {n.name for n in graph.matmuls}
    if unknown:
        raise ValueError(
            "off_chip names layers that are not MatMulThreshold nodes of the graph: "
            f"{sorted(unknown)}"
        )
    e = ENERGY_PJ
    layers = []
    for i, node in enumerate(graph.nodes):
        if not isinstance(node, MatMulThreshold):
            continue
        vectors = math.prod(graph.output_shape(i)) // node.mh
        macs = vectors * node.mh * node.mw
        op = node.mac_kind.op
        acc = node.acc_bits
        if op is MacOp.XNOR:
            per_mac = e["add32"] / 32
        elif op is MacOp.MULTIPLY:
            per_mac = (
                e["mult32"] * node.weight_dtype.bits * node.input_dtype.bits / 1024
                + e["add32"] * acc / 32
            )
        else:  # an add, subtract or shift (wiring) before the accumulator add
            per_mac = e["add32"] * acc / 32
        n_thr = 0 if node.thresholds is None else node.thresholds.shape[1]
        compares = vectors * node.mh * n_thr
        compute = macs * per_mac + compares * e["add32"] * acc / 32
        weight_bits = vectors * node.weights.size * node.weight_dtype.bits
        per_word = e["dram32"] if node.name in off_chip else e["sram32"]
        memory = weight_bits / 32 * per_word
        layers.append(
            LayerEnergy(
                node.name,
                _KIND_NAMES[op],
                macs,
                compares,
                weight_bits,
                node.name in off_chip,
                compute,
                memory,
            )
        )
    input_bits = graph.input_size * graph.input_dtype.bits
    return EnergyReport(tuple(layers), input_bits / 32 * e["dram32"])
