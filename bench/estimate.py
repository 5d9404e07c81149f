"""Estimate, then verify, on SmolLM2: how close each head estimator comes to the exhaustive ablation
sweep, and how much of the exhaustive circuit the pruned one verifies, with the cost of each.

    python bench/estimate.py heads [zero,mean [ig8,plain,graddrop]]
        # -> charts/estimate_heads.json, charts/estimate_scatter_<estimator>.json
    python bench/estimate.py circuit   # -> charts/estimate_circuit.json (4 seeds' rows; about 40 minutes)
    python bench/estimate.py derived   # -> the verified grids in charts/estimate_heads.json (no model)
    python bench/estimate.py scale     # -> charts/estimate_scale.json (the cost arithmetic alone, no model)
    python bench/estimate.py table     # -> the "Estimate, then verify" section of bench/results.md (no model)

The zero-ablation sweep is read from ``charts/ablation_results.json`` when its settings are the
default ablate run's (it is that run's committed sweep); the mean-ablation sweep is run here.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from induction_nnsight import Execution, load_model, repeated_tokens
from induction_nnsight.app.ablate_job import AblateConfig
from induction_nnsight.app.circuit_job import CircuitConfig, run_circuit
from induction_nnsight.causal.ablation.estimators import Estimator, head_estimate
from induction_nnsight.causal.ablation.search import HeadSearch, compare, search_heads
from induction_nnsight.causal.ablation.sweep import ablation_sweep, repeated_half_metric
from induction_nnsight.causal.cost import scale_table, variants_cost
from induction_nnsight.figures.causal import attribution_scatter_figure
from induction_nnsight.names import head_name
from induction_nnsight.scores.ranking import RANK_DECIMALS

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ROOT / "charts"
ESTIMATORS = {"plain": Estimator("plain"), "ig8": Estimator("ig", 8), "graddrop": Estimator("graddrop")}
CHOSEN = tuple(ESTIMATORS)  # run in this order
VERIFY = 20
METHODS = ("zero", "mean")  # main() reads them from the command line
SHAPES = {"SmolLM2-135M": (30, 9), "Llama-3.1-70B": (80, 64), "Llama-3.1-405B": (126, 128)}


def _name(e: Estimator) -> str:
    return f"ig{e.steps}" if e.name == "ig" else e.name


def heads(model, quiet: Execution) -> dict:
    config = AblateConfig()
    bos = model.tokenizer.bos_token_id
    vocab = model.config.vocab_size
    tokens = repeated_tokens(
        config.batch,
        config.seq_len,
        seed=config.seed,
        low=config.low,
        high=config.high,
        bos_token_id=bos,
        vocab_size=vocab,
    )
    source = repeated_tokens(
        config.batch,
        config.seq_len,
        seed=config.seed + 1,
        low=config.low,
        high=config.high,
        bos_token_id=bos,
        vocab_size=vocab,
    )
    metric = repeated_half_metric(config.seq_len, True)
    committed = json.loads((CHARTS / "ablation_results.json").read_text())
    same = all(
        committed["settings"][k] == getattr(config, k) for k in ("batch", "seq_len", "seed", "low", "high", "method")
    )
    out = {"settings": {"batch": config.batch, "seq_len": config.seq_len, "seed": config.seed, "verify": VERIFY}}
    shape = tuple(tokens.shape)
    for method in METHODS:
        ref = source if method == "mean" else None
        started = time.perf_counter()
        if method == "zero" and same:
            delta, where = (
                torch.tensor(committed["sweep"]["delta"]),
                "charts/ablation_results.json (the default ablate run)",
            )
        else:
            delta, where = (
                ablation_sweep(model, tokens, metric, method=method, source=ref, execution=quiet).delta,
                "run here",
            )
        n_ref = 0 if ref is None else ref.shape[0]
        sweep = variants_cost(271, shape, n_ref, quiet)
        part = {
            "sweep_from": where,
            "sweep_delta": [[round(float(v), 6) for v in row] for row in delta],  # [layer][head], for `derived`
            "sweep_cost": sweep.as_dict(),
            "sweep_seconds": round(time.perf_counter() - started, 1),
            "estimators": {},
        }
        out[method] = part
        for name in CHOSEN:
            estimator = ESTIMATORS[name]
            started = time.perf_counter()
            found = head_estimate(model, tokens, metric, method, source=ref, estimator=estimator, execution=quiet)
            seconds = time.perf_counter() - started
            c = compare(found.estimate, delta, 10)
            part["estimators"][_name(estimator)] = {
                "pearson": round(c["pearson"], 3),
                "spearman": round(c["spearman"], 3),
                "recall_top10": c["recall_top"],
                "sign_agreement_top10": c["sign_agreement_top"],
                "wrong_sign_top10": c["wrong_sign"],
                "cost": found.cost.as_dict(),
                "cost_fraction_of_sweep": round(found.cost.forward_equivalents / sweep.forward_equivalents, 3),
                "seconds": round(seconds, 1),
                "estimate": found.estimate.tolist(),
            }
            # every method's scatter: estimate_scatter_<estimator>.json (zero), estimate_scatter_mean_<estimator>.json
            labels = [head_name(layer, h) for layer in range(delta.shape[0]) for h in range(delta.shape[1])]
            figure = attribution_scatter_figure(
                delta.flatten().tolist(),
                found.estimate.flatten().tolist(),
                labels,
                correlation=c["pearson"],
                title=f"Head estimate ({_name(estimator)}) vs exhaustive {method}-ablation sweep — smollm2-135m",
                subtitle=f"{config.batch} rows of {config.seq_len} repeated random tokens",
                axis_title="Δ repeated-half loss (nats)",
            )
            prefix = "estimate_scatter_" if method == "zero" else f"estimate_scatter_{method}_"
            (CHARTS / f"{prefix}{_name(estimator)}.json").write_text(figure.to_json())
            print(
                method,
                _name(estimator),
                {k: v for k, v in part["estimators"][_name(estimator)].items() if k != "estimate"},
                flush=True,
            )
        best = max(part["estimators"], key=lambda k: part["estimators"][k]["pearson"])
        chosen = ESTIMATORS[best]
        found = search_heads(
            model, tokens, metric, method, source=ref, search=HeadSearch(chosen, VERIFY), execution=quiet
        )
        order = torch.argsort(delta.abs().flatten(), descending=True)[:10].tolist()
        top = [(i // delta.shape[1], i % delta.shape[1]) for i in order]
        grid = torch.where(found.verified, found.delta, found.estimate.estimate)  # what the search reports
        g = compare(grid, delta, 10)
        part["search"] = {
            "estimator": best,
            "verify": VERIFY,
            "exact_top10_verified": sum(bool(found.verified[h]) for h in top),
            "grid": {
                "pearson": round(g["pearson"], 3),
                "spearman": round(g["spearman"], 3),
                "sign_agreement_top10": g["sign_agreement_top"],
                "wrong_sign_top10": g["wrong_sign"],
            },
            "cost": found.cost.as_dict(),
            "cost_fraction_of_sweep": round(found.cost.forward_equivalents / sweep.forward_equivalents, 3),
        }
        print(method, "search", part["search"], flush=True)
        _write("heads", out)
    out["scale"] = scale_table(SHAPES, config.batch, shape[1], steps=8)
    out["scale_note"] = (
        f"forward equivalents of the per-head sweep and of each estimator, {config.batch} rows of {shape[1]} tokens, "
        "from causal/cost.py"
    )
    return out


def derived(found: dict) -> dict:
    """For each estimator of each sweep: the grid ``--search estimate --verify VERIFY`` would report (exact where
    verified, the estimate elsewhere) against the exhaustive sweep, from the committed file."""
    from induction_nnsight.scores.ranking import rank_heads

    for method in METHODS:
        delta = torch.tensor(found[method]["sweep_delta"])
        for entry in found[method]["estimators"].values():
            estimate = torch.tensor(entry["estimate"])
            grid = estimate.clone()
            for head in rank_heads(estimate.abs(), VERIFY):
                grid[head] = delta[head]
            c = compare(grid, delta, 10)
            entry["verified_grid"] = {
                "verify": VERIFY,
                "pearson": round(c["pearson"], 3),
                "spearman": round(c["spearman"], 3),
                "recall_top10": c["recall_top"],
            }
    return found


RUNS = {  # name -> the circuit's settings beside the defaults
    "exhaustive": {"search": "exhaustive", "exact_losses": None},  # every edge exact: the reference
    "default": {"search": "exhaustive"},  # the default run (every score exact, the weak edges' losses estimated)
    "estimate": {"search": "estimate"},
    "estimate_one_round": {"search": "estimate", "verify_fraction": None},  # the --verify strongest alone
    "estimate_without_largest": {"search": "estimate", "verify_largest": 0},  # no sources verified by their size
}
ESTIMATES = [name for name in RUNS if name.startswith("estimate")]
TENTH = 0.1
"""``missed_over_tenth`` counts the missed top-10 edges at least this share of their target and path's strongest."""


