"""Causal validation on the real SmolLM2-135M-Instruct."""

import json

from induction_nnsight import Execution, repeated_tokens, scan
from induction_nnsight.app.cli import main
from induction_nnsight.app.report import top_heads
from induction_nnsight.causal.ablation.sweep import ablation_metrics, random_head_draws, repeated_half_metric

BATCH, SEQ_LEN, DRAWS = 4, 30, 5


def test_top5_induction_heads_matter_far_more_than_5_random_heads(smollm2):
    tokens = repeated_tokens(BATCH, SEQ_LEN, seed=0, bos_token_id=1, vocab_size=49152)
    top5 = [(h["layer"], h["head"]) for h in top_heads(scan(smollm2, tokens, SEQ_LEN).induction_scores, 5)]
    draws = random_head_draws(top5, 30, 9, DRAWS, seed=0)
    values = ablation_metrics(
        smollm2, tokens, [[], top5, *draws], repeated_half_metric(SEQ_LEN, True), execution=Execution(progress=False)
    )
    baseline, top, random = values[0], values[1], values[2:]
    rise_top, rise_random = top - baseline, random - baseline
    print(
        f"repeated-half loss: baseline {baseline:.3f}, top-5 ablated {top:.3f}, "
        f"5 random ablated {random.mean():.3f} +- {random.std():.3f} (min {random.min():.3f}, max {random.max():.3f})"
    )
    assert rise_top > 1.0  # nats
    assert rise_top > 5 * rise_random.mean().clamp(min=0.05)
    assert top > random.max() + 1.0


def test_cli_ablate_and_patch_write_their_files(tmp_path, capsys):
    assert (
        main(
            [
                "ablate",
                "--batch",
                "2",
                "--seq-len",
                "12",
                "--layers",
                "18",
                "--top-k",
                "3",
                "--draws",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "ablation_results.json").read_text())
    row = results["sweep"]["delta"][18]
    assert len(row) == 9 and all(v is not None for v in row) and results["sweep"]["delta"][0][0] is None
    assert results["top_vs_random"]["top"] > results["top_vs_random"]["random_mean"]
    # "The cat sat on the mat. The cat sat on the" -> " mat" vs " rug"; only position 6 differs.
    assert main(["patch", "--out", str(tmp_path), "--layers", "0,18,23,29"]) == 0
    results = json.loads((tmp_path / "patching_results.json").read_text())
    assert results["metric"] == "logit difference"
    assert results["heads"]["clean"] > 3 > -3 > results["heads"]["corrupted"]
    residual = results["residual"]["recovery"]
    assert abs(residual[0][6] - 1) < 0.01 and abs(residual[-1][-1] - 1) < 1e-3  # everything that differs
    assert max(abs(v) for v in residual[0][:6]) < 1e-6  # the same tokens: nothing to patch
    assert results["attribution"]["pearson_with_exhaustive"] > 0.8
    for name in (
        "ablation_heads.json",
        "ablation_curve.json",
        "patching_heads.json",
        "patching_residual.json",
        "patching_qkv.json",
        "patching_attribution.json",
    ):
        assert json.loads((tmp_path / name).read_text())["data"]
    assert "best head to patch" in capsys.readouterr().out
