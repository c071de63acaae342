"""Randomised regression of engine configurations on the fast path (used with Hypothesis).

An :class:`EngineConfig` fixes everything about one MVTU: shape, folding, input type, weight type
(bipolar, ternary, power-of-two or k-bit), MAC mode (bit-parallel or bit-serial), output mode,
weight density, data seed and handshake throttling. :func:`check_config` generates the
hardware, simulates it on the fast path (``lowbit.sim.fast``) and compares every output with the
node's ``sw_reference`` model using ``==``; with ``mutate`` it first applies a Verilog mutation,
so the regression can be shown to catch (and Hypothesis to shrink) a broken component.
:func:`engine_configs` is the Hypothesis strategy (Hypothesis is a development dependency).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from ..hw.codec import pack_fields, unpack_fields
from ..hw.mvtu.spec import MVTUSpec, divisors
from ..hw.mvtu.unit import element_shape
from ..hw.verilog import to_verilog
from ..ir.datatypes import BIPOLAR, DataType, Kind
from ..ir.graph import MatMulThreshold
from .fast import VerilatedModel
from .verify import Pattern

__all__ = ["EngineConfig", "CheckResult", "check_config", "engine_configs", "flip_adder_bit"]


@dataclass(frozen=True)
class EngineConfig:
    mw: int
    mh: int
    pe: int
    simd: int
    input: str  # "BIPOLAR", "UINT<k>" or "INT<k>"
    output: str  # "scores", "bipolar" (1 threshold) or "uint2" (3 thresholds)
    density: float  # bipolar weights: probability of +1; others: probability of a non-zero weight
    seed: int
    valid_prob: float = 1.0
    ready_prob: float = 1.0
    weights: str = "BIPOLAR"  # "BIPOLAR", "TERNARY", "POW2_<b>" or "INT<k>"
    mac: str = "parallel"  # "parallel" or "serial"

    def node(self) -> MatMulThreshold:
        rng = np.random.default_rng(self.seed)
        dtype = DataType.parse(self.input)
        wd = DataType.parse(self.weights)
        shape = (self.mh, self.mw)
        # density-controlled draws, not DataType.sample: a seed must keep giving the same weights
        nonzero = rng.random(shape) < self.density
        if wd is BIPOLAR:
            w = nonzero.astype(np.uint8)
        elif wd.kind is Kind.POW2:
            w = np.where(nonzero, 1 << rng.integers(0, wd.max_exponent + 1, shape), 0) * rng.choice(
                [-1, 1], shape
            )
        else:
            w = np.where(nonzero, rng.integers(wd.min, wd.max + 1, shape), 0)
        probe = MatMulThreshold("engine", dtype, w, None, weight_dtype=wd)
        if self.output == "scores":
            return probe
        lo, hi = probe.acc_range
        k = 1 if self.output == "bipolar" else 3
        t = np.sort(rng.integers(lo, hi + 2, (self.mh, k)), axis=1)
        return MatMulThreshold(
            "engine", dtype, w, t, BIPOLAR if k == 1 else DataType.uint(2), weight_dtype=wd
        )

    def spec(self) -> MVTUSpec:
        return MVTUSpec(self.node(), pe=self.pe, simd=self.simd, mac=self.mac)

    def inputs(self, n: int) -> np.ndarray:
        return DataType.parse(self.input).sample(np.random.default_rng(self.seed + 1), (n, self.mw))


@dataclass(frozen=True)
class CheckResult:
    config: EngineConfig
    mismatches: int
    first: tuple[int, int, int, int] | None  # (vector, output, got, expected)
    cycles_per_vector: float | None
    timed_out: bool
    expected_cycles: int = 0  # spec.cycles()

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and not self.timed_out


def flip_adder_bit(verilog: str) -> str:
    """Mutation: XOR 1 into the first adder of two non-constant operands (one flipped sum bit)."""
    pat = re.compile(
        r"^(\s*assign\s+\S+\s*=\s*)((?:\$signed\()?\\\$\d+\s*\)?\s*\+\s*(?:\$signed\()?\\\$\d+\s*\)?);",
        re.M,
    )
    m = pat.search(verilog)
    if not m:
        raise ValueError("no adder of two signals found to mutate")
    return verilog[: m.start()] + f"{m.group(1)}({m.group(2)}) ^ 1'b1;" + verilog[m.end() :]


def check_config(
    cfg: EngineConfig,
    *,
    vectors: int = 12,
    mutate: Callable[[str], str] | None = None,
    opt: str = "-O1",
) -> CheckResult:
    """Simulate ``cfg``'s MVTU on the fast path and compare with the reference, exactly."""
    spec = cfg.spec()
    node = spec.node
    verilog = to_verilog(spec.create())
    if mutate is not None:
        verilog = mutate(verilog)
    x = cfg.inputs(vectors)
    in_w = element_shape(node.input_dtype).width
    out_shape = element_shape(node.output_dtype)
    with VerilatedModel.build(verilog, opt=opt) as model:
        model.reset()
        v, r = Pattern("cfg", cfg.valid_prob, cfg.ready_prob, cfg.seed).arrays()
        res = model.stream(
            pack_fields(x.reshape(-1, cfg.simd), in_w),
            vectors * spec.neuron_folds,
            valid=v,
            ready=r,
        )
    got = unpack_fields(res.outputs, out_shape.width, cfg.pe, signed=out_shape.signed).reshape(
        vectors, cfg.mh
    )
    expected = spec.reference(x)
    bad = np.argwhere(got != expected)
    first = (
        None
        if not len(bad)
        else (int(bad[0][0]), int(bad[0][1]), int(got[tuple(bad[0])]), int(expected[tuple(bad[0])]))
    )
    cpv = None
    if cfg.valid_prob == cfg.ready_prob == 1.0 and vectors > 2:
        last = res.out_cycles[spec.neuron_folds - 1 :: spec.neuron_folds]
        cpv = float(np.mean(np.diff(last[1:])))
    return CheckResult(
        cfg, int((got != expected).any(axis=1).sum()), first, cpv, res.timed_out, spec.cycles()
    )


