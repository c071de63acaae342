"""The input threshold unit (issue 16): fixed-point pixels on the wire, turned into the model's
input codes in hardware by a :class:`~lowbit.ir.graph.Threshold` node, exactly as the graph's input
quantizer encodes them. Hand-worked values first."""

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.hw.registry import unit_spec
from lowbit.hw.stream.threshold import ThresholdNodeSpec, ThresholdSpec
from lowbit.ir import BIPOLAR, TERNARY, DataType, IntegerGraph, MatMulThreshold, Threshold
from lowbit.ir.boundary import InputQuant
from lowbit.mapping.schedule import complete_layers
from lowbit.sim.amaranth_sim import run_stream

U2, U4, U5, U8 = (DataType.uint(b) for b in (2, 4, 5, 8))
I3, I4, I8 = DataType.int(3), DataType.int(4), DataType.int(8)


def _graph(in_dtype, quant, mw=2, weights=((1, -1), (2, 1))):
    fc = MatMulThreshold("fc", in_dtype, np.array(weights), None, weight_dtype=I3)
    return IntegerGraph(in_dtype, (fc,), (mw,), quant)


# -- the thresholds, by hand -----------------------------------------------------------------------


def test_uint_wire_thresholds_by_hand():
    # wire UINT4 scale 1/16 carries x = w/16; the model's UINT2 scale 1/4 encodes round(w/4)
    # (half to even): w 0..2 -> 0 (2/4 = 0.5 rounds to 0), 3..5 -> 1, 6..9 -> 2 (6/4 = 1.5 -> 2),
    # 10 -> 2 (2.5 -> 2), 11..15 -> 3.
    g = _graph(U2, InputQuant(U2, (0.25,), (0.0,)))
    gw = g.with_input_wire(InputQuant(U4, (1 / 16,), (0.0,)))
    node = gw.nodes[0]
    assert isinstance(node, Threshold) and node.thresholds.tolist() == [[3, 6, 11]]
    assert (node.input_dtype, node.output_dtype) == (U4, U2)
    assert gw.input_dtype == U4 and gw.input_quant == InputQuant(U4, (1 / 16,), (0.0,))
    codes = gw.trace(np.array([[0, 2], [3, 5], [6, 10], [11, 15]]))[0]
    assert codes.tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]
    # scores of wire pixels (0, 15) = codes (0, 3): [1*0 - 1*3, 2*0 + 1*3]
    assert gw.scores(np.array([[0, 15]])).tolist() == [[-3, 3]]


def test_signed_codes_and_a_signed_wire_by_hand():
    # wire INT4 scale 1/2 zero point 0: x = w/2 for w in -8..7; model INT3 scale 1, zero point 0:
    # round(w/2) half to even, clipped to -4..3. w -8 -> -4, -7 -> -4 (-3.5 -> -4), -6 -> -3,
    # -5 -> -2 (-2.5), -4 -> -2, -3 -> -2 (-1.5), -2 -> -1, -1 -> 0 (-0.5), 0 -> 0, 1 -> 0 (0.5),
    # 2 -> 1, 3 -> 2 (1.5), 4 -> 2, 5 -> 2 (2.5), 6 -> 3, 7 -> 4 -> 3 (clipped).
    g = _graph(I3, InputQuant(I3, (1.0,), (0.0,)))
    gw = g.with_input_wire(InputQuant(I4, (0.5,), (0.0,)))
    # code >= -3 from w = -6, >= -2 from -5, >= -1 from -2, >= 0 from -1, >= 1 from 2, >= 2 from 3,
    # >= 3 from 6
    assert gw.nodes[0].thresholds.tolist() == [[-6, -5, -2, -1, 2, 3, 6]]
    w = np.arange(-8, 8)
    assert gw.trace(np.stack([w, w], 1))[0][:, 0].tolist() == [
        -4, -4, -3, -2, -2, -2, -1, 0, 0, 0, 1, 2, 2, 2, 3, 3
    ]


def test_bipolar_codes_by_hand():
    # a binary input quantizer decides x >= 0; wire INT4 scale 1 zero point 2: x = w - 2 >= 0 from
    # w = 2 on
    g = _graph(BIPOLAR, InputQuant(BIPOLAR, (1.0,), (0.0,)), weights=((1, 1), (1, -1)))
    gw = g.with_input_wire(InputQuant(I4, (1.0,), (2.0,)))
    assert gw.nodes[0].thresholds.tolist() == [[2]] and gw.nodes[0].output_dtype == BIPOLAR
    assert gw.trace(np.array([[1, 2]]))[0].tolist() == [[0, 1]]


