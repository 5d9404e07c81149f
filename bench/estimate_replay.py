"""How the circuit's default ``--verify-fraction`` was chosen: the verification rule replayed offline.

    python bench/estimate_replay.py edges    # -> bench/estimate_edges.json (SmolLM2; about 12 minutes)
    python bench/estimate_replay.py replay   # -> bench/estimate_replay.json (no model, seconds)

``edges`` stores, on the rows of seeds 0 and 1 and the default five targets, every edge's estimate
(``--search estimate`` with nothing verified), its exact effect (every edge path-patched exactly), and
which ``total`` runs ``--verify-largest`` picks. ``replay`` runs the search's own verification
(:func:`~induction_nnsight.causal.paths.search._verify`) on those numbers, its exact runs answered from the
table instead of the model, for each fraction and with and without the largest removals, and prices each
with the search's own arithmetic. The replay of the default settings on seed 0 is set beside the real run
of ``charts/estimate_circuit.json`` (the same verified edges must give the same cost and recall).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from estimate import CHARTS, ROOT, _recall, lowest_recall

from induction_nnsight.causal.cost import runs_cost
from induction_nnsight.causal.paths.search import Verification, _verify
from induction_nnsight.causal.paths.traces import Run
from induction_nnsight.names import parse_heads
from induction_nnsight.scores.ranking import RANK_DECIMALS

EDGES = ROOT / "bench" / "estimate_edges.json"
OUT = ROOT / "bench" / "estimate_replay.json"
SEEDS = (0, 1)
"""The rows the fraction was chosen on; ``charts/estimate_circuit.json`` has two more, first run after."""
FRACTIONS = (None, 1.0, 0.9, 0.75, 0.6, 0.5, 0.4, 0.3)
TARGETS = "L17H3,L17H4,L17H5,L18H6,L18H7"
FIELDS = ("effect", "loss_effect")


def _head(name: str) -> tuple[int, int]:
    return parse_heads(name, "head")[0]


def edges() -> dict:
    """Per seed: ``[source, target, path, estimated effect, estimated loss effect, exact effect, exact loss
    effect]`` per edge, the sources whose ``total`` runs ``--verify-largest`` picks, the cost of the estimates
    alone and of every edge exact, and the rows' shape."""
    from induction_nnsight import load_model
    from induction_nnsight.app.circuit_job import CircuitConfig, run_circuit

    model = load_model()
    out: dict = {"targets": TARGETS.split(","), "seeds": {}}
    for seed in SEEDS:
        found = {}
        for name, settings in (
            ("estimate", {"search": "estimate", "verify": 0, "verify_largest": 0}),
            ("largest", {"search": "estimate", "verify": 0, "verify_largest": CircuitConfig.verify}),
            ("exact", {"search": "exhaustive", "exact_losses": None}),
        ):
            config = CircuitConfig(composition=False, seed=seed, targets=TARGETS, **settings)
            found[name], _ = run_circuit(config, model=model, progress=False)
            print(seed, name, found[name]["cost"]["forward_equivalents"], flush=True)
        exact = {(e["source"], e["target"], e["path"]): e for e in found["exact"]["edges"]}
        rows = [
            [e["source"], e["target"], e["path"], *(e[f] for f in FIELDS), *(exact[key][f] for f in FIELDS)]
            for e in found["estimate"]["edges"]
            for key in [(e["source"], e["target"], e["path"])]
        ]
        largest = sorted({e["source"] for e in found["largest"]["edges"] if e["verified"] and e["path"] == "total"})
        out["seeds"][str(seed)] = {
            "edges": rows,
            "largest": largest,
            "estimate_cost": found["estimate"]["cost"]["forward_equivalents"],
            "exact_cost": found["exact"]["cost"]["forward_equivalents"],
            "rows": [config.batch, 1 + 2 * config.seq_len],
        }
    return out