def _recall(exact: list[dict], found: list[dict]) -> tuple[dict, dict, dict]:
    """Per target and path: how many of the 10 strongest ``exact`` edges (ranked as the search ranks, ties by
    layer and head) ``found`` verified; the ones it missed, with their exact and estimated effects; and how many
    of those are at least :data:`TENTH` of that target and path's strongest exact effect."""
    from induction_nnsight.names import parse_heads

    verified = {(e["source"], e["target"], e["path"]) for e in found if e["verified"]}
    estimated = {(e["source"], e["target"], e["path"]): e for e in found}
    recall, missed, large = {}, {}, {}
    for target in sorted({e["target"] for e in exact}):
        for path in ("k", "q", "v", "total"):
            edges = [e for e in exact if e["target"] == target and e["path"] == path]
            field = "loss_effect" if path == "v" else "effect"
            sign = -1 if path == "v" else 1  # v: the largest rise of the loss; else the largest drop of the score
            top = sorted(
                edges, key=lambda e: (round(sign * e[field], RANK_DECIMALS), parse_heads(e["source"], "source")[0])
            )[:10]
            name = f"{target} {path}"
            recall[name] = sum((e["source"], target, path) in verified for e in top)
            missed[name] = [
                {"source": e["source"], "exact": e[field], "estimate": estimated[(e["source"], target, path)][field]}
                for e in top
                if (e["source"], target, path) not in verified
            ]
            strongest = max((abs(e[field]) for e in edges), default=0.0)
            large[name] = sum(abs(m["exact"]) >= TENTH * strongest for m in missed[name])
    return recall, missed, large


