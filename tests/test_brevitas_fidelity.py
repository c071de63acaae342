"""Issue 16: every Brevitas/QONNX export runs with the model's own answers.

Seven real Brevitas models trained on the 8x8 digits (``tests/brevitas_zoo.py``; training and
both exports are cached), each exported by ``export_qonnx``'s default (dynamo) exporter and with
``dynamo=False``, are imported, and on the whole 450-image test split both the imported model's
exact execution (``ImportResult.predict``) and the integer graph alone (``graph.predict`` of the
encoded input: the class decision the hardware is to compute) must give torch's argmax on every
image whose top-2 outputs are not tied within float32 rounding (``brevitas_zoo.untied``).

All 14 cases pass since 7cc3bfd (zero padding on binary activations, the last of the bugs
found here: TensorNorm's constant ``Pow``, the per-class tail of a float or ``Int32Bias`` last
bias, Brevitas 0.13's ``Trunc`` input order, float inputs without an input quantizer).
``benchmarks/brevitas_fidelity.py`` records the same cases with accuracies and the RTL.
"""

from __future__ import annotations

import brevitas_zoo as zoo
import numpy as np
import pytest

from lowbit.quant.data import load_digits_split
from lowbit.quant.onnx.importer import import_onnx

EXPORTS = {"dynamo": True, "torchscript": False}

CASES = [pytest.param(name, export, id=f"{name}-{export}") for name in zoo.MODELS
         for export in EXPORTS]


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def _first_disagreement(what: str, got: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> str:
    bad = np.flatnonzero((got != ref) & mask)
    if not bad.size:
        return ""
    i = int(bad[0])
    return (f"{what} disagrees with torch on {bad.size} of {int(mask.sum())} untied images, "
            f"first image {i}: {int(got[i])} vs torch {int(ref[i])}")


@pytest.mark.parametrize("name, export", CASES)
def test_imported_brevitas_model_gives_torchs_labels(name, export, digits, tmp_path):
    path = zoo.export(name, tmp_path, EXPORTS[export])
    x = zoo.model_input(name, digits.x_test)
    out = zoo.torch_outputs(name, x)
    ref, mask = out.argmax(axis=1), zoo.untied(out)
    assert mask.sum() >= 0.9 * len(x), f"{name}: {int((~mask).sum())} tied images"

    res = import_onnx(path, **zoo.import_kwargs(name))
    problems = [
        _first_disagreement("ImportResult.predict", res.predict(x), ref, mask),
        _first_disagreement("the integer graph", res.graph.predict(res.encode(x)), ref, mask),
    ]
    problems = [p for p in problems if p]
    assert not problems, f"{name} ({export}): " + "; ".join(problems)
