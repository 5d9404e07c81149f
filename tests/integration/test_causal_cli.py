"""``induction-nnsight ablate`` and ``patch`` on a tiny model: files written, bad input refused."""

import json

import numpy as np
import pytest

from induction_nnsight.app.cli import main
from tests.cli_args import tiny_cli


def tiny(tiny_dir, command, out, *extra):
    return tiny_cli(command, tiny_dir("llama"), out, *extra)


def test_ablate_writes_charts_and_results(tiny_dir, tmp_path, capsys):
    assert (
        main(
            tiny(
                tiny_dir, "ablate", tmp_path, "--top-k", "2", "--draws", "3", "--method", "mean", "--heads", "L1H2,L0H0"
            )
        )
        == 0
    )
    assert {p.name for p in tmp_path.iterdir()} == {
        "ablation_heads.json",
        "ablation_curve.json",
        "ablation_results.json",
        "ablation_attribution.json",
    }
    results = json.loads((tmp_path / "ablation_results.json").read_text())
    assert len(results["sweep"]["delta"]) == 2 and len(results["sweep"]["rows"]) == 8
    assert len(results["curve"]["random"]) == 3 and results["curve"]["ks"] == [1, 2]
    assert results["ablated"]["heads"] == [[1, 2], [0, 0]]
    change = results["ablated"]["repeated_half_loss_change"]
    assert change["ci_low"] - 1e-6 <= change["value"] <= change["ci_high"] + 1e-6
    # recomputed from the two saved tables (each rounded to 6 decimals, hence the tolerance)
    estimate = np.array(results["attribution"]["estimate"], dtype=float).ravel()
    delta = np.array(results["sweep"]["delta"], dtype=float).ravel()
    assert estimate.shape == delta.shape == (2 * 4,)
    assert results["attribution"]["pearson_with_sweep"] == pytest.approx(np.corrcoef(estimate, delta)[0, 1], abs=1e-4)
    heat = json.loads((tmp_path / "ablation_heads.json").read_text())
    assert heat["data"][0]["type"] == "heatmap"
    assert heat["layout"]["title"]["text"] == (
        f"Change in repeated-half loss when one head is ablated — {tiny_dir('llama')}"
        "<br><sup>2 x 2 x 6 repeated random tokens in [1, 128), seed 0, "
        "mean (64 rows) ablation</sup>"
    )
    # every head's change carries its interval over rows, which contains it; the summary marks zero
    for row in results["sweep"]["rows"]:
        assert row["ci_low"] - 1e-6 <= row["delta"] <= row["ci_high"] + 1e-6
        # corrected over the sweep: flagged where q <= 0.05, which implies the interval excludes 0
        assert row["distinguishable_from_zero"] == (row["q"] <= 0.05)
        assert not row["distinguishable_from_zero"] or row["ci_low"] > 0 or row["ci_high"] < 0
    assert results["settings"]["reference_rows"] == 64 and results["settings"]["interval"].startswith("t interval")
    assert results["settings"]["correction"].startswith("Benjamini-Hochberg")
    assert "95% CI" in heat["data"][0]["text"][0][0]
    # the chart holds the unrounded table, the results file the 6-decimal one
    assert np.allclose(heat["data"][0]["z"], results["sweep"]["delta"], rtol=0, atol=5e-7 + 1e-9)
    assert "random heads" in capsys.readouterr().out


def test_patch_writes_charts_and_results(tiny_dir, tmp_path, capsys):
    assert main(tiny(tiny_dir, "patch", tmp_path, "--pair", "repeated", "--positions", "0,7,12")) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {
        "patching_heads.json",
        "patching_residual.json",
        "patching_qkv.json",
        "patching_attribution.json",
        "patching_results.json",
    }
    results = json.loads((tmp_path / "patching_results.json").read_text())
    assert len(results["residual"]["recovery"]) == 2 and len(results["residual"]["recovery"][0]) == 3
    assert results["qkv"]["columns"] == ["0", "7", "12", "all"]
    assert results["qkv"]["head"] == results["heads"]["best"]
    # each recovery carries its interval over the rows (tiny's 2 rows): a grid of the same shape, low <= high
    for site in ("heads", "residual", "qkv"):
        grid = results[site]
        lows, highs = sum(grid["recovery_ci_low"], []), sum(grid["recovery_ci_high"], [])
        assert len(lows) == len(highs) == len(sum(grid["recovery"], []))
        assert all(lo <= hi for lo, hi in zip(lows, highs) if lo is not None and hi is not None)
    assert (
        results["settings"]["rows"] == 2
        and "95%" in json.loads((tmp_path / "patching_heads.json").read_text())["data"][0]["text"][0][0]
    )
    assert "best head to patch" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command, extra, fix",
    [
        ("patch", ["--sites", "qkv"], "--head"),
        ("patch", ["--sites", "mlp"], "--sites"),
        ("ablate", ["--heads", "head6"], "L18H6"),
        ("ablate", ["--heads", "L9H0"], "outside"),
        ("ablate", ["--top-k", "7"], "--top-k"),
        ("ablate", ["--keep-bos", "--no-bos"], "--keep-bos"),
        ("patch", ["--seeds", "2"], "--pair repeated"),
    ],
)
def test_bad_input_one_line_exit_2_no_files(tiny_dir, tmp_path, capsys, command, extra, fix):
    out = tmp_path / "out"
    assert main(tiny(tiny_dir, command, out, *extra)) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and fix in errors[0] and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