def lowest_recall(recall: dict) -> dict:
    """``path -> the lowest top-10 recall over the targets`` of a ``recall_top10`` entry."""
    lowest: dict = {}
    for name, found in recall.items():
        path = name.split()[-1]
        lowest[path] = min(lowest.get(path, found), found)
    return lowest


def _largest_removals(model, targets: list[str], n: int = 16) -> list[dict]:
    """The ``n`` sources before the last target whose removal is the largest share of the residual stream, as
    ``--verify-largest`` ranks them (from the score-estimate pass, on the default circuit's rows)."""
    from induction_nnsight.app.causal_options import pooled_tokens
    from induction_nnsight.causal.ablation.method import Ablation
    from induction_nnsight.causal.paths.estimates import score_estimates
    from induction_nnsight.causal.paths.traces import Run, clean_trace, make_plan
    from induction_nnsight.names import parse_heads

    config = CircuitConfig()
    heads = parse_heads(",".join(targets), "targets")
    last = max(t[0] for t in heads)
    plan = make_plan(model, config.seq_len, config.bos, Execution(progress=False))
    tokens = pooled_tokens(model, config)
    runs = [Run((layer, h), "total", None) for layer in range(last) for h in range(plan.n_heads)]
    clean = clean_trace(model, plan, tokens, Ablation(), runs, {t[0] for t in heads})
    sizes = score_estimates(model, plan, tokens, clean, heads)[2]
    ranked = sorted(((round(float(sizes[r.source]), 4), r.source) for r in runs), key=lambda x: (-x[0], x[1]))
    return [{"source": head_name(*s), "rank": i + 1, "size": v} for i, (v, s) in enumerate(ranked[:n])]


