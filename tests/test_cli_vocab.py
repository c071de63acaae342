"""One vocabulary and shared options on the ``lowbit`` command line (issue 18).

Quantization schemes are the IR's data type names (case-insensitive) for ``train`` and ``quantize``
alike, old spellings read with a warning; the options several sub-commands share (board, budget,
output, JSON, data set, verbosity) are one definition with one help text, and every option of
every sub-command says what it is and its default.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import onnx
import pytest
from onnx_models import float_cnn

from lowbit.cli import main
from lowbit.cli._args import board, fraction, output_dir, output_file
from lowbit.cli._options import BUDGET_HELP, VERBOSE_HELP
from lowbit.cli._vocab import Scheme, parse_scheme, ptq_spelling, train_spelling
from lowbit.cli.app import build_parser
from lowbit.ir.graph import IntegerGraph
from lowbit.quant.onnx.importer import graphs_equal

# --------------------------------------------------------------------------------------------
# the vocabulary


NEW = [  # (text, role, canonical name, the training loop's / PTQ's spelling)
    ("BIPOLAR", "train-weights", "BIPOLAR", "binary"),
    ("ternary", "train-weights", "TERNARY", "ternary"),
    ("INT2", "train-weights", "INT2", "int:2"),
    ("pow2_4", "train-weights", "POW2_4", "log2:4"),
    ("Float", "train-weights", "FLOAT", "float"),
    ("inq:3", "train-weights", "inq:3", "inq:3"),
    ("TTQ", "train-weights", "ttq", "ttq"),
    ("UINT2", "train-acts", "UINT2", "int:2"),
    ("bipolar", "train-acts", "BIPOLAR", "binary"),
    ("int4", "quantize-weights", "INT4", "int4"),
    ("POW2_3", "quantize-weights", "POW2_3", "pow2_3"),
    ("uint3", "quantize-acts", "UINT3", "uint3"),
    ("INT4", "quantize-acts", "INT4", "int4"),
]


@pytest.mark.parametrize("text, role, name, spelling", NEW)
def test_new_spellings_read_without_warning(text, role, name, spelling, caplog):
    with caplog.at_level(logging.WARNING):
        s = parse_scheme(text, "--weights", role)
    assert s.name == name
    assert (train_spelling(s) if role.startswith("train") else ptq_spelling(s)) == spelling
    assert caplog.records == []


OLD = [  # the other command's (or the old) spelling -> the scheme it meant
    ("binary", "train-weights", Scheme("BIPOLAR")),
    ("int:2", "train-weights", Scheme("INT", 2)),
    ("log2:4", "train-weights", Scheme("POW2_", 4)),
    ("int:2", "train-acts", Scheme("UINT", 2)),  # train's int:k activations were unsigned
    ("binary", "quantize-weights", Scheme("BIPOLAR")),
    ("int:4", "quantize-weights", Scheme("INT", 4)),
    ("log2:3", "quantize-weights", Scheme("POW2_", 3)),
    ("int:3", "quantize-acts", Scheme("UINT", 3)),
]


@pytest.mark.parametrize("text, role, scheme", OLD)
def test_old_spellings_read_with_a_warning_naming_the_new_one(text, role, scheme, caplog):
    with caplog.at_level(logging.WARNING):
        assert parse_scheme(text, "--acts", role) == scheme
    assert [r.getMessage() for r in caplog.records] == [
        f"--acts {text}: old spelling, accepted for one release; write {scheme.name}"
    ]


@pytest.mark.parametrize(
    "text, role, words",
    [
        ("INT2", "train-acts", ["--acts 'INT2'", "unsigned: UINT2"]),
        ("FLOAT", "quantize-weights", ["--acts 'FLOAT'", "BIPOLAR, TERNARY, INT<2..16>"]),
        ("INT1", "quantize-weights", ["--acts 'INT1'", "INT takes a bit width in 2..16"]),
        ("POW2_7", "train-weights", ["POW2 takes a bit width in 2..6"]),
        ("int:1", "train-acts", ["UINT takes a bit width in 2..8"]),
        ("bc:2", "train-weights", ["bc takes no bit width"]),
        ("int", "quantize-acts", ["expected BIPOLAR, UINT<1..16>, INT<2..16>"]),
        ("sign", "train-weights", ["training rule: bc, ttq"]),
    ],
)
def test_unknown_schemes_are_refused_naming_the_flag(text, role, words):
    from lowbit import LowbitError

    with pytest.raises(LowbitError) as e:
        parse_scheme(text, "--acts", role)
    for w in words:
        assert w in str(e.value)


def _train(tmp_path, name, weights, acts):
    rep = tmp_path / f"{name}.json"
    argv = ["train", "--arch", "mlp:8", "--epochs", "1", "--first-bits", "none"]
    argv += ["--last-bits", "none", "--weights", weights, "--acts", acts, "--json", str(rep)]
    assert main(argv) == 0
    return json.loads(rep.read_text())


def test_train_takes_the_new_and_the_old_spelling(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        new = _train(tmp_path, "new", "INT2", "UINT2")
    assert caplog.records == []
    with caplog.at_level(logging.WARNING):
        old = _train(tmp_path, "old", "int:2", "int:2")
    assert [r.getMessage() for r in caplog.records] == [
        "--weights int:2: old spelling, accepted for one release; write INT2",
        "--acts int:2: old spelling, accepted for one release; write UINT2",
    ]
    assert new["weights"] == old["weights"] == ["int:2", "int:2"] and new["acts"] == "int:2"
    assert new["accuracy"] == old["accuracy"]  # same seed, same scheme: the same network
    # quantize's spelling (lower case) is the same vocabulary
    assert _train(tmp_path, "lower", "int2", "uint2")["accuracy"] == new["accuracy"]


def test_train_refuses_signed_activations_in_two_lines(tmp_path, capsys):
    assert main(["train", "--acts", "INT2", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--acts 'INT2'" in err[0] and "UINT2" in err[0]


def test_quantize_takes_the_new_and_the_train_spelling(tmp_path, caplog):
    rng = np.random.default_rng(0)
    src, calib = tmp_path / "float.onnx", tmp_path / "calib.npz"
    onnx.save(float_cnn(rng), str(src))
    np.savez(calib, x=rng.normal(0, 1, (8, 3, 8, 8)).astype(np.float32))
    graphs = {}
    for name, w, a in [
        ("new", "INT4", "UINT3"),
        ("lower", "int4", "uint3"),
        ("old", "int:4", "int:3"),
    ]:
        out = tmp_path / f"{name}.npz"
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            argv = ["quantize", str(src), "--weights", w, "--acts", a]
            assert main(argv + ["--calib", str(calib), "-o", str(out)]) == 0
        warned = [r.getMessage() for r in caplog.records]
        if name == "old":
            assert warned == [
                "--weights int:4: old spelling, accepted for one release; write INT4",
                "--acts int:3: old spelling, accepted for one release; write UINT3",
            ]
        else:
            assert warned == []
        graphs[name] = IntegerGraph.load(out)
    assert "INT4" in {n.weight_dtype.name for n in graphs["new"].matmuls}
    assert graphs_equal(graphs["lower"], graphs["new"]) and graphs_equal(
        graphs["old"], graphs["new"]
    )


# --------------------------------------------------------------------------------------------
# shared options


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(parser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]


def test_every_option_of_every_command_has_help_stating_its_default():
    missing, no_default = [], []
    for name, parser in _subparsers().items():
        text = parser.format_help()
        for a in _options(parser):
            flag = f"{name} {a.option_strings[-1]}"
            if not a.help:
                missing.append(flag)
                continue
            shows_default = "default" in (a.help % {"default": a.default, "prog": name})
            if not (a.required or a.nargs == 0 or shows_default):
                no_default.append(flag)
        assert "-v, --verbose" in text, name
    assert missing == []
    assert no_default == []


@pytest.mark.parametrize("argv", [["-v", "boards"], ["boards", "-v"], ["boards", "--verbose"]])
def test_verbose_before_or_after_the_command(argv):
    assert build_parser().parse_args(argv).verbose is True


def test_not_verbose_unless_asked():
    assert build_parser().parse_args(["boards"]).verbose is False


@pytest.mark.parametrize(
    "argv, level", [(["boards", "-v"], logging.INFO), (["boards"], logging.WARNING)]
)
def test_verbose_after_the_command_sets_the_log_level(argv, level, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: seen.append(kw["level"]))
    assert main(argv) == 0
    assert seen == [level]


def test_shared_options_mean_the_same_everywhere():
    seen: dict[str, list[str]] = {"--board": [], "--budget": [], "-o": [], "--json": []}
    for name, parser in _subparsers().items():
        for a in _options(parser):
            s = a.option_strings
            if "--board" in s:
                seen["--board"].append(name)
                assert a.type is board and a.help.startswith("FPGA board, as 'lowbit boards'"), name
            if "--budget" in s:
                seen["--budget"].append(name)
                assert a.type is fraction and a.help.startswith(BUDGET_HELP), name
            if "-o" in s or "--output" in s:
                seen["-o"].append(name)
                assert s == ["-o", "--output"], name
                assert a.type in (output_file, output_dir), name
                kind = "file" if a.type is output_file else "directory"
                assert a.help.startswith(f"output {kind}: "), name
            if "--json" in s:
                seen["--json"].append(name)
                if name in ("map", "boards"):  # the documented exception: a flag, JSON on stdout
                    assert a.nargs == 0 and "JSON on stdout" in a.help, name
                else:
                    assert a.type is output_file and a.metavar == "PATH", name
                    assert a.help.startswith("also write "), name
            if "-v" in s:
                assert s == ["-v", "--verbose"] and a.help == VERBOSE_HELP, name
    assert seen == {
        "--board": ["demo", "compile", "map", "build", "flash", "sparse-bench", "zoo"],
        "--budget": ["demo", "compile", "map", "build"],
        "-o": [
            "demo",
            "compile",
            "map",
            "build",
            "train",
            "import",
            "export",
            "quantize",
            "zoo",
            "sweep",
            "run",
        ],
        "--json": [
            "demo",
            "sim",
            "map",
            "boards",
            "train",
            "import",
            "eval",
            "trace",
            "sparse-bench",
            "asic",
            "run",
        ],
    }


def test_renamed_flags_stay_as_hidden_aliases(tmp_path):
    p = build_parser()
    assert p.parse_args(["demo", "--out", str(tmp_path / "d")]).output == str(tmp_path / "d")
    assert p.parse_args(["demo", "-o", str(tmp_path / "e")]).output == str(tmp_path / "e")
    assert p.parse_args(["demo"]).output == "demo_out"
    assert p.parse_args(["map", "m.npz", "--act-data", "digits"]).dataset == "digits"
    assert p.parse_args(["map", "m.npz", "--dataset", "mnist5k"]).dataset == "mnist5k"
    assert p.parse_args(["map", "m.npz"]).dataset is None
    helps = {name: q.format_help() for name, q in _subparsers().items()}
    assert "--out " not in helps["demo"] and "--act-data" not in helps["map"]


@pytest.mark.parametrize("spelling, acts, name", [
    ("int:8", False, "INT8"), ("int:2", True, "UINT2"), ("binary", False, "BIPOLAR"),
    ("binary", True, "BIPOLAR"), ("ternary", False, "TERNARY"), ("log2:4", False, "POW2_4"),
    ("float", True, "FLOAT"), ("inq:4", False, "inq:4"), ("dorefa:3", False, "dorefa:3"),
])
def test_train_prints_the_one_spelling(spelling, acts, name):
    """What train prints uses the names it takes (it printed 'weights int:8/int:8, acts binary')."""
    from lowbit.cli._vocab import parse_scheme, scheme_name, train_spelling

    assert scheme_name(spelling, acts=acts) == name
    if spelling not in ("inq:4", "dorefa:3"):
        role = "train-acts" if acts else "train-weights"
        assert train_spelling(parse_scheme(name, "--x", role)) == spelling  # the inverse


def test_progress_bar_writes_lines_when_not_a_terminal(capsys):
    from lowbit.cli._progress import Bar

    bar = Bar("training", 3)
    for e in (1, 2, 3):
        bar(e, 3, loss=0.5)
    err = capsys.readouterr().err
    assert "\r" not in err and err.strip().splitlines()[-1].startswith("  training: 100%")
    assert "3/3" in err and "loss 0.500" in err
