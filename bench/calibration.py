"""Do the 95% intervals cover 95%? Coverage of the tool's intervals on SmolLM2, at each command's default rows.

    python bench/calibration.py            # writes bench/calibration.json (several minutes on 2 cores)
    python bench/calibration.py --draws 50 # a quicker, coarser look

For a fixed set of effects, a large pool of rows is drawn once, with the command's own token recipe
(its seed, length and token range) but many more rows: the first 512 rows give the effect's
reference value (their mean), the next ``draws x batch`` rows are ``draws`` independent samples of
the command's default size. Each sample's interval is computed by the routine every command uses
(:func:`induction_nnsight.causal.intervals.effect_interval`, Student's t on the row mean) and the
bench records the fraction that contain the reference value. A calibrated 95% interval covers
0.95; with 200 draws the binomial standard error of that fraction is 0.015. docs/calibration.md
quotes the file.

Effects (each the command's default metric and method):

- ``ablate`` (zero ablation, repeated-half loss, 8 rows of 30 tokens): L16H0 and L1H4, the two
  strongest heads of the committed sweep, and two weak ones, the heads at the 25th and 50th percentile
  of ``|delta|`` in ``charts/ablation_results.json``;
- ``circuit`` (path patching, 4 rows of 20 tokens): L16H0 -> L18H6 on the k path and in total, and
  L17H8 -> L18H6 on the k path, each as a change of the induction score and of the loss;
- ``heads`` (10 rows of 50 tokens): L18H6's induction score.

The reference value has its own noise (a standard error about ``sqrt(n / 512)`` of a sample's),
which lowers coverage slightly: with 8 rows by about 0.003. Rows not drawn by the tool's public
commands are built with the same helpers the commands use.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from induction_nnsight import load_model  # noqa: E402
from induction_nnsight.app.ablate_job import AblateConfig  # noqa: E402
from induction_nnsight.app.causal_options import ablation_for, pooled_tokens  # noqa: E402
from induction_nnsight.app.circuit_job import CircuitConfig  # noqa: E402
from induction_nnsight.app.heads_job import HeadsConfig  # noqa: E402
from induction_nnsight.app.jobs import scan_tokens  # noqa: E402
from induction_nnsight.causal.ablation.sweep import _ablation_rows, repeated_half_metric  # noqa: E402
from induction_nnsight.causal.intervals import effect_interval  # noqa: E402
from induction_nnsight.causal.paths.patching import PathVariant, path_patching  # noqa: E402
from induction_nnsight.models.loading import DEFAULT_MODEL  # noqa: E402
from induction_nnsight.names import head_name  # noqa: E402
from induction_nnsight.ndif.execution import Execution  # noqa: E402
from induction_nnsight.probes.tokens import repeated_tokens_probe  # noqa: E402
from induction_nnsight.scores.heads import head_scores  # noqa: E402
from induction_nnsight.stats import INTERVAL_METHOD  # noqa: E402
from induction_nnsight.strict_json import rounded, to_json  # noqa: E402

OUT = ROOT / "bench" / "calibration.json"
REFERENCE_ROWS = 512
CHUNK = 128  # rows per call: a pool of 2,000 rows in one trace would hold every row's attention at once
TARGET = (18, 6)
EDGES = [((16, 0), "k"), ((16, 0), "total"), ((17, 8), "k")]


def _chunked(measure, tokens: torch.Tensor, desc: str) -> list:
    """``measure(rows)`` over ``CHUNK`` rows at a time, with a progress line per chunk."""
    out = []
    for start in range(0, tokens.shape[0], CHUNK):
        print(f"  {desc}: rows {start}..{min(start + CHUNK, tokens.shape[0])} of {tokens.shape[0]}", file=sys.stderr)
        out.append(measure(tokens[start : start + CHUNK]))
    return out


def _coverage(rows: torch.Tensor, baseline: torch.Tensor | None, batch: int, draws: int) -> list[dict]:
    """Each variant's reference effect on the first 512 rows and the coverage of ``draws`` samples of ``batch``.

    Args:
        rows: ``[n_variants, pool]`` per-row values.
        baseline: ``[pool]`` the unedited rows (None: ``rows`` are the values themselves).
    """
    base = torch.zeros(rows.shape[1]) if baseline is None else baseline
    reference, _, _ = effect_interval(rows[:, :REFERENCE_ROWS], base[:REFERENCE_ROWS])
    covered = torch.zeros(rows.shape[0])
    widths = []
    for d in range(draws):
        part = slice(REFERENCE_ROWS + d * batch, REFERENCE_ROWS + (d + 1) * batch)
        _, low, high = effect_interval(rows[:, part], base[part])
        covered += ((low <= reference) & (reference <= high)).float()
        widths.append((high - low) / 2)
    widths = torch.stack(widths).median(0).values
    return [
        {
            "reference": rounded(reference[i]),
            "coverage": rounded(covered[i] / draws),
            "median_half_width": rounded(widths[i]),
        }
        for i in range(rows.shape[0])
    ]


def ablation(model, draws: int, run: Execution) -> dict:
    """The ablate command's zero ablation of L16H0, L1H4 and two weak heads, on the repeated-half loss."""
    committed = json.loads((ROOT / "charts" / "ablation_results.json").read_text())
    ranked = sorted((abs(r["delta"]), r["layer"], r["head"]) for r in committed["sweep"]["rows"])
    weak = [ranked[len(ranked) * q // 4][1:] for q in (1, 2)]
    heads = [(16, 0), (1, 4), *weak]
    config = AblateConfig(model=DEFAULT_MODEL)
    pool = replace(config, batch=REFERENCE_ROWS + draws * config.batch)
    tokens = pooled_tokens(model, pool)
    metric = repeated_half_metric(config.seq_len, config.bos)
    started = time.perf_counter()
    ablated = ablation_for(model, config, tokens)
    sets = [[]] + [[h] for h in heads]
    rows = torch.cat(
        _chunked(lambda part: _ablation_rows(model, part, sets, metric, ablated, run), tokens, "ablate"), dim=1
    )  # [sets, pool]
    found = _coverage(rows[1:], rows[0], config.batch, draws)
    return {
        "command": "ablate",
        "batch": config.batch,
        "seq_len": config.seq_len,
        "seconds": round(time.perf_counter() - started, 1),
        "effects": {f"ablate {head_name(h)} (loss change, nats)": f for h, f in zip(heads, found)},
    }


def circuit(model, draws: int, run: Execution) -> dict:
    """The circuit command's path patching of three edges into L18H6: score and loss effects."""
    config = CircuitConfig(model=DEFAULT_MODEL)
    pool = replace(config, batch=REFERENCE_ROWS + draws * config.batch)
    tokens = pooled_tokens(model, pool)
    variants = [PathVariant(None, None, None)] + [PathVariant(s, TARGET, p) for s, p in EDGES]
    started = time.perf_counter()
    ablated = ablation_for(model, config, tokens)
    parts = _chunked(
        lambda part: path_patching(model, part, config.seq_len, variants, ablation=ablated, execution=run),
        tokens,
        "circuit",
    )
    score_rows = torch.cat([p.score_rows for p in parts], dim=1)  # [variants, pool]
    clean = torch.cat([p.clean_score_rows[TARGET] for p in parts])  # [pool]
    loss_rows = torch.cat([p.loss_rows for p in parts], dim=1)
    scores = _coverage(score_rows[1:], clean, config.batch, draws)
    losses = _coverage(loss_rows[1:], loss_rows[0], config.batch, draws)
    effects = {}
    for (source, path), score, loss in zip(EDGES, scores, losses):
        edge = f"{head_name(source)} -> {head_name(TARGET)} {path}"
        effects[f"{edge} (induction score change)"] = score
        effects[f"{edge} (loss change, nats)"] = loss
    return {
        "command": "circuit",
        "batch": config.batch,
        "seq_len": config.seq_len,
        "seconds": round(time.perf_counter() - started, 1),
        "effects": effects,
    }


def heads(model, draws: int, run: Execution) -> dict:
    """The heads command's induction score of L18H6 (10 rows of 50 tokens)."""
    config = HeadsConfig(model=DEFAULT_MODEL)
    pool = replace(config, batch=REFERENCE_ROWS + draws * config.batch)
    tokens = scan_tokens(model, pool, n_repeats=config.n_repeats)
    started = time.perf_counter()

    def measure(part):
        rows = repeated_tokens_probe(part, config.seq_len, bos=config.bos)
        scores = head_scores(model, rows, kinds=("induction",), execution=run).per_row["induction"]
        return scores[:, TARGET[0], TARGET[1]]  # [rows]

    per_row = torch.cat(_chunked(measure, tokens, "heads"))  # [pool]
    found = _coverage(per_row[None], None, config.batch, draws)
    return {
        "command": "heads",
        "batch": config.batch,
        "seq_len": config.seq_len,
        "seconds": round(time.perf_counter() - started, 1),
        "effects": {"L18H6 induction score": found[0]},
    }


COMMANDS = {"circuit": "circuit", "ablation": "ablate", "heads": "heads"}


def _write(out: Path, sections: list[dict], draws: int) -> None:
    coverages = [f["coverage"] for s in sections for f in s["effects"].values()]
    results = {
        "model": DEFAULT_MODEL,
        "interval": INTERVAL_METHOD,
        "level": 0.95,
        "draws": draws,
        "reference_rows": REFERENCE_ROWS,
        "sections": {s["command"]: s for s in sections},
        "coverage_min": min(coverages),
        "coverage_max": max(coverages),
        "threads": torch.get_num_threads(),
    }
    out.write_text(to_json(results) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200, help="samples of the default rows per effect")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=["circuit", "ablation", "heads"],
        help="run only these, keeping the others already in --out",
    )
    args = parser.parse_args(argv)
    model = load_model(DEFAULT_MODEL)
    run = Execution(progress=False)
    kept = {}
    if args.sections and args.out.exists():
        kept = json.loads(args.out.read_text())["sections"]
    chosen = [m for m in (circuit, ablation, heads) if not args.sections or m.__name__ in args.sections]
    sections = [s for name, s in kept.items() if name not in {COMMANDS[m.__name__] for m in chosen}]
    for measure in chosen:  # the fewest default rows first: the circuit's 4
        print(f"calibration: {measure.__name__} ...", file=sys.stderr, flush=True)
        sections.append(measure(model, args.draws, run))
        for name, found in sections[-1]["effects"].items():
            print(f"  {name}: coverage {found['coverage']:.3f}", file=sys.stderr, flush=True)
        _write(args.out, sections, args.draws)  # after each section: a long run leaves what it finished
    coverages = [f["coverage"] for s in sections for f in s["effects"].values()]
    print(f"wrote {args.out}: coverage {min(coverages):.3f} to {max(coverages):.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
