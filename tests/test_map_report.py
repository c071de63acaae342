"""`lowbit map` reports and `lowbit compile --schedule` feasibility, in process (fast)."""

import json

import pytest
from mapping_models import digits_mlp, mlp

from lowbit import LowbitError
from lowbit.boards import BOARDS, get_board
from lowbit.cli import main
from lowbit.mapping import LayerFolding, Schedule, search_folding
from lowbit.mapping.report import COLUMNS, format_markdown, format_text


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_mlp().save(tmp_path_factory.mktemp("m") / "digits.npz")


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_digits_mlp_maps_on_every_board(board):
    graph = digits_mlp()
    # the PS boards keep 30 % for the DMA and interconnect; the iCE40's 30 EBRs need the whole device
    budget = 1.0 if board == "icebreaker" else 0.7
    schedule = search_folding(graph, board, budget=budget)
    report = schedule.report(graph)
    assert report["board"] == board
    for kind, figure in report["resources"].items():
        assert figure["used"] <= budget * figure["available"], kind


def test_map_prints_table_and_writes_markdown_and_plots(digits, tmp_path, capsys):
    md, plots, out = tmp_path / "r.md", tmp_path / "plots", tmp_path / "s.json"
    assert main(["map", str(digits), "--board", "pynq-z2", "--budget", "0.8", "-o", str(out),
                 "--markdown", str(md), "--plots", str(plots)]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0].split()
    assert header[:6] == ["layer", "MWxMH", "engine", "PE", "SIMD", "cycles"]
    assert any(line.startswith("fc1 ") and "256x256" in line for line in text.splitlines())
    assert "bottleneck" in text and "utilisation" in text
    doc = md.read_text()
    assert "| " + " | ".join(COLUMNS) + " |" in doc
    assert "| bram36 |" in doc
    for name in ("cycles.png", "resources.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Schedule.load(out).board == "pynq-z2"


def test_map_with_a_target_fps_takes_the_cheapest(digits, capsys):
    assert main(["map", str(digits), "--board", "pynq-z2", "--target-fps", "10000", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["throughput_fps"] >= 10_000
    fastest = search_folding(digits_mlp(), "pynq-z2").report(digits_mlp())
    assert report["resources"]["lut"]["used"] < fastest["resources"]["lut"]["used"]


def test_report_functions_agree_with_the_report():
    graph = digits_mlp()
    report = search_folding(graph, "zybo-z7-10").report(graph)
    text, md = format_text(report), format_markdown(report)
    for layer in report["layers"]:
        assert layer["name"] in text and layer["name"] in md
    shares = [layer["share_of_bottleneck"] for layer in report["layers"]]
    assert max(shares) <= 1.0
    assert report["bottleneck"] in text


def test_network_too_big_for_any_folding_is_refused(tmp_path, capsys):
    # four layers of 4 Mbit or more: the three spare AXI-HP ports of an xc7z010 can stream three of them
    # from DDR, the fourth does not fit its 60 BRAM36
    big = mlp((1024, 4096, 4096, 4096, 4096, 10)).save(tmp_path / "big.npz")
    assert main(["map", str(big), "--board", "zybo-z7-10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lowbit map: error: the graph does not fit zybo-z7-10 within a budget of 0.7 (also with "
                          "weights streamed from DDR): even the cheapest folding needs ")
    assert "bram36" in err


def _unfold_everything(graph, board="zybo-z7-10"):
    return Schedule(board, 100, tuple(LayerFolding(n.name, n.mh, n.mw) for n in graph.nodes))


def test_check_fits_names_layer_and_resource():
    graph = digits_mlp()
    with pytest.raises(LowbitError, match=r"^the schedule does not fit zybo-z7-10: it needs [\d.]+ lut, 17600 "
                                          r"available; layer 'fc0' \(PE=256, SIMD=64\) uses [\d.]+ lut by itself"):
        _unfold_everything(graph).check_fits(graph)
    search_folding(graph, "zybo-z7-10").check_fits(graph)  # a searched schedule fits


def test_compile_refuses_an_infeasible_schedule(tmp_path, capsys):
    graph = digits_mlp()
    model = graph.save(tmp_path / "m.npz")
    schedule = _unfold_everything(graph).save(tmp_path / "s.json")
    out = tmp_path / "build"
    assert main(["compile", str(model), "-o", str(out), "--schedule", str(schedule)]) == 2
    err = capsys.readouterr().err
    assert "layer 'fc0' (PE=256, SIMD=64)" in err and "lut" in err and "zybo-z7-10" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "s.json"]


def test_capacity_in_model_units_for_lut4_boards():
    assert get_board("icebreaker").capacity().lut == 3300


def test_map_reports_a_given_schedule_as_compile_would_use_it(digits, tmp_path, capsys):
    """map --schedule (issue 18): a hand-edited folding is reported, not searched again; the
    report is the one compile stores (energy and placement included)."""
    out = tmp_path / "s.json"
    assert main(["map", str(digits), "--budget", "0.3", "-o", str(out), "--json"]) == 0
    searched = json.loads(capsys.readouterr().out)
    doc = json.loads(out.read_text())
    doc["layers"][0]["pe"] = 1  # slower first layer
    doc["layers"][0]["simd"] = 1
    out.write_text(json.dumps(doc))
    assert main(["map", str(digits), "--schedule", str(out), "--json"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert given["cycles_per_image"] > searched["cycles_per_image"]
    assert given["layers"][0]["pe"] == 1 and given["layers"][0]["simd"] == 1
    assert {"energy", "placement", "input_dtype", "class_map"} <= set(given)
    assert main(["compile", str(digits), "--schedule", str(out), "-o", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    stored = json.loads((tmp_path / "c" / "report.json").read_text())["mapping"]
    # compile also records how it chose the pipeline depths (9069ffa, --clock): here, kept
    assert stored.pop("pipeline_depths") == "from the schedule"
    assert stored == given


@pytest.mark.parametrize("argv, message", [
    (["--board", "zedboard"], r"--board zedboard: the schedule .* was made for pynq-z2; leave --board out"),
    (["--target-fps", "100"], r"--target-fps chooses a folding; it does not apply with --schedule"),
    (["--budget", "0.001"], r"--budget|exceeds|LUT|lut"),
])
def test_map_schedule_refusals(digits, tmp_path, capsys, argv, message):
    import re

    out = tmp_path / "s.json"
    assert main(["map", str(digits), "--budget", "0.3", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["map", str(digits), "--schedule", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) <= 3, err


def test_map_says_where_the_published_schedule_is(tmp_path, capsys):
    model = tmp_path / "lfc.npz"
    assert main(["zoo", "lfc-w1a1", "-o", str(model), "--width", "0.25"]) == 0
    capsys.readouterr()
    assert main(["map", str(model), "--budget", "0.3"]) == 0
    published = tmp_path / "lfc.schedule.json"
    assert f"note: {published} holds the model's published folding" in capsys.readouterr().err
    assert main(["map", str(model), "--schedule", str(published)]) == 0
    assert "note:" not in capsys.readouterr().err