def _circuit_runs(model, common: dict, names) -> tuple[dict, dict]:
    """The ``names`` of :data:`RUNS` with ``common`` settings: ``(summary per run, results per run)``, and per
    estimate run its top-10 recall, the edges it missed, and its cost against every edge exact (and against the
    default run where it ran)."""
    out, results = {}, {}
    for name in names:
        settings = RUNS[name]
        started = time.perf_counter()
        found, _ = run_circuit(CircuitConfig(composition=False, **common, **settings), model=model, progress=False)
        results[name] = found
        out[name] = {
            "seconds": round(time.perf_counter() - started, 1),
            "cost": found["cost"],
            "edges": len(found["edges"]),
        }
        print(name, common, out[name], flush=True)
    exact = results["exhaustive"]["edges"]
    for name in [n for n in ESTIMATES if n in results]:
        part, cost = out[name], results[name]["cost"]
        recall = _recall(exact, results[name]["edges"])  # missed: the unverified top 10
        part["recall_top10"], part["missed"], part["missed_over_tenth"] = recall
        part["lowest_recall"] = lowest_recall(part["recall_top10"])
        part["verified_edges"] = sum(e["verified"] for e in results[name]["edges"])
        part["cost_fraction_of_exhaustive_all_exact"] = round(
            cost["forward_equivalents"] / cost["exhaustive"]["forward_equivalents"], 3
        )
        if "default" in results:
            default = results["default"]["cost"]["forward_equivalents"]
            part["cost_fraction_of_default_run"] = round(cost["forward_equivalents"] / default, 3)
    return out, results


CHOSEN_ON = (0, 1)
"""The seeds whose rows the default ``--verify-fraction`` was chosen on (seed 1: ``seeds``), the same targets."""
CHECKED_ON = (2, 3)
"""Seeds of rows first seen after the choice: the check that it holds."""


def circuit(model) -> dict:
    runs, results = _circuit_runs(model, {}, RUNS)
    targets = sorted({e["target"] for e in results["exhaustive"]["edges"]})
    estimate = runs.pop("estimate")
    settings = ("verify", "verify_fraction", "verify_largest", "seed")
    out = {"settings": {k: getattr(CircuitConfig, k) for k in settings}, **runs}
    out["estimate"] = {k: estimate[k] for k in ("seconds", "cost", "edges")}
    out |= {k: v for k, v in estimate.items() if k not in out["estimate"]}  # the default search's figures, top level
    out["largest_removals"] = _largest_removals(model, targets)
    out["seeds"] = {"chosen_on": list(CHOSEN_ON), "checked_on": list(CHECKED_ON), "targets": targets}
    for seed in [s for s in CHOSEN_ON + CHECKED_ON if s != CircuitConfig.seed]:
        common = {"seed": seed, "targets": ",".join(targets)}
        out["seeds"][str(seed)], _ = _circuit_runs(model, common, ["exhaustive", "estimate", "estimate_one_round"])
    return out


SECTION = "## Estimate, then verify (issue 24)"


def _other_seeds(seeds: dict) -> str:
    """``seed N: k/total lowest recall at cost fraction`` for each other seed of ``charts/estimate_circuit.json``."""
    parts = []
    for seed in sorted(k for k in seeds if k.isdigit()):
        found = seeds[seed]["estimate"]
        low = found["lowest_recall"]
        parts.append(f"seed {seed} {low['k']}/{low['total']} at {found['cost_fraction_of_exhaustive_all_exact']}")
    return ", ".join(parts)