def replay_one(seed: dict, n_layers: int, rule: Verification, largest: bool) -> dict:
    """The search's verification on one seed's table: its top-10 recall and its cost, in forward equivalents and
    as a fraction of every edge exact."""
    runs: dict[Run, int] = {}
    groups: dict[tuple, list] = {}
    answer: dict[int, list] = {}  # run index -> [(target, exact effect, exact loss effect)]
    for source, target, path, est, est_loss, effect, loss in seed["edges"]:
        s, t = _head(source), _head(target)
        i = runs.setdefault(Run(s, path, None if path == "total" else t), len(runs))
        key = -round(est_loss, RANK_DECIMALS) if path == "v" else round(est, RANK_DECIMALS)
        groups.setdefault((t, path), []).append((key, s, i))
        answer.setdefault(i, []).append((t, effect, loss))
    groups = {g: sorted(m) for g, m in groups.items()}
    n_heads = 1 + max(h for t, _ in groups for h in [t[1]])

    def run(indices):  # exact runs answered from the table: scores as changes from a clean score of 0
        scores, losses = torch.zeros(len(indices), n_layers, 1, n_heads), torch.zeros(len(indices), 1)
        for j, i in enumerate(indices):
            for t, effect, loss in answer[i]:
                scores[j, t[0], 0, t[1]] = effect
                losses[j, 0] = loss  # a run's loss is one number, whatever the target
        return scores, losses

    targets = {t for t, _ in groups}
    clean = SimpleNamespace(scores={layer: torch.zeros(n_heads) for layer, _ in targets}, loss=0.0)
    extra = {runs[Run(_head(s), "total", None)] for s in seed["largest"]} if largest else set()
    exact, _, _ = _verify(groups, rule, clean, run, extra)
    order = list(runs)
    spent = seed["estimate_cost"] + runs_cost([order[i] for i in exact], n_layers, tuple(seed["rows"])).forward_passes
    verified = set(exact)
    est_edges, exact_edges = [], []
    for source, target, path, est, est_loss, effect, loss in seed["edges"]:
        i = runs[Run(_head(source), path, None if path == "total" else _head(target))]
        common = {"source": source, "target": target, "path": path}
        est_edges.append({**common, "effect": est, "loss_effect": est_loss, "verified": i in verified})
        exact_edges.append({**common, "effect": effect, "loss_effect": loss})
    recall = _recall(exact_edges, est_edges)[0]
    return {
        "recall_top10": recall,
        "lowest_recall": lowest_recall(recall),
        "forward_equivalents": round(spent, 2),
        "cost_fraction_of_exhaustive_all_exact": round(spent / seed["exact_cost"], 3),
    }


def replay() -> dict:
    table = json.loads(EDGES.read_text())
    out: dict = {"seeds": {}}
    for seed, found in table["seeds"].items():
        rows = out["seeds"].setdefault(seed, [])
        for largest in (True, False):
            for fraction in FRACTIONS:
                rule = Verification(10, fraction, None if largest else 0)
                result = replay_one(found, 30, rule, largest)
                label = "none" if fraction is None else f"f{round(100 * fraction)}"  # a quotable name: no dot
                rows.append({"label": label, "verify_fraction": fraction, "verify_largest": largest, **result})
                print(seed, fraction, largest, result["lowest_recall"], result["cost_fraction_of_exhaustive_all_exact"])
    real = json.loads((CHARTS / "estimate_circuit.json").read_text())
    default = next(r for r in out["seeds"]["0"] if r["verify_fraction"] == 0.75 and r["verify_largest"])
    out["check"] = {
        "real_forward_equivalents": real["estimate"]["cost"]["forward_equivalents"],
        "replayed_forward_equivalents": default["forward_equivalents"],
        "real_recall_equals_replayed": real["recall_top10"] == default["recall_top10"],
    }
    return out


def main() -> None:
    part = sys.argv[1] if len(sys.argv) > 1 else "replay"
    if part == "edges":
        EDGES.write_text(json.dumps(edges(), allow_nan=False) + "\n")
    elif part == "replay":
        OUT.write_text(json.dumps(replay(), indent=1, allow_nan=False) + "\n")
    else:
        raise SystemExit("usage: python bench/estimate_replay.py edges|replay")


if __name__ == "__main__":
    main()
