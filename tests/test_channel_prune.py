"""Channel (filter) pruning by L1 norm and by APoZ with fine-tuning (issue 20): the scores, the
shrunk network, its exact export, and ``lowbit train --prune-channels``'s refusals."""

import json

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.cli import main
from lowbit.ir.datatypes import DataType
from lowbit.quant.data import Dataset, load_digits_split
from lowbit.quant.export import to_integer_graph
from lowbit.quant.prune import prune_filters
from lowbit.quant.train.loop import ZooConfig, apoz, prune_channels, train_zoo
from lowbit.quant.train.net import ActSpec, WeightSpec, init_net, parse_arch


@pytest.fixture(scope="module")
def digits():
    d = load_digits_split()
    return Dataset(
        d.x_train[:300], d.y_train[:300], d.x_test, d.y_test, d.input_dtype, d.image_shape
    )


def _net(acts="int:2"):
    layers = parse_arch("mlp:3", 2)
    return init_net(
        layers,
        WeightSpec.parse("ternary"),
        ActSpec.parse(acts),
        DataType.uint(4),
        (2,),
        np.random.default_rng(0),
    )


def test_apoz_hand_worked():
    net = _net()  # UINT2 activations: levels round(3 z) clipped to 0..3, value = level / 3
    net.params["W0"] = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    net.params["beta0"] = np.array([-1.0, 1.0, 0.0])  # channel 0 always 0, channel 1 always 3
    x = np.stack([np.zeros(16, int), np.arange(16)], axis=1)  # feature 1 = 0..15: values k / 15
    # channel 2: z = k / 15 (ternary weight 1 at scale 1), level 0 iff 3 k / 15 < 1/2: k = 0, 1, 2
    np.testing.assert_array_equal(apoz(net, x, 0), [1.0, 0.0, 3 / 16])
    # APoZ ranks channel 0 first out; L1 norms (0, 0, 1) rank channels 0 and 1 out together
    pruned = prune_filters(net, 0, 2, scores=-apoz(net, x, 0))
    np.testing.assert_array_equal(pruned.params["beta0"], [1.0, 0.0])
    assert pruned.params["W1"].shape == (2, 2) and pruned.layers[0].out == 2
    np.testing.assert_array_equal(prune_filters(net, 0, 1).params["W0"], [[0.0, 1.0]])


def test_apoz_refuses_binary_activations():
    with pytest.raises(LowbitError, match="^APoZ needs UINT .* not BIPOLAR: no zeros$"):
        apoz(_net("binary"), np.zeros((2, 2), int), 0)


def test_prune_filters_checks_scores():
    with pytest.raises(
        ValueError, match=r"^scores must have one entry per channel \(3\), not shape \(2,\)$"
    ):
        prune_filters(_net(), 0, 2, scores=[1.0, 2.0])


@pytest.mark.parametrize(
    "arch, by", [("mlp:32,32", "l1"), ("mlp:32,32", "apoz"), ("cnv-small", "apoz")]
)
def test_channel_pruned_network_is_smaller_and_exports_exactly(digits, arch, by):
    base = ZooConfig(arch=arch, weights="ternary", acts="int:2", epochs=1, batch_size=32)
    net0 = train_zoo(digits, base)
    net = train_zoo(
        digits,
        ZooConfig(
            **{
                **base.__dict__,
                "prune_channels": 0.5,
                "prune_channels_by": by,
                "finetune_epochs": 1,
            }
        ),
    )
    assert [L.out for L in net.layers] == [L.out // 2 for L in net0.layers[:-1]] + [10]
    g0, g = to_integer_graph(net0), to_integer_graph(net)
    assert sum(n.weights.size for n in g.matmuls) < sum(n.weights.size for n in g0.matmuls)
    x = np.concatenate([digits.x_test, digits.x_train])
    assert (g.predict(x) == net.predict(x)).all()


def test_prune_channels_keeps_at_least_one(digits):
    net = train_zoo(digits, ZooConfig(arch="mlp:2", weights="ternary", acts="int:2", epochs=1))
    assert prune_channels(net, 0.9, "l1", digits.x_train).layers[0].out == 1


def test_cli_prune_channels_end_to_end(tmp_path):
    rep = tmp_path / "r.json"
    assert (
        main(
            [
                "train",
                "--arch",
                "mlp:16",
                "--epochs",
                "1",
                "--weights",
                "TERNARY",
                "--acts",
                "UINT2",
                "--prune-channels",
                "0.25:apoz",
                "--finetune-epochs",
                "1",
                "--json",
                str(rep),
            ]
        )
        == 0
    )
    r = json.loads(rep.read_text())
    assert r["prune_channels"] == {"fraction": 0.25, "by": "apoz"}
    assert [L["out"] for L in r["layers"]] == [12, 10] and r["integer_graph_disagreements"] == 0


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "nan", "x", "0.5:l2", "0.5:apoz:1"])
def test_cli_prune_channels_refusals_name_the_flag(value, capsys):
    assert main(["train", "--epochs", "1", f"--prune-channels={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 3
    assert err[0] == (
        "lowbit train: error: argument --prune-channels: expected FRACTION[:l1|apoz], "
        f"a fraction in (0, 1) of each hidden layer's channels (e.g. 0.5:apoz), not {value!r}"
    )


def test_cli_apoz_with_binary_activations_is_refused(capsys):
    assert main(["train", "--epochs", "1", "--prune-channels", "0.5:apoz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lowbit train: error: APoZ channel pruning needs UINT (or float ReLU) activations, "
        "not BIPOLAR: no zeros to count"
    ]


def test_cli_low_rank_and_prune_channels_together_are_refused(capsys):
    assert main(["train", "--epochs", "1", "--prune-channels", "0.5", "--low-rank", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lowbit train: error: --low-rank and --prune-channels cannot be combined: choose one"
    ]
