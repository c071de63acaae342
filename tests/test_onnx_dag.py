"""Issue 19, import worked by hand: a residual Add of two quantized tensors of scales 1/2 and 3/4
requantized by ReLU and a 2-bit Quant of scale 1/2 (rounding half to even) imports as the Add node
``tests/test_dag_reference.py`` works out (acc = 2 a + 3 b, thresholds 2, 3, 6), and a Concat of
two branches as a Concat node; the graph equals the model's exact execution on every input."""

import itertools

import numpy as np
import pytest
from onnx_models import Builder

from lowbit import LowbitError
from lowbit.ir import Add, Concat, MatMulThreshold, Threshold
from lowbit.quant.onnx.importer import import_onnx


def _two_branches(join: str):
    """x (2,) -> Quant(1/2, UINT3) = a; a -> Quant(3/4, UINT3) = b; join(a, b) -> head."""
    b = Builder("join", (2,))
    a = b.quant(0.5, 3, name="qa")
    qb = b.quant(0.75, 3, name="qb")
    if join == "add":
        b.x = b.node("Add", [a, qb], name="add")
        b.act("Relu", name="relu")
        b.quant(0.5, 2, name="qout")
        w = np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float32)  # (2, 3)
    else:
        b.x = b.node("Concat", [a, qb], name="cat", axis=1)
        w = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)  # rows: a0 a1 b0 b1
    b.act("MatMul", b.qweight(w, 1.0, 2), name="fc")
    return b.model((w.shape[1],))


GRID = np.array(list(itertools.product(np.arange(-1, 5, 0.25), repeat=2)), dtype=np.float32)


@pytest.mark.parametrize("native", [False, True])
def test_add_join_imports_as_worked_by_hand(native):
    res = import_onnx(_two_branches("add"), native_nodes=native)
    g = res.graph
    (add,) = [n for n in g.nodes if isinstance(n, Add)]
    # s_a / s_b = (1/2) / (3/4) = 2/3: acc = 2 a + 3 b; round(acc / 2) >= 1, 2, 3 from 2, 3, 6
    assert add.wa.tolist() == [2, 2] and add.wb.tolist() == [3, 3]
    assert add.thresholds.tolist() in ([[2, 3, 6]], [[2, 3, 6], [2, 3, 6]])
    requant = g.nodes[0]
    assert isinstance(requant, Threshold if native else MatMulThreshold)
    assert g.inputs_of(g.nodes.index(add)) == ("", requant.name)
    assert np.array_equal(g.predict(res.encode(GRID)), res.predict(GRID))
    np.testing.assert_array_equal(res.outputs(g.scores(res.encode(GRID))), res.run(GRID))


def test_concat_join_imports():
    res = import_onnx(_two_branches("concat"))
    g = res.graph
    cat = g.nodes[1]
    assert isinstance(cat, Concat) and g.inputs_of(1) == ("", g.nodes[0].name)
    assert g.output_shape(1) == (4,)
    np.testing.assert_array_equal(res.outputs(g.scores(res.encode(GRID))), res.run(GRID))


def test_concat_of_two_types_is_refused():
    b = Builder("cat2", (2,))
    a = b.quant(0.5, 3, name="qa")
    qb = b.quant(0.75, 2, name="qb")
    b.x = b.node("Concat", [a, qb], name="cat", axis=1)
    b.act("MatMul", b.qweight(np.ones((4, 2)), 1.0, 2), name="fc")

    with pytest.raises(LowbitError, match=r"node 'cat' \(Concat\): lowbit concatenates activations "
                                          r"of one type along the channels \(axis 1\), not axis 1 "
                                          r"of UINT3, UINT2$"):
        import_onnx(b.model((2,)))
