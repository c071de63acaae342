"""CP decomposition of convolutions through the depthwise engine (issue 20): CP-ALS recovers an
exact rank-R kernel, the rank by energy, the depthwise layer of the training stack (its matrix and
its gradient), the factorised network's MACs, exact export to a graph with DepthwiseConv nodes,
``lowbit train --low-rank cp:R[:BITS]``, and the compiled design simulating bit-exact with the
measured cycles per image equal to the model's."""

import json

import numpy as np
import pytest

from lowbit.cli import main
from lowbit.flow import CompiledDesign, verify_compiled_fast
from lowbit.ir import IntegerGraph
from lowbit.ir.datatypes import DataType
from lowbit.ir.graph import DepthwiseConv, MatMulThreshold
from lowbit.quant.data import Dataset, load_digits_split
from lowbit.quant.export import to_integer_graph
from lowbit.quant.train.loop import ZooConfig, _train_step, op_counts, train_zoo
from lowbit.quant.train.lowrank import cp_als, cp_factors, factorise, layer_macs
from lowbit.quant.train.net import ActSpec, LayerSpec, WeightSpec, init_net, parse_arch
from lowbit.quant.train.nn import depthwise_matrix, depthwise_taps


@pytest.fixture(scope="module")
def digits():
    d = load_digits_split()
    return Dataset(
        d.x_train[:300], d.y_train[:300], d.x_test, d.y_test, d.input_dtype, d.image_shape
    )


# -- the reference: CP-ALS and the rank, hand-worked -----------------------------------------------


@pytest.mark.parametrize("n, c, kk, r", [(6, 5, 9, 3), (16, 1, 9, 4), (32, 16, 9, 4), (8, 4, 9, 6)])
def test_cp_als_recovers_an_exact_rank_r_kernel(n, c, kk, r):
    rng = np.random.default_rng(r)
    a, b, s = rng.normal(size=(n, r)), rng.normal(size=(c, r)), rng.normal(size=(kk, r))
    t = np.einsum("ir,jr,kr->ijk", a, b, s)
    (fa, fb, fs), kept = cp_als(t, r)
    assert fa.shape == (n, r) and fb.shape == (c, r) and fs.shape == (kk, r)
    err = np.linalg.norm(np.einsum("ir,jr,kr->ijk", fa, fb, fs) - t) / np.linalg.norm(t)
    assert err < 1e-10 and kept > 1 - 1e-12
    # the convolution's layout: w (N, K*K*C), columns (ky, kx, c), is the tensor (N, C, K*K)
    w = t.transpose(0, 2, 1).reshape(n, kk * c)
    first, taps, last = cp_factors(w, 3, c, r)
    assert first.shape == (r, c) and taps.shape == (r, kk) and last.shape == (n, r)
    approx = np.einsum("nr,rj,rc->njc", last, taps, first).reshape(n, -1)
    np.testing.assert_allclose(approx, w, atol=1e-10 * np.abs(w).max())
    # deterministic: the same factors again
    again = cp_factors(w, 3, c, r)
    assert all((x == y).all() for x, y in zip((first, taps, last), again))


def _orthogonal_cp():
    """3 a1 x b1 x c1 + 2 a2 x b2 x c2 + 1 a3 x b3 x c3, orthonormal vectors: the squared norm 14,
    a rank-1 CP keeps 9 of it, rank 2 keeps 13 (as the singular values 3, 2, 1)."""
    eye = np.eye(4)
    t = sum(
        g * np.einsum("i,j,k->ijk", eye[i], eye[(i + 1) % 4], eye[(i + 2) % 4])
        for i, g in enumerate((3.0, 2.0, 1.0))
    )
    return t.transpose(0, 2, 1).reshape(4, 16)  # as a 2x2 convolution (N 4, K*K 4, C 4)


def test_cp_rank_by_energy_hand_worked():
    w = _orthogonal_cp()
    for energy, rank in ((0.5, 1), (9 / 14, 1), (0.9, 2), (0.95, 3), (1.0, 3)):
        first, taps, last = cp_factors(w, 2, 4, energy)
        assert first.shape[0] == rank, energy
    _, kept = cp_als(w.reshape(4, 4, 4).transpose(0, 2, 1), 2)
    assert kept == pytest.approx(13 / 14, abs=1e-12)
    # up to limit ranks only: the energy not reached, the limit
    assert cp_factors(w, 2, 4, 0.95, limit=2)[0].shape[0] == 2
    # an integer rank is capped by the largest possible rank (the two smaller sizes: 4 * 4)
    assert cp_factors(w, 2, 4, 40)[0].shape[0] == 16