def engine_configs(max_mw: int = 24, max_mh: int = 12):
    """Hypothesis strategy over :class:`EngineConfig` (shrinks towards small, plain designs)."""

    @st.composite
    def strategy(draw):
        mw = draw(st.integers(1, max_mw))
        mh = draw(st.integers(1, max_mh))
        simd = draw(st.sampled_from(divisors(mw)))
        pe = draw(st.sampled_from(divisors(mh)))
        kind = draw(st.sampled_from(["BIPOLAR", "UINT", "INT"]))
        bits = (
            draw(st.integers(1, 6))
            if kind == "UINT"
            else draw(st.integers(2, 6))
            if kind == "INT"
            else 0
        )
        dtype = "BIPOLAR" if kind == "BIPOLAR" else f"{kind}{bits}"
        weights = draw(st.sampled_from(["BIPOLAR", "TERNARY", "POW2_3", "INT2", "INT4", "POW2_4"]))
        serial_ok = not (kind == "BIPOLAR" and weights == "BIPOLAR")
        mac = draw(st.sampled_from(["parallel", "serial"])) if serial_ok else "parallel"
        output = draw(st.sampled_from(["scores", "bipolar", "uint2"]))
        density = draw(st.sampled_from([0.5, 0.0, 1.0, 0.1, 0.9]))
        seed = draw(st.integers(0, 2**16))
        throttle = draw(st.sampled_from([(1.0, 1.0), (0.5, 0.5), (0.3, 0.8), (0.9, 0.2)]))
        return EngineConfig(
            mw, mh, pe, simd, dtype, output, density, seed, *throttle, weights=weights, mac=mac
        )

    return strategy()
