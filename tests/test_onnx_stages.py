"""The stages of the ONNX import, each on its own: read (load and check), lower (walk the nodes),
solve (thresholds of a pending layer) and emit (assemble the graph); composed, they are
``import_onnx``."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from onnx import TensorProto

from lowbit import LowbitError
from lowbit.ir.datatypes import TERNARY, DataType
from lowbit.ir.graph import MatMulThreshold
from lowbit.quant.onnx.emit import assemble
from lowbit.quant.onnx.importer import graphs_equal, import_onnx
from lowbit.quant.onnx.lower import lower
from lowbit.quant.onnx.read import read
from lowbit.quant.onnx.solve import solve_input, solve_layer
from lowbit.quant.onnx.states import Codes, Layer, Pending, Raw
from lowbit.quant.streamline import IntQuantizer, fraction_array

from onnx_models import Builder, qonnx_cnn, qonnx_mlp


def test_read_describes_the_input():
    src = read(qonnx_mlp(np.random.default_rng(0)))
    assert src.label == "<model>" and src.opset == 13 and src.input_name == "x"
    assert isinstance(src.input, Raw) and src.input.phys == (16,) and src.input.chain == ()
    assert np.array_equal(src.input.idx, np.arange(16))
    # an image input: NCHW logical layout over the (H, W, C) stream
    img = read(qonnx_cnn(np.random.default_rng(0))).input
    assert img.phys == (8, 8, 2) and img.idx.shape == (2, 8, 8) and img.idx[1, 0, 0] == 1
    # an integer input is codes from the start
    b = Builder("u8", (4,), elem=TensorProto.UINT8)
    b.act("Cast", to=TensorProto.FLOAT)
    codes = read(b.model((4,))).input
    assert isinstance(codes, Codes) and codes.dtype == DataType.uint(8)


def test_read_checks_before_anything_is_lowered():
    m = qonnx_mlp(np.random.default_rng(0))
    m.opset_import[0].version = 9
    with pytest.raises(LowbitError, match=r"^<model>: opset 9 is not supported"):
        read(m)


def test_lower_walks_to_the_pending_last_layer():
    model = qonnx_mlp(np.random.default_rng(0), sizes=(16, 12, 5))
    lowered = lower(read(model))
    assert [type(n).__name__ for n in lowered.nodes] == ["MatMulThreshold"]
    assert lowered.nodes[0].thresholds is not None
    assert isinstance(lowered.output, Pending) and lowered.output.phys == (5,)
    assert lowered.input.dtype == DataType.uint(4) and lowered.input_tensor is not None
    assert set(lowered.layer_scales) == {lowered.nodes[0].name}


def test_solve_layer_hand_worked():
    """value = a / 2 of the dot product a of [1, 1] with UINT2 inputs, then Quant(scale 1, 0..3,
    round half to even): code 1 from a = 2 (1.0), code 2 from a = 3 (1.5 -> 2), code 3 from a = 6
    (2.5 rounds to 2)."""
    layer = Layer("fc", DataType.uint(2), np.array([[1, 1]]), TERNARY,
                  np.array([Fraction(1, 2)], dtype=object), np.array([Fraction(0)], dtype=object),
                  False)
    quant = IntQuantizer(fraction_array([1.0]), fraction_array([0.0]), 0, 3, "ROUND")
    solved = solve_layer(Pending(np.arange(1), (1,), "fc", layer, chain=(quant,)))
    (node, origin), = solved.nodes
    assert isinstance(node, MatMulThreshold) and origin == "fc"
    assert node.thresholds.tolist() == [[2, 3, 6]] and node.output_dtype == DataType.uint(2)
    assert solved.codes.dtype == DataType.uint(2)
    assert solved.codes.scale.tolist() == [1] and solved.codes.offset.tolist() == [0]


def test_solve_input_takes_the_quantizer_codes():
    quant = IntQuantizer(fraction_array([0.25, 0.5]), fraction_array([0.0, 0.0]), 0, 15, "ROUND")
    codes = solve_input(Raw(np.arange(2), (2,), "input 'x'", chain=(quant,)))
    assert codes.dtype == DataType.uint(4)
    assert codes.scale.tolist() == [Fraction(1, 4), Fraction(1, 2)]
    assert codes.offset.tolist() == [0, 0]


def test_emit_needs_a_fully_connected_last_layer():
    model = qonnx_mlp(np.random.default_rng(0))
    lowered = lower(read(model))
    assert graphs_equal(assemble(lowered).graph, import_onnx(model).graph)
    src = lowered.source
    with pytest.raises(LowbitError, match=r"^<model>: the model must end in a fully connected "
                                          r"layer \(Gemm or MatMul\) followed only by element-wise "
                                          r"operations; it ends in \"input 'x'\"$"):
        assemble(type(lowered)(src, (), {}, {}, lowered.input, lowered.input, None,
                               lowered.input_idx, lowered.table))
