"""Knowledge distillation (issue 20): the loss and its gradient against hand-worked values and
finite differences, the configuration's checks, alpha = 0 as plain training bit for bit, the
distilled student's exact export, and ``lowbit train --distill`` end to end."""

import dataclasses
import json
import math

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.cli import main
from lowbit.ir import IntegerGraph
from lowbit.quant.data import Dataset, load_digits_split
from lowbit.quant.export import to_integer_graph
from lowbit.quant.train.loop import ZooConfig, teacher_config, train_teacher, train_zoo
from lowbit.quant.train.nn import distillation_loss, softmax_cross_entropy


@pytest.fixture(scope="module")
def digits():
    d = load_digits_split()
    return Dataset(d.x_train[:300], d.y_train[:300], d.x_test, d.y_test, d.input_dtype, d.image_shape)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- the loss ---------------------------------------------------------------------------------------


def test_distillation_loss_hand_worked():
    # T = 2: the teacher's [0, 2 ln 3] softens to [1/4, 3/4], the student's [0, 0] to [1/2, 1/2]
    s, t = np.array([[0.0, 0.0]]), np.array([[0.0, 2 * math.log(3)]])
    loss, grad = distillation_loss(s, np.array([0]), t, 2.0, 1.0)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert loss == pytest.approx(4 * kl, rel=1e-12)  # T^2 * KL
    assert grad == pytest.approx(np.array([[0.5, -0.5]]), rel=1e-12)  # alpha T (ps - pt) / N
    # alpha = 1/2: half the cross-entropy (ln 2, gradient [-1/2, 1/2]) plus half the soft term
    loss, grad = distillation_loss(s, np.array([0]), t, 2.0, 0.5)
    assert loss == pytest.approx(0.5 * math.log(2) + 0.5 * 4 * kl, rel=1e-12)
    assert grad == pytest.approx(np.array([[0.0, 0.0]]), abs=1e-15)


@pytest.mark.parametrize("temperature,alpha", [(1.0, 1.0), (4.0, 1.0), (2.5, 0.3), (0.5, 0.8)])
def test_distillation_gradient_by_finite_differences(temperature, alpha):
    rng = np.random.default_rng(7)
    n, k = 3, 4
    s, t, y = rng.normal(0, 2, (n, k)), rng.normal(0, 3, (n, k)), rng.integers(0, k, n)
    _, grad = distillation_loss(s, y, t, temperature, alpha)
    h = 1e-6
    numeric = np.zeros_like(s)
    for i in range(n):
        for j in range(k):
            d = np.zeros_like(s)
            d[i, j] = h
            up = distillation_loss(s + d, y, t, temperature, alpha)[0]
            down = distillation_loss(s - d, y, t, temperature, alpha)[0]
            numeric[i, j] = (up - down) / (2 * h)
    assert grad == pytest.approx(numeric, abs=1e-8)
    # the soft term's share is alpha * T * (softmax(s / T) - softmax(t / T)) / N, by hand
    _, dce = softmax_cross_entropy(s, y)
    soft = alpha * temperature * (_softmax(s / temperature) - _softmax(t / temperature)) / n
    assert grad == pytest.approx((1 - alpha) * dce + soft, abs=1e-14)


def test_alpha_zero_is_cross_entropy_exactly():
    rng = np.random.default_rng(1)
    s, t, y = rng.normal(0, 2, (5, 3)), rng.normal(0, 2, (5, 3)), rng.integers(0, 3, 5)
    assert distillation_loss(s, y, t, 3.0, 0.0)[0] == softmax_cross_entropy(s, y)[0]
    assert distillation_loss(s, y, t, 3.0, 0.0)[1].tobytes() == softmax_cross_entropy(s, y)[1].tobytes()


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field,value,message", [
    ("distill_temperature", 0, r"^distill_temperature must be a positive number, not 0$"),
    ("distill_temperature", -1.5, r"^distill_temperature must be a positive number, not -1\.5$"),
    ("distill_temperature", math.inf, r"^distill_temperature must be a positive number, not inf$"),
    ("distill_temperature", "4", r"^distill_temperature must be a positive number, not '4'$"),
    ("distill_alpha", 1.5, r"^distill_alpha must be a number in \[0, 1\], not 1\.5$"),
    ("distill_alpha", -0.1, r"^distill_alpha must be a number in \[0, 1\], not -0\.1$"),
    ("distill_alpha", math.nan, r"^distill_alpha must be a number in \[0, 1\], not nan$"),
    ("distill_alpha", True, r"^distill_alpha must be a number in \[0, 1\], not True$"),
])
def test_config_refuses_bad_distillation_settings(field, value, message):
    with pytest.raises(ValueError, match=message):
        ZooConfig(**{field: value})


