"""The numbers of docs/causal.md's "Causal validation": each ablation method on SmolLM2, with intervals.

    python scripts/causal_methods.py            # writes results/causal_methods.json (a few minutes on 2 cores)
    python scripts/causal_methods.py --half-widths  # results/causal_half_widths.json, from the committed charts

For each method (zero, with and without ``keep_bos``; mean over 64 reference rows; resample over 3
draws): the repeated-half loss change when L1H3, L1H4 and L1H5 are each ablated alone (the rows of
``ablate``'s default, 8 x 30 tokens), and the path-patching edge L16H0 -> L18H6 on the ``k``
path and in total, with and without ``freeze_norm`` (the rows of ``circuit``'s default, 4 x 20
tokens). Then the ``patch`` command on repeated pairs (8 rows), whose recoveries carry intervals
(the default text pair is one row: no interval). Every value with its 95% interval over rows
(:mod:`induction_nnsight.causal.intervals`) and the seconds it took.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from induction_nnsight import load_model  # noqa: E402
from induction_nnsight.app.ablate_job import AblateConfig  # noqa: E402
from induction_nnsight.app.causal_options import ablation_for, pooled_tokens  # noqa: E402
from induction_nnsight.app.circuit_job import CircuitConfig  # noqa: E402
from induction_nnsight.app.outputs import rounded, to_json  # noqa: E402
from induction_nnsight.app.patch_job import PatchConfig, run_patch  # noqa: E402
from induction_nnsight.causal.ablation.sweep import _ablation_rows, repeated_half_metric  # noqa: E402
from induction_nnsight.causal.intervals import INTERVAL_METHOD, effect_interval  # noqa: E402
from induction_nnsight.causal.paths.patching import PathVariant, path_patching  # noqa: E402
from induction_nnsight.models.loading import DEFAULT_MODEL  # noqa: E402
from induction_nnsight.names import head_name  # noqa: E402
from induction_nnsight.ndif.execution import Execution  # noqa: E402
from induction_nnsight.stats import ALPHA  # noqa: E402

OUT = ROOT / "results" / "causal_methods.json"
SOURCE, TARGET = (16, 0), (18, 6)
LAYERS = [16, 17, 18]
LAYER1 = [(1, 3), (1, 4), (1, 5)]
VARIANTS = [("zero", False), ("zero", True), ("mean", False), ("resample", False)]  # keep_bos: zero only (cost)


def _value(value, low, high) -> dict:
    return {"value": rounded(value), "ci_low": rounded(low), "ci_high": rounded(high)}


def layer1(model, run) -> dict:
    """The layer-1 heads whose zero ablation hurts most (L1H3, L1H4, L1H5), each ablated alone, under every method."""
    config = AblateConfig(model=DEFAULT_MODEL)
    tokens = pooled_tokens(model, config)
    metric = repeated_half_metric(config.seq_len, config.bos)
    sets = [[]] + [[h] for h in LAYER1]
    out = {"batch": config.batch, "seq_len": config.seq_len, "seed": config.seed, "methods": {}}
    for method, keep in VARIANTS:
        started = time.perf_counter()
        ablation = ablation_for(model, replace(config, method=method, keep_bos=keep), tokens)
        rows = _ablation_rows(model, tokens, sets, metric, ablation, run)  # [sets, rows]
        delta, low, high = effect_interval(rows[1:], rows[0])
        heads = {head_name(h): _value(delta[i], low[i], high[i]) for i, h in enumerate(LAYER1)}
        name = method + (" keep_bos" if keep else "")
        out["methods"][name] = {
            "baseline": rounded(rows[0].mean()),
            "delta": heads,
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(name, {k: v["value"] for k, v in heads.items()}, file=sys.stderr, flush=True)
    return out


def edge(model, run) -> dict:
    """L16H0 -> L18H6 on the k path and in total, under every method, with and without freeze_norm."""
    config = CircuitConfig(model=DEFAULT_MODEL)
    tokens = pooled_tokens(model, config)
    variants = [PathVariant(None, None, None), PathVariant(SOURCE, TARGET, "k"), PathVariant(SOURCE, TARGET, "total")]
    out = {"batch": config.batch, "seq_len": config.seq_len, "seed": config.seed, "methods": {}}
    for method, keep in VARIANTS:
        for freeze in (False, True):
            started = time.perf_counter()
            ablation = ablation_for(model, replace(config, method=method, keep_bos=keep), tokens, freeze_norm=freeze)
            result = path_patching(model, tokens, config.seq_len, variants, ablation=ablation, execution=run)
            clean = result.clean_score_rows[TARGET]
            score, s_low, s_high = effect_interval(result.score_rows[1:], clean)
            loss, l_low, l_high = effect_interval(result.loss_rows[1:], result.loss_rows[0])
            name = method + (" keep_bos" if keep else "") + (" freeze_norm" if freeze else "")
            out["methods"][name] = {
                path: {
                    "score_effect": _value(score[i], s_low[i], s_high[i]),
                    "loss_effect": _value(loss[i], l_low[i], l_high[i]),
                }
                for i, path in enumerate(("k", "total"))
            }
            out["methods"][name]["clean_score"] = rounded(result.clean_scores[TARGET])
            out["methods"][name]["seconds"] = round(time.perf_counter() - started, 1)
            print(name, out["methods"][name]["k"], file=sys.stderr, flush=True)
    return out


def patching(model) -> dict:
    """``patch --pair repeated --sites heads --layers 16,17,18`` (8 rows): the best head's recovery and the
    intervals' widths (three layers: the whole grid costs 10x more on 2 busy cores)."""
    started = time.perf_counter()
    config = PatchConfig(model=DEFAULT_MODEL, pair="repeated", sites=["heads"], layers=LAYERS)
    results, _ = run_patch(config, model, progress=False)
    grid = results["heads"]
    layer, head = grid["best"]
    widths = sorted(
        (hi - lo) / 2
        for lo_row, hi_row in zip(grid["recovery_ci_low"], grid["recovery_ci_high"])
        for lo, hi in zip(lo_row, hi_row)
        if lo is not None and hi is not None
    )
    return {
        "batch": results["settings"]["batch"],
        "seq_len": results["settings"]["seq_len"],
        "layers": LAYERS,
        "best": head_name(layer, head),
        "best_recovery": _value(
            grid["recovery"][layer][head], grid["recovery_ci_low"][layer][head], grid["recovery_ci_high"][layer][head]
        ),
        "median_half_width": rounded(widths[len(widths) // 2]),
        "max_half_width": rounded(widths[-1]),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _spread(pairs) -> dict:
    """Median and largest half-width of ``(low, high)`` pairs (nulls skipped), and how many."""
    widths = sorted((hi - lo) / 2 for lo, hi in pairs if lo is not None and hi is not None)
    if not widths:
        return {"n": 0, "median": None, "max": None}
    return {"n": len(widths), "median": rounded(widths[len(widths) // 2]), "max": rounded(widths[-1])}


def half_widths() -> dict:
    """The half-widths the committed default runs reach (charts/ablation_results.json, charts/circuit_results.json)."""
    import json

    ablation = json.loads((ROOT / "charts" / "ablation_results.json").read_text())
    circuit = json.loads((ROOT / "charts" / "circuit_results.json").read_text())
    sweep, vs = ablation["sweep"], ablation["top_vs_random"]
    edges = circuit["edges"]
    main_edge = next(e for e in edges if (e["source"], e["target"], e["path"]) == ("L16H0", "L18H6", "k"))
    return {
        "ablation": {
            "rows": ablation["settings"]["rows"],
            "sweep_seconds": sweep["seconds"],
            "sweep_delta": _spread((r["ci_low"], r["ci_high"]) for r in sweep["rows"]),
            "top5_half_width": rounded((vs["top_ci"][1] - vs["top_ci"][0]) / 2),
            "distinguishable_from_zero": sum(r["distinguishable_from_zero"] for r in sweep["rows"]),  # after BH
            "interval_excludes_zero": sum(r["ci_low"] > 0 or r["ci_high"] < 0 for r in sweep["rows"]),
            "heads": len(sweep["rows"]),
        },
        "circuit": {
            "rows": circuit["settings"]["rows"],
            "seconds": circuit["seconds"],
            "edges": len(edges),
            "score_effect": _spread((e["ci_low"], e["ci_high"]) for e in edges if e["path"] != "v"),
            "loss_effect": _spread((e["loss_ci_low"], e["loss_ci_high"]) for e in edges),
            "L16H0_L18H6_k_score_half_width": rounded((main_edge["ci_high"] - main_edge["ci_low"]) / 2),
            "L16H0_L18H6_k_loss_half_width": rounded((main_edge["loss_ci_high"] - main_edge["loss_ci_low"]) / 2),
            # of the edges path-patched exactly: flagged after Benjamini-Hochberg over all of them, and raw
            "score_effects_tested": sum(e["q"] is not None for e in edges),
            "score_effects_distinguishable": sum(e["q"] is not None and e["q"] <= ALPHA for e in edges),
            "loss_effects_tested": sum(e["loss_q"] is not None for e in edges),
            "loss_effects_distinguishable": sum(e["loss_q"] is not None and e["loss_q"] <= ALPHA for e in edges),
            "loss_intervals_excluding_zero": sum(
                e["loss_ci_low"] is not None and (e["loss_ci_low"] > 0 or e["loss_ci_high"] < 0) for e in edges
            ),
            "L16H0_L18H6_k_loss_q": main_edge["loss_q"],
        },
    }


def main() -> int:
    if "--half-widths" in sys.argv[1:]:
        path = ROOT / "results" / "causal_half_widths.json"
        path.write_text(to_json(half_widths()) + "\n")
        print(f"wrote {path}", file=sys.stderr)
        return 0
    model = load_model(DEFAULT_MODEL)
    run = Execution(progress=False)
    results = {
        "model": DEFAULT_MODEL,
        "interval": INTERVAL_METHOD,
        "reference_rows": AblateConfig().reference_rows,
        "resample_draws": AblateConfig().resample_draws,
        "layer1_heads": layer1(model, run),
        "edge_L16H0_L18H6": edge(model, run),
        "patching_repeated": patching(model),
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(to_json(results) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