def test_per_channel_quantizer_gives_a_row_per_channel():
    q = InputQuant(U2, (0.25, 0.5), (0.0, 1.0))
    gw = _graph(U2, q).with_input_wire(InputQuant(U4, (1 / 16,), (0.0,)))
    # channel 0 as above; channel 1: round(w/8 + 1) clipped to 0..3: w 0..3 -> 1 (4/8 + 1 = 1.5
    # -> 2 from w = 4), 2 from 4, 3 from 12 (12/8 + 1 = 2.5 -> 2; 13 -> 2.625 -> 3)
    assert gw.nodes[0].thresholds.tolist() == [[3, 6, 11], [0, 4, 13]]


@pytest.mark.parametrize("seed", range(4))
def test_the_wire_graph_answers_as_the_graph_on_the_decoded_values(seed):
    """Exact on every input: graph_wire(w) == graph(quant.encode(wire.decode(w)))."""
    rng = np.random.default_rng(seed)
    out = [U4, I4, U5, BIPOLAR][seed]
    channels = 6
    scale = tuple(float(np.float32(v)) for v in rng.uniform(0.01, 0.3, channels))
    zp = tuple(float(v) for v in rng.integers(0, 3, channels)) if out != BIPOLAR else (0.0,)
    q = InputQuant(out, scale, zp, rounding=["ROUND", "FLOOR", "HALF_UP", "ROUND"][seed])
    w = rng.integers(-3, 4, (4, channels))
    g = _graph(out, q, mw=channels, weights=w)
    wire = InputQuant(I8 if seed % 2 else U8, (float(np.float32(rng.uniform(0.005, 0.05))),),
                      (float(rng.integers(-3, 4)),))
    gw = g.with_input_wire(wire)
    lo, hi = wire.dtype.stored_range
    x = np.concatenate([np.repeat(np.arange(lo, hi + 1)[:, None], channels, 1),
                        rng.integers(lo, hi + 1, (300, channels))])
    expect = g.scores(q.encode(wire.decode(x).astype(np.float32)))
    assert (gw.scores(x) == expect).all()


def test_wire_refusals_name_the_problem():
    g = _graph(U2, InputQuant(U2, (0.25,), (0.0,)))
    with pytest.raises(LowbitError, match="no input quantizer"):
        _graph(U2, None).with_input_wire(InputQuant(U8, (1 / 255,), (0.0,)))
    with pytest.raises(LowbitError, match="UINT<k> or INT<k>, not BIPOLAR"):
        g.with_input_wire(InputQuant(BIPOLAR, (1.0,), (0.0,)))
    with pytest.raises(LowbitError, match="bit width 17 exceeds"):
        g.with_input_wire(InputQuant(DataType.uint(17), (1.0,), (0.0,)))
    with pytest.raises(LowbitError, match="one scale and zero point"):
        g.with_input_wire(InputQuant(U8, (1.0, 2.0), (0.0,)))
    with pytest.raises(LowbitError, match="already has a node named 'fc'"):
        g.with_input_wire(InputQuant(U8, (1.0,), (0.0,)), name="fc")


def test_threshold_node_checks():
    with pytest.raises(ValueError, match="needs 3 thresholds per channel, not 2"):
        Threshold("t", np.array([[1, 2]]), U4, U2)
    with pytest.raises(ValueError, match="sorted ascending"):
        Threshold("t", np.array([[3, 2, 5]]), U4, U2)
    with pytest.raises(ValueError, match=r"must lie in \[0, 16\]"):
        Threshold("t", np.array([[1, 2, 17]]), U4, U2)
    with pytest.raises(ValueError, match="UINT<k> or INT<k>, not TERNARY"):
        Threshold("t", np.array([[1]]), TERNARY, BIPOLAR)


def test_save_and_load_keep_the_threshold_node(tmp_path):
    import json
    import zipfile

    g = _graph(U2, InputQuant(U2, (0.25,), (0.0,)))
    gw = g.with_input_wire(InputQuant(U4, (1 / 16,), (0.0,)))
    back = IntegerGraph.load(gw.save(tmp_path / "w.npz"))
    assert back.nodes[0].thresholds.tolist() == [[3, 6, 11]]
    assert back.input_quant == gw.input_quant and back.input_dtype == U4
    x = np.arange(16).reshape(8, 2)
    assert (back.scores(x) == gw.scores(x)).all()

    def version(p):
        with zipfile.ZipFile(p) as z:
            return json.loads(np.load(z.open("header.npy")).tobytes())["version"]

    assert version(tmp_path / "w.npz") == 4  # the threshold node needs version 4
    assert version(g.save(tmp_path / "g.npz")) == 3  # a graph without one stays readable by 3


# -- the hardware ----------------------------------------------------------------------------------


