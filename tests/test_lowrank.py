"""Low-rank factorisation (issue 20): SVD of fc layers, Tucker-2 of convolutions, exact export,
the MAC counts and ``lowbit train --low-rank``'s refusals."""

import json

import numpy as np
import pytest

from lowbit.cli import main
from lowbit.ir import IntegerGraph
from lowbit.ir.datatypes import DataType
from lowbit.quant.data import Dataset, load_digits_split
from lowbit.quant.export import to_integer_graph
from lowbit.quant.train.loop import ZooConfig, op_counts, train_zoo
from lowbit.quant.train.lowrank import (
    choose_rank,
    factorise,
    layer_macs,
    svd_factors,
    tucker2_factors,
)
from lowbit.quant.train.net import ActSpec, WeightSpec, init_net, parse_arch


@pytest.fixture(scope="module")
def digits():
    d = load_digits_split()
    return Dataset(
        d.x_train[:300], d.y_train[:300], d.x_test, d.y_test, d.input_dtype, d.image_shape
    )


# -- the reference: rank choice and factors, hand-worked -------------------------------------------


def test_rank_by_energy_hand_worked():
    s = np.array([3.0, 2.0, 1.0])  # squared: 9, 4, 1 of 14 -> cumulative 9/14, 13/14, 14/14
    assert choose_rank(s, 0.5) == 1  # 9/14 = 0.643 >= 0.5
    assert choose_rank(s, 9 / 14) == 1  # exactly reached
    assert choose_rank(s, 0.9) == 2  # 13/14 = 0.929
    assert choose_rank(s, 0.95) == 3
    assert choose_rank(s, 1.0) == 3
    assert choose_rank(s, 2) == 2 and choose_rank(s, 7) == 3  # an integer rank, capped


