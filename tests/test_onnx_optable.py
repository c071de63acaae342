"""The op table (``lowbit.quant.onnx.ops.OPS``) is the one source of the operators lowbit imports.

Every row has a float executor and an importer handler; the importer, the model checks, the float
executor and post-training quantization read the table and list no op names of their own; and an
operator added as one row and one handler imports like the built-in ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.quant.onnx import executors, ptq
from lowbit.quant.onnx import ops as onnx_ops
from lowbit.quant.onnx.importer import SUPPORTED_OPS, graphs_equal, import_onnx
from lowbit.quant.onnx.ops import OPS, QONNX_DOMAIN, OpSpec
from lowbit.quant.streamline import Affine, fraction_array

from onnx_models import QDOMAIN, Builder, OP_MODELS, float_cnn, sample_inputs

PACKAGE = Path(onnx_ops.__file__).resolve().parent


def test_every_row_has_an_executor_and_a_handler():
    assert SUPPORTED_OPS == frozenset(OPS) == onnx_ops.SUPPORTED_OPS
    for op, row in OPS.items():
        assert row.op_type == op
        assert row.domain in ("", QONNX_DOMAIN), op
        assert callable(row.execute), op
        assert callable(row.lower), op
        assert row.fold is None or callable(row.fold), op
        assert row.weight_axis is None or row.weight_axis({}) in (0, 1), op


def test_reference_rows_are_standard_and_hand_written_executors_say_why():
    """onnx's reference evaluator runs standard operators only; every hand-written executor
    documents why it is not the reference (a QONNX operator, or semantics it does not match)."""
    for op, row in OPS.items():
        if isinstance(row.execute, executors.Reference):
            assert row.domain == "", op
        else:
            assert row.execute.__module__ == executors.__name__, op
            assert row.execute.__doc__ and len(row.execute.__doc__.split()) >= 6, op


def _op_names_in(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in OPS}


MODULES = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("ops.py", "writer.py"))


@pytest.mark.parametrize("module", MODULES)
def test_no_module_keeps_its_own_op_list(module):
    """Outside the table no module compares ``op_type`` with op names, holds a collection of op
    names or dispatches by a handler name (``getattr(self, "op_" + op_type)``). The writer, which
    emits nodes, is exempt."""
    tree = ast.parse((PACKAGE / module).read_text())
    bad = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Compare):
            sides = [n.left, *n.comparators]
            on_type = any(isinstance(s, ast.Attribute) and s.attr == "op_type" for s in sides)
            if on_type and _op_names_in(n):
                bad.append(f"line {n.lineno}: compares op_type with {sorted(_op_names_in(n))}")
        elif isinstance(n, (ast.Tuple, ast.List, ast.Set)) and len(_op_names_in(n)) >= 2 and all(
                isinstance(e, ast.Constant) for e in n.elts):
            bad.append(f"line {n.lineno}: lists {sorted(_op_names_in(n))}")
        elif isinstance(n, ast.Call) and getattr(n.func, "id", None) == "getattr" and any(
                isinstance(c, ast.Constant) and c.value == "op_" for c in ast.walk(n)):
            bad.append(f"line {n.lineno}: dispatches by handler name")
    assert not bad, f"{module}:\n" + "\n".join(bad)
    assert not hasattr(ptq, "_PASS") and not hasattr(ptq, "_MATMULS")


def test_the_importer_reads_the_table():
    rng = np.random.default_rng(0)
    model = OP_MODELS["Gemm+Quant+Relu"](rng)
    without = {k: v for k, v in OPS.items() if k != "Relu"}
    with pytest.raises(LowbitError, match=r"^<model>: node '[^']+' \(Relu\): operator 'Relu' "
                                          r"is not supported; nearest supported form: a chain of "
                                          r"Conv/Gemm/MatMul, batch-norm, activations and "
                                          r"quantizers$"):
        import_onnx(model, table=without)
    assert import_onnx(model).graph.nodes


def test_post_training_quantization_reads_the_table(monkeypatch):
    """PTQ inserts a quantizer before a matrix product unless the tensor comes from a quantizer
    through operators that keep the grid: the table's ``quantizer`` and ``keeps_grid``."""
    b = Builder("p", (4,))
    b.quant(0.25, 4)
    relu = b.act("Relu", name="relu")
    model = b.model((4,))
    assert not ptq._already_quantized(model, relu)
    patched = dict(OPS)
    patched["Relu"] = OpSpec("", "Relu", OPS["Relu"].execute, OPS["Relu"].lower, keeps_grid=True)
    monkeypatch.setattr(ptq, "OPS", patched)
    assert ptq._already_quantized(model, relu)
    # the weights PTQ quantizes are those of the rows with a weight axis
    def conv_weight_quantizers():
        calib = np.random.default_rng(2).normal(0, 1, (4, 3, 8, 8)).astype(np.float32)
        model = float_cnn(np.random.default_rng(1))
        q = ptq.insert_quantizers(model, calib, ptq.PTQConfig("int4", "uint4"))
        return sum(n.name.startswith("ptq_wquant_conv") for n in q.graph.node)

    assert conv_weight_quantizers() == 3
    patched["Conv"] = OpSpec("", "Conv", OPS["Conv"].execute, OPS["Conv"].lower)
    assert conv_weight_quantizers() == 0


# -- the recipe: one row and one handler ---------------------------------------------------------


def _double_exec(ins, a, node, opset):
    """``Double``: twice its input (a made-up custom operator)."""
    return [2.0 * np.asarray(ins[0], dtype=np.float64)]


def _double_lower(lw, node, ins, a):
    act = ins[0]
    c = act.channels
    twice = Affine(fraction_array(np.full(c, 2.0)), fraction_array(np.zeros(c)))
    return lw.elementwise(node, act, twice)


def _model(rng, middle):
    b = Builder("double", (8,))
    b.quant(0.25, 4)
    b.act("MatMul", b.qweight(rng.normal(0, 1, (8, 6)), 0.25, 3), name="fc0")
    middle(b)
    b.act("Relu")
    b.quant(0.5, 2)
    b.act("MatMul", b.qweight(rng.normal(0, 1, (6, 3)), 0.25, 3), name="head")
    return b.model((3,))


def test_a_new_operator_is_one_row_and_one_handler():
    model = _model(np.random.default_rng(3),
                   lambda b: b.act("Double", domain=QDOMAIN, name="twice"))
    with pytest.raises(LowbitError, match=r"^<model>: node 'twice' \(Double\): operator "
                                          r"'Double' is not supported; nearest supported form: "):
        import_onnx(model)
    table = {**OPS, "Double": OpSpec(QONNX_DOMAIN, "Double", _double_exec, _double_lower)}
    result = import_onnx(model, table=table)
    x = sample_inputs(model, np.random.default_rng(4))
    ref = next(iter(onnx_ops.run(model, x, table=table).values()))
    np.testing.assert_allclose(result.run(x), ref, rtol=0, atol=1e-9)
    # the same graph as the standard form of the same model (Mul by 2)
    same = _model(np.random.default_rng(3), lambda b: b.act("Mul", b.const(2.0), name="twice"))
    assert graphs_equal(result.graph, import_onnx(same).graph)
