"""Hardware of the compressed models (issue 20): a factorised and a channel-pruned network each map
(a factor is one more matrix-product engine), compile and simulate bit-exact on the RTL fast path
with the measured cycles per image equal to the mapper's, and the mapper's MACs equal the training
loop's operation count."""

import pytest

from lowbit.flow import compile_model, verify_compiled_fast
from lowbit.ir.graph import MatMulThreshold
from lowbit.mapping import search_folding
from lowbit.quant.data import Dataset, load_digits_split
from lowbit.quant.export import to_integer_graph
from lowbit.quant.train.loop import ZooConfig, op_counts, train_zoo

pytestmark = pytest.mark.fast_sim


@pytest.fixture(scope="module", autouse=True)
def _private_cache(private_verilator_cache):
    """Every module builds its Verilated models in its own cache."""


@pytest.fixture(scope="module")
def digits():
    d = load_digits_split()
    return Dataset(
        d.x_train[:300], d.y_train[:300], d.x_test, d.y_test, d.input_dtype, d.image_shape
    )


BASE = dict(arch="mlp:32,32", weights="ternary", acts="int:2", epochs=1, batch_size=32)


@pytest.mark.parametrize(
    "method, extra, engines",
    [
        ("low-rank", dict(low_rank=4, low_rank_bits=4, finetune_epochs=1), 5),  # 2 + 2 + 1
        ("channels", dict(prune_channels=0.5, finetune_epochs=1), 3),
    ],
)
def test_compressed_model_compiles_and_simulates_exactly(digits, tmp_path, method, extra, engines):
    net = train_zoo(digits, ZooConfig(**BASE, **extra))
    graph = to_integer_graph(net)
    assert sum(isinstance(n, MatMulThreshold) for n in graph.nodes) == engines
    # the cheapest folding at 64 cycles per image: narrow engines, a quick Verilator build
    schedule = search_folding(graph, "pynq-z2", max_cycles=64)
    report = compile_model(graph, tmp_path / "out", schedule=schedule)
    mapping = report.mapping
    assert [layer["op"] for layer in mapping["layers"]].count("MatMulThreshold") == engines
    macs = sum(layer["macs"] for layer in mapping["energy"]["layers"])
    assert macs == sum(op_counts(net).values())
    assert mapping["memory"]["weight_bits"] == sum(
        n.weights.size * n.weight_dtype.bits for n in graph.matmuls
    )
    rep = verify_compiled_fast(tmp_path / "out", digits.x_test[:200])
    assert rep.ok, rep.mismatch
    assert rep.cycles_per_image == report.cycles_per_image
    assert (graph.predict(digits.x_test[:200]) == net.predict(digits.x_test[:200])).all()