def test_node_spec_folds_like_the_unit_it_feeds():
    g = _graph(U2, InputQuant(U2, (0.25,), (0.0,)), mw=4, weights=np.ones((2, 4), int))
    gw = g.with_input_wire(InputQuant(U4, (1 / 16,), (0.0,)))
    layers = complete_layers(gw, [(4, 1)])  # fc: SIMD 4, PE 1
    assert [(f.name, f.pe, f.simd) for f in layers] == [("input_threshold", 4, 4), ("fc", 1, 4)]
    spec = unit_spec(gw.nodes[0], (4,), U4, pe=4, simd=4)
    assert isinstance(spec, ThresholdNodeSpec)
    # one beat of 4 pixels a cycle: 1 cycle per image; 4 bits in, 2 out
    assert (spec.cycles_per_image(), spec.in_bits, spec.out_bits, spec.in_size) == (1, 4, 2, 4)
    assert spec.unit.thresholds.tolist() == [[3, 6, 11]] * 4  # shared row, one per lane


@pytest.mark.parametrize("out", [U2, I4, BIPOLAR])
def test_threshold_unit_rtl_gives_the_codes(out):
    """The MultiThreshold unit's RTL with UINT, INT and BIPOLAR outputs, against hand-checked
    reference codes, at full rate (one beat per cycle)."""
    n = 1 if out == BIPOLAR else (1 << out.bits) - 1
    rng = np.random.default_rng(out.bits)
    t = np.sort(rng.integers(-8, 9, (4, n)), axis=1)
    spec = ThresholdSpec(t, I8, 2, output_dtype=out)
    x = rng.integers(-12, 13, (6, 4))  # 6 pixels of 4 channels, 2 a beat
    expect = spec.reference(x)
    # the reference by hand for the first pixel: lo + how many thresholds each value reaches
    lo = out.stored_range[0]
    assert expect[0].tolist() == [lo + int(np.sum(x[0, c] >= t[c])) for c in range(4)]
    beats = [sum((int(v) & 0xFF) << (8 * lane) for lane, v in enumerate(x[p, f * 2:(f + 1) * 2]))
             for p in range(6) for f in range(2)]
    run = run_stream(spec.create(), beats, len(beats))
    bits = 1 if out == BIPOLAR else out.bits
    got = []
    for word in run.outputs:
        for lane in range(2):
            v = (word >> (lane * bits)) & ((1 << bits) - 1)
            got.append(v - (1 << bits) if out.signed and v >> (bits - 1) else v)
    assert got == expect.reshape(-1).tolist()
    assert np.diff(run.out_cycles).tolist() == [1] * (len(beats) - 1)


# -- the command line ---------------------------------------------------------------------------


def test_map_and_compile_take_an_input_wire(tmp_path, capsys):
    from lowbit.cli import main as cli_main

    def main(argv):  # argparse may exit instead of returning the status
        try:
            return cli_main(argv)
        except SystemExit as e:
            return e.code

    g = _graph(U2, InputQuant(U2, (0.25,), (0.0,)), mw=4, weights=np.ones((2, 4), int))
    path = g.save(tmp_path / "g.npz")
    assert main(["map", str(path), "--input-wire", "UINT4:1/16"]) == 0
    out = capsys.readouterr().out
    assert "input_threshold" in out
    assert "input threshold unit: UINT4 pixels on the wire -> the model's UINT2 codes (3 " in out
    assert main(["map", str(path), "--input-wire", "UINT4:one"]) == 2
    err = capsys.readouterr().err
    assert "--input-wire" in err and "'UINT4:one'" in err
    assert main(["compile", "--zoo", "lfc-w1a1", "-o", str(tmp_path / "z"),
                 "--input-wire", "UINT8:1"]) == 2
    assert "--input-wire applies to a model file" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()


def test_the_compiled_report_carries_the_boundary(tmp_path):
    """compile stores the wire's quantizer (what the accelerator's input codes stand for) and the
    class decision in report.json itself."""
    from lowbit.flow import CompiledDesign, compile_model

    g = _graph(U2, InputQuant(U2, (0.25,), (0.0,)), mw=4, weights=np.ones((2, 4), int))
    gw = g.with_input_wire(InputQuant(U4, (1 / 16,), (0.0,)))
    report = compile_model(gw, tmp_path / "c", budget=0.05)
    expect = {
        "input_dtype": "UINT4",
        "input_quant": {"dtype": "UINT4", "scale": [0.0625], "zero_point": [0.0],
                        "rounding": "ROUND"},
        "class_map": None,
    }
    assert gw.boundary() == expect and report.boundary == expect
    assert CompiledDesign.open(tmp_path / "c").report().boundary == expect