def test_cp_refusals():
    with pytest.raises(ValueError, match="^rank must be a positive integer, not 0$"):
        cp_als(np.ones((2, 2, 2)), 0)
    with pytest.raises(ValueError, match=r"^an energy target must be in \(0, 1\], not 1.5$"):
        cp_factors(np.ones((2, 8)), 2, 2, 1.5)


# -- the depthwise layer of the training stack -----------------------------------------------------


def test_depthwise_matrix_hand_worked():
    w = np.array([[1, 2], [3, 4], [5, 6]])  # 3 channels, 2 taps
    # tap j of channel c is column j * 3 + c
    assert depthwise_matrix(w).tolist() == [
        [1, 0, 0, 2, 0, 0],
        [0, 3, 0, 0, 4, 0],
        [0, 0, 5, 0, 0, 6],
    ]
    g = np.arange(18).reshape(3, 6)
    assert depthwise_taps(g).tolist() == [[0, 3], [7, 10], [14, 17]]


def test_depthwise_layer_gradient_is_the_numerical_one():
    layers = (LayerSpec("conv", 3, 3, 1, 1), LayerSpec("dwconv", 3, 3, 2, 1), LayerSpec("fc", 4))
    net = init_net(
        layers,
        WeightSpec("float"),
        ActSpec("float"),
        DataType.uint(4),
        (5, 5, 2),
        np.random.default_rng(0),
        first_bits=None,
        last_bits=None,
    )
    assert net.params["W1"].shape == (3, 9)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, (6, 5, 5, 2)), rng.integers(0, 4, 6)
    _, grads = _train_step(net, x, y, "identity", None)
    for key in ("W1", "W0"):  # the depthwise weights, and through the depthwise layer
        w, num = net.params[key], np.zeros_like(net.params[key])
        for idx in np.ndindex(w.shape):
            old, losses = w[idx], []
            for step in (1e-6, -1e-6):
                w[idx] = old + step
                losses.append(_train_step(net, x, y, "identity", None)[0])
            w[idx] = old
            num[idx] = (losses[0] - losses[1]) / 2e-6
        np.testing.assert_allclose(grads[key], num, atol=1e-7)


def test_a_depthwise_layer_keeps_its_channels():
    with pytest.raises(ValueError, match="^layer 1: a depthwise convolution keeps its 3 input "
                       "channels, not 4$"):
        init_net(
            (LayerSpec("conv", 3, 1), LayerSpec("dwconv", 4, 3, 1, 1), LayerSpec("fc", 2)),
            WeightSpec("float"), ActSpec("float"), DataType.uint(4), (4, 4, 1),
            np.random.default_rng(0),
        )


# -- the network: CP of cnv-small's convolutions ---------------------------------------------------


def test_cp_of_cnv_small_counts_macs():
    net = init_net(
        parse_arch("cnv-small", 4),
        WeightSpec("ternary"),
        ActSpec("int", 2),
        DataType.uint(4),
        (8, 8, 1),
        np.random.default_rng(1),
    )
    x = np.random.default_rng(2).integers(0, 16, (20, 64))
    f = factorise(net, 4, calibration=x, method="cp")
    kinds = [(L.kind, L.out, L.kernel, L.stride, L.pad, L.pool, L.bottleneck) for L in f.net.layers]
    assert kinds == [
        ("conv", 4, 1, 1, 0, 0, 8),  # 1 -> 4
        ("dwconv", 4, 3, 1, 1, 0, 8),  # the layer's 3x3 window, stride and padding
        ("conv", 16, 1, 1, 0, 2, 0),  # 4 -> 16, the layer's batch-norm, activation and pool
        ("conv", 4, 1, 1, 0, 0, 8),
        ("dwconv", 4, 3, 1, 1, 0, 8),
        ("conv", 32, 1, 1, 0, 2, 0),
        ("fc", 4, 1, 1, 0, 0, 8),  # fc: the SVD
        ("fc", 64, 1, 1, 0, 0, 0),
        ("fc", 4, 1, 1, 0, 0, 0),
    ]
    assert f.ranks == ((4, 4), (4, 4), (4,), ())
    assert [f.net.params[f"W{i}"].shape for i in (0, 1, 2)] == [(4, 1), (4, 9), (16, 4)]
    # 8 x 8 pixels: 64 (1*4 + 9*4 + 4*16) = 6,656 < 64 * 144; 4 x 4: 16 (16*4 + 9*4 + 4*32)
    assert [layer_macs(f.net, i) for i in range(6)] == [256, 2304, 4096, 1024, 576, 2048]
    assert f.macs_after == 6656 + 3648 + 4 * (128 + 64) + 256
    assert f.macs_before == 64 * 9 * 16 + 16 * 9 * 16 * 32 + 128 * 64 + 256
    assert sum(op_counts(f.net).values()) == f.macs_after
    # the first layer at rank 5: 5 (1 + 9 + 16) * 64 = 8,320 < 9,216; rank 6 (9,984) saves nothing
    assert factorise(net, 5, calibration=x, method="cp").ranks[0] == (5, 5)
    assert factorise(net, 6, calibration=x, method="cp").ranks == ((), (6, 6), (6,), ())
    with pytest.raises(ValueError, match="^method must be one of tucker2, cp, not 'svd'$"):
        factorise(net, 4, calibration=x, method="svd")