def results_section() -> str:
    """The section of ``bench/results.md`` with the pruned runs' costs against the exhaustive ones, from the
    committed ``charts/estimate_heads.json`` and ``charts/estimate_circuit.json``."""
    heads = json.loads((CHARTS / "estimate_heads.json").read_text())
    circuit = json.loads((CHARTS / "estimate_circuit.json").read_text())
    rows = []
    for method in METHODS:
        search, sweep = heads[method]["search"], heads[method]["sweep_cost"]["forward_equivalents"]
        rows.append(
            f"| ablation sweep, {method}, `--search estimate --verify {search['verify']}` ({search['estimator']} "
            f"estimate) | {search['verify']} heads + baseline | {search['cost']['forward_equivalents']:,} | {sweep:,} "
            f"| {search['cost_fraction_of_sweep']} | {search['exact_top10_verified']} of the exhaustive top 10 "
            f"verified; grid Pearson {search['grid']['pearson']} |"
        )
    est = circuit["estimate"]["cost"]
    recall = circuit["recall_top10"]
    totals = [v for k, v in sorted(recall.items()) if k.endswith(" total")]
    verify, fraction = circuit["settings"]["verify"], circuit["settings"]["verify_fraction"]
    rows.append(
        f"| circuit, default five targets, `--search estimate --verify {verify} --verify-fraction {fraction}` (and the "
        f"total runs of the {verify} largest removals) | {circuit['verified_edges']} edges "
        f"| {est['forward_equivalents']:,} | {est['exhaustive']['forward_equivalents']:,} "
        f"| {circuit['cost_fraction_of_exhaustive_all_exact']} "
        f"| top-10 recall 10 of 10 on k, q, v for "
        f"{sum(v == 10 for k, v in recall.items() if not k.endswith(' total'))} of "
        f"{sum(not k.endswith(' total') for k in recall)} target paths; total {', '.join(map(str, totals))} of 10; "
        f"on other seeds' rows (lowest over the targets, k / total, and cost): {_other_seeds(circuit['seeds'])} |"
    )
    return "\n".join(
        [
            SECTION,
            "",
            "Not part of `bench/run.py`'s output: written by `python bench/estimate.py table` from",
            "`charts/estimate_heads.json` and `charts/estimate_circuit.json` (`python bench/estimate.py heads",
            "zero,mean`, `derived` and `circuit` on SmolLM2, 2 shared CPU cores: times are not comparable, the pass",
            "counts are). Cost in forward equivalents (row passes, a backward pass = 2 forward).",
            "",
            "| job | what was run exactly | forward equivalents | exhaustive run | fraction | found |",
            "| --- | --- | ---: | ---: | ---: | --- |",
            *rows,
            "",
        ]
    )


def main() -> None:
    global METHODS, CHOSEN
    part = sys.argv[1]
    METHODS = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else METHODS
    CHOSEN = tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else CHOSEN
    if part == "scale":  # pure arithmetic: no model
        table = scale_table(SHAPES, AblateConfig.batch, 1 + 2 * AblateConfig.seq_len, steps=8)
        rows, n_pos = AblateConfig.batch, 1 + 2 * AblateConfig.seq_len
        note = f"forward equivalents (a backward pass = 2), {rows} rows of {n_pos} tokens, from causal/cost.py"
        (CHARTS / "estimate_scale.json").write_text(json.dumps({"note": note, "rows": table}, indent=1) + "\n")
        return
    if part == "table":  # from the committed files alone
        results = ROOT / "bench" / "results.md"
        text = results.read_text()
        head = text.split(SECTION)[0].rstrip()
        results.write_text(f"{head}\n\n{results_section()}")
        return
    if part == "derived":  # from the committed files alone: the verified grid of each estimator's search
        _write("heads", derived(json.loads((CHARTS / "estimate_heads.json").read_text())))
        return
    torch.manual_seed(0)
    model = load_model("smollm2-135m", progress=False)
    quiet = Execution(progress=False)
    found = heads(model, quiet) if part == "heads" else circuit(model)
    _write(part, found)


def _write(part: str, found: dict) -> None:
    """``charts/estimate_<part>.json``, merged into what is there (a run of some methods keeps the others')."""
    path = CHARTS / f"estimate_{part}.json"
    if part == "heads" and path.exists():
        found = {**json.loads(path.read_text()), **found}
    path.write_text(json.dumps(found, indent=1, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