@pytest.mark.parametrize(
    "target, message",
    [
        (0, "a rank must be at least 1, not 0"),
        (0.0, r"an energy target must be in \(0, 1\], not 0.0"),
        (1.5, r"an energy target must be in \(0, 1\], not 1.5"),
    ],
)
def test_rank_refusals(target, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        choose_rank(np.ones(3), target)


def test_svd_factors_are_exact_at_the_matrix_rank():
    w = np.outer([1.0, 2.0, 0.0], [1.0, 0.0, 1.0, 2.0]) + np.outer(
        [0.0, 1.0, 1.0], [0.0, 3.0, 1.0, 0.0]
    )
    v, u = svd_factors(w, 2)
    assert v.shape == (2, 4) and u.shape == (3, 2)
    np.testing.assert_allclose(u @ v, w, atol=1e-12)
    v1, u1 = svd_factors(w, 1)  # Eckart-Young: the error is the dropped singular value
    s = np.linalg.svd(w, compute_uv=False)
    assert np.linalg.norm(w - u1 @ v1, 2) == pytest.approx(s[1])


def test_tucker2_is_exact_at_the_multilinear_rank():
    rng = np.random.default_rng(0)
    n, k, c, r1, r2 = 6, 3, 5, 2, 3
    core = rng.normal(size=(r2, k, k, r1))
    a, b = rng.normal(size=(c, r1)), rng.normal(size=(n, r2))
    w4 = np.einsum("syxr,cr,ns->nyxc", core, a, b)
    fa, g, fb = tucker2_factors(w4.reshape(n, -1), k, c, 3)
    assert fa.shape == (3, c) and g.shape == (3, k * k * 3) and fb.shape == (n, 3)
    approx = np.einsum("syxr,rc,ns->nyxc", g.reshape(3, k, k, 3), fa, fb)
    np.testing.assert_allclose(approx, w4, atol=1e-10)
    fa, g, fb = tucker2_factors(w4.reshape(n, -1), k, c, 1.0)  # all the energy: the true ranks
    assert fa.shape == (r1, c) and g.shape == (r2, k * k * r1) and fb.shape == (n, r2)
    approx = np.einsum("syxr,rc,ns->nyxc", g.reshape(r2, k, k, r1), fa, fb)
    np.testing.assert_allclose(approx, w4, atol=1e-10)
    # full rank on both sides: no 1x1 convolutions
    fa, g, fb = tucker2_factors(w4.reshape(n, -1), k, c, 10)
    assert fa is None and fb is None and g.shape == (n, k * k * c)


# -- the network: MACs r (m + n) vs m n ------------------------------------------------------------


def _net(arch, weights="ternary", acts="int:2", shape=(20,)):
    layers = parse_arch(arch, 4)
    return init_net(
        layers,
        WeightSpec.parse(weights),
        ActSpec.parse(acts),
        DataType.uint(4),
        shape,
        np.random.default_rng(1),
    )


def test_fc_factorisation_counts_r_m_plus_n_macs():
    net = _net("mlp:12,8")  # layers 12x20, 8x12, 4x8
    x = np.random.default_rng(2).integers(0, 16, (50, 20))
    f = factorise(net, 3, calibration=x)
    # layer 0: 3 (12 + 20) = 96 < 240; layer 1: 3 (8 + 12) = 60 < 96; the last layer stays
    assert f.ranks == ((3,), (3,), ())
    assert [layer_macs(f.net, i) for i in range(f.net.n_layers)] == [60, 36, 36, 24, 32]
    assert f.macs_before == 240 + 96 + 32 and f.macs_after == 96 + 60 + 32
    assert sum(op_counts(f.net).values()) == f.macs_after
    # a rank that saves nothing leaves the layer as it is: 6 (12 + 20) = 192 < 240, 6 (8 + 12) >= 96
    assert factorise(net, 6, calibration=x).ranks == ((6,), (), ())


def test_tucker2_of_cnv_small_counts_macs():
    net = _net("cnv-small", shape=(8, 8, 1))
    x = np.random.default_rng(2).integers(0, 16, (20, 64))
    f = factorise(net, 4, calibration=x)
    kinds = [(L.kind, L.out, L.kernel, L.pool, L.bottleneck) for L in f.net.layers]
    assert kinds == [
        ("conv", 4, 3, 0, 8),
        ("conv", 16, 1, 2, 0),  # C = 1: no input 1x1, 64 (9 + 16) * 4 < 64 * 144
        ("conv", 4, 1, 0, 8),
        ("conv", 4, 3, 0, 8),
        ("conv", 32, 1, 2, 0),  # 16 (64 + 144 + 128)
        ("fc", 4, 1, 0, 8),
        ("fc", 64, 1, 0, 0),  # 4 (512 + 64) < 512 * 64
        ("fc", 4, 1, 0, 0),
    ]
    # 8 x 8 pixels, then 4 x 4 after the first pool
    assert (
        f.macs_after
        == 64 * (9 * 4 + 4 * 16) + 16 * (16 * 4 + 9 * 16 + 4 * 32) + 4 * (128 + 64) + 256
    )
    assert f.macs_before == 64 * 9 * 16 + 16 * 9 * 16 * 32 + 128 * 64 + 256


# -- exact export: each factor its own MatMulThreshold, graph == model on every sample -------------


@pytest.mark.parametrize(
    "arch, weights, acts, rank",
    [
        ("mlp:32,32", "ternary", "int:2", "4:8"),
        ("mlp:32,32", "binary", "binary", "0.8:3"),  # energy target, 3-bit bottlenecks (clipping)
        ("cnv-small", "ternary", "int:2", "3:4"),  # Tucker-2 with padded 3x3 cores
    ],
)
def test_factorised_network_exports_exactly(digits, arch, weights, acts, rank):
    target, bits = rank.split(":")
    cfg = ZooConfig(
        arch=arch,
        weights=weights,
        acts=acts,
        epochs=1,
        finetune_epochs=1,
        batch_size=32,
        low_rank=float(target) if "." in target else int(target),
        low_rank_bits=int(bits),
    )
    net = train_zoo(digits, cfg)
    assert any(L.bottleneck for L in net.layers)
    graph = to_integer_graph(net)
    bottlenecks = [n for n in graph.matmuls if n.output_dtype == DataType.uint(int(bits))]
    assert len(bottlenecks) == sum(1 for L in net.layers if L.bottleneck)
    assert len(graph.matmuls) == net.n_layers
    x = np.concatenate([digits.x_test, digits.x_train])
    assert (graph.predict(x) == net.predict(x)).all()
    assert (graph.scores(x[:50]) == net.exact_forward(x[:50])).all()


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("low_rank", 0, r"low_rank must be an integer rank >= 1 or an energy in \(0, 1\], not 0"),
        (
            "low_rank",
            1.5,
            r"low_rank must be an integer rank >= 1 or an energy in \(0, 1\], not 1.5",
        ),
        (
            "low_rank",
            True,
            r"low_rank must be an integer rank >= 1 or an energy in \(0, 1\], not True",
        ),
        ("low_rank_bits", 9, r"low_rank_bits must be an integer in 2..8, not 9"),
        ("finetune_epochs", 0, r"finetune_epochs must be a positive integer, not 0"),
    ],
)
def test_config_refuses_bad_low_rank_settings(field, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        ZooConfig(**{field: value})


def test_config_refuses_low_rank_with_sharing():
    with pytest.raises(
        ValueError, match="^low_rank and prune_channels cannot be combined with share or prune$"
    ):
        ZooConfig(low_rank=4, share=4)


def test_cli_low_rank_end_to_end(tmp_path):
    rep, out = tmp_path / "r.json", tmp_path / "m.npz"
    argv = [
        "train",
        "--arch",
        "mlp:32,16",
        "--epochs",
        "1",
        "--weights",
        "TERNARY",
        "--acts",
        "UINT2",
        "--low-rank",
        "4:6",
        "--finetune-epochs",
        "1",
        "--json",
        str(rep),
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    r = json.loads(rep.read_text())
    assert r["low_rank"] == {"target": 4, "bits": 6, "method": "tucker2"} and r["finetune_epochs"] == 1
    assert [L.get("bottleneck", 0) for L in r["layers"]] == [6, 0, 6, 0, 0]
    assert r["integer_graph_disagreements"] == 0
    data = load_digits_split()
    assert r["accuracy"] == float(
        np.mean(IntegerGraph.load(out).predict(data.x_test) == data.y_test)
    )


_EXPECTED = (
    "expected [tucker2:|cp:]R|ENERGY[:BITS], an integer rank R >= 1 or an energy fraction in "
    "(0, 1] such as 0.9, optionally the bottleneck bits 2..8, convolutions by Tucker-2 or CP "
    "(e.g. 16, 0.9:6 or cp:4)"
)


@pytest.mark.parametrize(
    "value", ["0", "-1", "1.5", "0.0", "nan", "inf", "abc", "4:9", "4:1", "4:x", "4:8:1"]
)
def test_cli_low_rank_refusals_name_the_flag(value, capsys):
    assert main(["train", "--epochs", "1", f"--low-rank={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 3
    assert err[0] == f"lowbit train: error: argument --low-rank: {_EXPECTED}, not {value!r}"


def test_cli_low_rank_with_share_is_refused(capsys):
    assert main(["train", "--epochs", "1", "--low-rank", "4", "--share", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "lowbit train: error: --low-rank cannot be combined with --share or --prune"