# -- exact export: the depthwise factor a DepthwiseConv, graph == model on every sample ------------


@pytest.mark.parametrize(
    "weights, acts, rank, bits",
    [("ternary", "int:2", 3, 4), ("binary", "binary", 4, 3), ("int:3", "int:2", 0.5, 8)],
)
def test_cp_network_exports_exactly(digits, weights, acts, rank, bits):
    cfg = ZooConfig(
        arch="cnv-small",
        weights=weights,
        acts=acts,
        epochs=1,
        finetune_epochs=1,
        batch_size=32,
        low_rank=rank,
        low_rank_bits=bits,
        low_rank_method="cp",
    )
    net = train_zoo(digits, cfg)
    graph = to_integer_graph(net)
    dw = [n for n in graph.nodes if isinstance(n, DepthwiseConv)]
    assert len(dw) == sum(L.kind == "dwconv" for L in net.layers) >= 1
    assert all(n.input_dtype == n.output_dtype == DataType.uint(bits) for n in dw)
    assert graph.is_chain and len(graph.dag_nodes()) == len(dw)
    assert sum(isinstance(n, MatMulThreshold) for n in graph.nodes) + len(dw) == net.n_layers
    x = np.concatenate([digits.x_test, digits.x_train])
    assert (graph.predict(x) == net.predict(x)).all()
    assert (graph.scores(x[:50]) == net.exact_forward(x[:50])).all()


# -- lowbit train --low-rank cp:R[:BITS] -----------------------------------------------------------


_EXPECTED = (
    "expected [tucker2:|cp:]R|ENERGY[:BITS], an integer rank R >= 1 or an energy fraction in "
    "(0, 1] such as 0.9, optionally the bottleneck bits 2..8, convolutions by Tucker-2 or CP "
    "(e.g. 16, 0.9:6 or cp:4)"
)


@pytest.mark.parametrize("value", ["cp:0", "cp:", "cp:4:9", "cp:1.5", "tt:4", "cp:cp:4", "CP:4"])
def test_cli_cp_refusals_name_the_flag(value, capsys):
    assert main(["train", "--epochs", "1", f"--low-rank={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"lowbit train: error: argument --low-rank: {_EXPECTED}, not {value!r}"


def test_config_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="^low_rank_method must be one of tucker2, cp, not 'cpd'$"):
        ZooConfig(low_rank=4, low_rank_method="cpd")


@pytest.mark.fast_sim
def test_cp_model_trains_compiles_and_simulates_exactly(tmp_path, private_verilator_cache):
    """``lowbit train --low-rank cp:4:4`` (cnv-small on digits, 2 epochs), ``lowbit compile``
    (the DAG flow: the chain holds DepthwiseConv nodes), the fast path bit-exact against the
    integer graph, measured cycles per image == the DAG mapper's."""
    rep, model, out = tmp_path / "r.json", tmp_path / "cp.npz", tmp_path / "out"
    argv = ["train", "--arch", "cnv-small", "--epochs", "2", "--weights", "TERNARY", "--acts",
            "UINT2", "--low-rank", "cp:4:4", "--finetune-epochs", "1", "--json", str(rep),
            "-o", str(model)]
    assert main(argv) == 0
    r = json.loads(rep.read_text())
    assert r["low_rank"] == {"target": 4, "bits": 4, "method": "cp"}
    assert [L["kind"] for L in r["layers"]] == ["conv", "dwconv", "conv"] * 2 + ["fc"] * 3
    assert r["integer_graph_disagreements"] == 0
    graph = IntegerGraph.load(model)
    assert [n.name for n in graph.nodes if isinstance(n, DepthwiseConv)] == ["dwconv1", "dwconv4"]
    assert main(["compile", str(model), "-o", str(out)]) == 0
    design = CompiledDesign.open(out)
    assert design.is_dag
    x = load_digits_split().x_test[:100]
    rep = verify_compiled_fast(out, x)
    assert rep.ok and rep.mismatch is None, rep.mismatch
    assert (np.asarray(rep.labels) == graph.predict(x)).all()
    # the first depthwise engine at its widest (PE = 4 channels): one beat of its 9 taps per cycle
    # on each of 8 x 8 pixels, 576 cycles per image, the mapper's bottleneck
    assert rep.cycles_per_image == design.report().cycles_per_image == 9 * 64