def test_teacher_logits_of_the_wrong_shape_are_refused(digits):
    cfg = ZooConfig(arch="mlp:8", epochs=1)
    with pytest.raises(LowbitError, match=r"^teacher_logits must be a numeric array of shape "
                                          r"\(training samples, classes\) = \(300, 10\), not float64 \(299, 10\)$"):
        train_zoo(digits, cfg, teacher_logits=np.zeros((299, 10)))
    with pytest.raises(LowbitError, match=r"^teacher_logits must be finite"):
        train_zoo(digits, cfg, teacher_logits=np.full((300, 10), np.nan))


# -- training ---------------------------------------------------------------------------------------


def _params_bytes(net):
    return {k: v.tobytes() for k, v in net.params.items()} | {
        k: v.tobytes() for k, v in net.state.items() if isinstance(v, np.ndarray)}


def test_alpha_zero_trains_bit_identically_to_no_teacher(digits):
    cfg = ZooConfig(arch="mlp:16,12", weights="ternary", acts="int:2", epochs=2, distill_alpha=0.0, seed=3)
    teacher = np.random.default_rng(0).normal(0, 5, (300, 10))
    plain = train_zoo(digits, cfg)
    distilled = train_zoo(digits, cfg, teacher_logits=teacher)
    assert _params_bytes(plain) == _params_bytes(distilled)
    # and alpha > 0 does change the weights
    other = train_zoo(digits, dataclasses.replace(cfg, distill_alpha=0.5), teacher_logits=teacher)
    assert _params_bytes(other) != _params_bytes(plain)


def test_the_student_follows_the_teacher(digits):
    """A teacher sure that every digit d is d + 1, distilled alone (alpha = 1): the student learns
    the teacher's labels, not the true ones (the sign and the use of the soft term)."""
    shifted = (digits.y_train + 1) % 10
    teacher = 10.0 * np.eye(10)[shifted]
    cfg = ZooConfig(arch="mlp:16", epochs=3, lr=1e-2, distill_alpha=1.0, distill_temperature=1.0)
    pred = train_zoo(digits, cfg, teacher_logits=teacher).predict(digits.x_train)
    assert np.mean(pred == shifted) > 0.5 and np.mean(pred == digits.y_train) < 0.1


@pytest.mark.parametrize("weights,acts", [("binary", "binary"), ("ternary", "int:2")])
def test_distilled_student_exports_exactly(digits, weights, acts):
    cfg = ZooConfig(arch="mlp:24,16", weights=weights, acts=acts, epochs=2, distill_alpha=0.7)
    teacher, logits = train_teacher(digits, cfg)
    assert [s.name for s in teacher.weight_specs] == ["float"] * 3 and teacher.acts.name == "float"
    assert logits.shape == (300, 10) and not teacher.exportable
    assert teacher_config(cfg).arch == cfg.arch and teacher_config(cfg).seed == cfg.seed
    net = train_zoo(digits, cfg, teacher_logits=logits)
    graph = to_integer_graph(net)
    assert np.array_equal(graph.scores(digits.x_test), net.exact_forward(digits.x_test))
    assert np.array_equal(graph.predict(digits.x_test), net.predict(digits.x_test))


# -- lowbit train --distill -------------------------------------------------------------------------


def test_cli_distill_end_to_end(tmp_path, capsys):
    rep, out = tmp_path / "r.json", tmp_path / "m.npz"
    argv = ["train", "--arch", "mlp:16", "--epochs", "1", "--weights", "TERNARY", "--acts", "UINT2",
            "--distill", "4:0.7", "--json", str(rep), "-o", str(out)]
    assert main(argv) == 0
    r = json.loads(rep.read_text())
    d = r["distill"]
    assert d["temperature"] == 4.0 and d["alpha"] == 0.7 and 0 < d["teacher_accuracy"] <= 1
    assert d["teacher"] == "FLOAT weights and acts, mlp:16"
    stdout = capsys.readouterr().out
    assert f"teacher (FLOAT weights and acts, mlp:16): test accuracy {d['teacher_accuracy']:.4f}" in stdout
    assert "distilling at T 4, alpha 0.7" in stdout
    assert r["integer_graph_disagreements"] == 0
    data = load_digits_split()
    assert r["accuracy"] == float(np.mean(IntegerGraph.load(out).predict(data.x_test) == data.y_test))
    # without --distill: no teacher in the report
    assert main(argv[:-6] + ["--json", str(rep)]) == 0
    assert "distill" not in json.loads(rep.read_text())


@pytest.mark.parametrize("value", ["4", "0:0.5", "-1:0.5", "4:1.5", "4:-0.1", "inf:0.5", "4:nan", "a:b", "4:0.5:1"])
def test_cli_distill_refusals_name_the_flag(value, capsys):
    assert main(["train", "--epochs", "1", f"--distill={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 3
    assert err[0] == ("lowbit train: error: argument --distill: expected T:ALPHA, a temperature T > 0 and "
                      f"a weight ALPHA in [0, 1] (e.g. 4:0.7), not {value!r}")
