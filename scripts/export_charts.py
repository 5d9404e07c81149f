"""Regenerate every chart in charts/ (the ones the docs embed) on the embedded default model.

    python scripts/export_charts.py            # rewrite charts/
    python scripts/export_charts.py --check    # recompute into a temporary dir, compare with charts/

Every producer runs on smollm2-135m with its default, fixed seeds, so the same
code gives the same numbers. ``--check`` compares the recomputed files with the
committed ones number by number (tolerating float noise) and exits 1 naming each
chart that drifted; regenerate with this script and commit charts/ to fix it.

To add a chart, add one line to PRODUCERS: a name and a function
``model -> {file name: JSON text}``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from induction_nnsight import DEFAULT_MODEL, load_model  # noqa: E402
from induction_nnsight.app.ablate_job import AblateConfig, run_ablate  # noqa: E402
from induction_nnsight.app.attention_job import AttentionConfig, run_attention  # noqa: E402
from induction_nnsight.app.circuit_job import CircuitConfig, run_circuit  # noqa: E402
from induction_nnsight.app.cli import guarded  # noqa: E402
from induction_nnsight.app.dual_route_job import DualRouteConfig, run_dual_route  # noqa: E402
from induction_nnsight.app.heads_job import HeadsConfig, run_heads  # noqa: E402
from induction_nnsight.app.icl_job import IclConfig, run_icl  # noqa: E402
from induction_nnsight.app.jobs import ScanConfig  # noqa: E402
from induction_nnsight.app.outputs import prepare_out_dir, write_files  # noqa: E402
from induction_nnsight.app.patch_job import PatchConfig, run_patch  # noqa: E402
from induction_nnsight.app.scan_job import run_scan  # noqa: E402
from induction_nnsight.names import head_name  # noqa: E402

CHARTS = ROOT / "charts"
RTOL = 1e-3
ATOL = 1e-3
# Wall-clock timings recorded beside the results (measurements of the machine, not of the code),
# and the id each run stamps on its files.
VOLATILE_KEYS = {"seconds", "run_id"}
# Keys that hold a ranked head's value in ranked lists ({"layer", "head", "score"} ...).
RANK_VALUES = ("score", "delta")
# charts/ files written by other commands: bench/run.py (timings, not reproducible numbers), the
# train + dynamics commands (docs/dynamics.md gives the steps) and bench/estimate.py (the estimators
# against the exhaustive runs, docs/estimate.md).
OTHER_PRODUCERS = ("bench_", "dynamics_", "estimate_", "explain")  # written by bench/ and other scripts

ATTENTION_PROMPT = "The quick brown fox jumps over the lazy dog."
# the committed dual-route charts' settings (recorded in charts/dual_route_results.json), smaller than the defaults
DUAL_ROUTE_CHARTS = DualRouteConfig(model=DEFAULT_MODEL, n_attention=64, n_copying=16, n_dissociation=16, max_k=16)


def icl_run(model) -> tuple[dict, dict[str, str]]:
    """The icl chart's run: ``run_icl`` with its defaults (the slow tier's e2e test reads it too)."""
    return run_icl(IclConfig(model=DEFAULT_MODEL), model, progress=False)


# name -> producer(model) -> {file name: JSON text}. One line per chart family.
PRODUCERS: dict[str, Callable[[object], dict[str, str]]] = {
    "scan": lambda model: run_scan(ScanConfig(model=DEFAULT_MODEL), model)[1],
    "heads": lambda model: run_heads(HeadsConfig(model=DEFAULT_MODEL), model)[1],
    "attention": lambda model: run_attention(
        AttentionConfig(model=DEFAULT_MODEL, layer=18, head=6, prompt=ATTENTION_PROMPT), model
    )[1],
    # the interactive view (docs/heads.md): the top induction head and the previous-token head feeding it
    "attention_view": lambda model: {
        "attention_view.html": run_attention(
            AttentionConfig(model=DEFAULT_MODEL, heads="L18H6,L16H0", prompt=ATTENTION_PROMPT, html=True), model
        )[1]["attention_view.html"]
    },
    "ablate": lambda model: run_ablate(AblateConfig(model=DEFAULT_MODEL), model, progress=False)[1],
    "patch": lambda model: run_patch(PatchConfig(model=DEFAULT_MODEL), model, progress=False)[1],
    # the strongest induction head and L17H3 (the second on larger samples: which of L17H3 and L17H4
    # ranks second depends on the rows), every loss effect exact (docs/circuit.md discusses both)
    "circuit": lambda model: run_circuit(
        CircuitConfig(model=DEFAULT_MODEL, targets="L18H6,L17H3", exact_losses=None), model, progress=False
    )[1],
    # token and concept induction heads, the dissociation test (docs/dual_route.md): a smaller explicit run than
    # the default (bench/dual_route.py records the default's results and time), so the slow chart check stays short
    "dual_route": lambda model: run_dual_route(DUAL_ROUTE_CHARTS, model, progress=False)[1],
    # loss by token index on the default text, Python's own help topics (docs/dual_route.md)
    "icl": lambda model: icl_run(model)[1],
}


# name -> the chart files it writes (globs), so that one producer can be checked alone
OUTPUTS: dict[str, tuple[str, ...]] = {
    "scan": ("induction_scores.json", "loss_by_position.json", "scan_results.json"),
    "heads": ("heads_*.json",),
    "attention": ("attention_L*.json",),
    "attention_view": ("attention_view.html",),
    "ablate": ("ablation_*.json",),
    "patch": ("patching_*.json",),
    "circuit": ("circuit_*.json",),
    "dual_route": ("dual_route_*.json",),
    "icl": ("icl_*.json",),
}


def owners(name: str) -> list[str]:
    """The producers whose :data:`OUTPUTS` match chart file ``name``."""
    return [producer for producer, globs in OUTPUTS.items() if any(fnmatch.fnmatchcase(name, g) for g in globs)]


def produce(model=None, only: list[str] | None = None) -> dict[str, str]:
    """Every chart file's text, from one loaded default model."""
    if model is None:
        model = load_model(DEFAULT_MODEL)
    files: dict[str, str] = {}
    for name, producer in PRODUCERS.items():
        if only and name not in only:
            continue
        print(f"export_charts: {name} ...", file=sys.stderr, flush=True)
        produced = producer(model)
        clash = files.keys() & produced.keys()
        if clash:
            raise RuntimeError(f"producer {name!r} writes {sorted(clash)} already written by another producer")
        files.update(produced)
    return files


_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _close(a: float, b: float, atol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol + RTOL * max(abs(a), abs(b))


def _string_diff(a: str, b: str) -> bool:
    """Whether two strings differ beyond the float noise of the numbers printed in them."""
    if a == b:
        return False
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
        return True
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b)):
        decimals = len(x.split(".")[1]) if "." in x and "e" not in x.lower() else 0
        # a printed number may round either way: allow one unit of its last digit
        if not _close(float(x), float(y), max(ATOL, 10.0**-decimals)):
            return True
    return False


_HEAD_LABEL = re.compile(r"L(\d+)H(\d+)")


def _ranked(value) -> bool:
    """Whether ``value`` is a ranked list of heads: dicts with ``layer``, ``head`` and a score."""
    return (
        bool(value)
        and isinstance(value, list)
        and all(
            isinstance(v, dict) and "layer" in v and "head" in v and any(k in v for k in RANK_VALUES) for v in value
        )
    )


def _rank_value(entry: dict) -> float | None:
    return next((entry[k] for k in RANK_VALUES if k in entry), None)


def canonical(value):
    """``value`` with each Plotly bar trace over head labels (``L18H6`` ...) turned into a ranked list of heads."""
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if not isinstance(value, dict):
        return value
    labels = value.get("x")
    if (
        value.get("type") == "bar"
        and isinstance(labels, list)
        and labels
        and all(isinstance(x, str) and _HEAD_LABEL.fullmatch(x) for x in labels)
    ):
        error = value.get("error_y") or {}
        bars = [
            {"layer": int(_HEAD_LABEL.fullmatch(x)[1]), "head": int(_HEAD_LABEL.fullmatch(x)[2]), "score": y}
            for x, y in zip(labels, value.get("y", []))
        ]
        for key in ("array", "arrayminus"):
            for bar, v in zip(bars, error.get(key) or []):
                bar[key] = v
        rest = {k: canonical(v) for k, v in value.items() if k not in ("x", "y", "error_y")}
        return {**rest, "ranking": bars}
    return {k: canonical(v) for k, v in value.items()}


def ranking_differences(committed: list, fresh: list, path: str) -> Iterator[str]:
    """Two rankings of heads differ when a head's values drift, or when a head enters or leaves the list
    with a value away from the other list's cut-off. Order among near-ties, and swaps at the cut-off,
    are float noise."""

    def key(entry: dict) -> tuple[int, int]:
        return entry["layer"], entry["head"]

    in_committed, in_fresh = {key(e): e for e in committed}, {key(e): e for e in fresh}
    for head, entry in in_committed.items():
        if head in in_fresh:
            yield from differences(entry, in_fresh[head], f"{path}[{head_name(head)}]")
    for entries, others, cut_off, word in (
        (committed, in_fresh, fresh[-1], "gone now"),
        (fresh, in_committed, committed[-1], "new now"),
    ):
        for entry in entries:
            value, edge = _rank_value(entry), _rank_value(cut_off)
            if key(entry) not in others and (value is None or edge is None or not _close(value, edge, ATOL)):
                yield f"{path}[{head_name(entry['layer'], entry['head'])}]: {word} (value {value}, cut-off {edge})"


def differences(committed, fresh, path: str = "") -> Iterator[str]:
    """Where two parsed JSON values differ beyond float noise, as ``path: committed vs now`` lines.

    Ranked lists of heads are compared head by head (see :func:`ranking_differences`).
    """
    here = path or "(root)"
    if _ranked(committed) and _ranked(fresh) and len(committed) == len(fresh):
        yield from ranking_differences(committed, fresh, path)
        return
    if isinstance(committed, bool) or isinstance(fresh, bool):
        if committed is not fresh:
            yield f"{here}: {committed!r} vs now {fresh!r}"
    elif isinstance(committed, (int, float)) and isinstance(fresh, (int, float)):
        if not _close(float(committed), float(fresh), ATOL):
            yield f"{here}: {committed!r} vs now {fresh!r}"
    elif isinstance(committed, str) and isinstance(fresh, str):
        if _string_diff(committed, fresh):
            yield f"{here}: {committed[:80]!r} vs now {fresh[:80]!r}"
    elif isinstance(committed, dict) and isinstance(fresh, dict):
        for key in (committed.keys() | fresh.keys()) - VOLATILE_KEYS:
            if key not in fresh:
                yield f"{path}.{key}: gone now"
            elif key not in committed:
                yield f"{path}.{key}: new now"
            else:
                yield from differences(committed[key], fresh[key], f"{path}.{key}")
    elif isinstance(committed, list) and isinstance(fresh, list):
        if len(committed) != len(fresh):
            yield f"{here}: {len(committed)} items vs now {len(fresh)}"
        else:
            for i, (a, b) in enumerate(zip(committed, fresh)):
                yield from differences(a, b, f"{path}[{i}]")
    elif committed != fresh:
        yield f"{here}: {type(committed).__name__} {committed!r} vs now {type(fresh).__name__} {fresh!r}"


_EMBEDDED_JSON = re.compile(r'(<script type="application/json"[^>]*>)(.*?)(</script>)', re.S)


def parse_chart(text: str, name: str):
    """A chart file's value to compare: the JSON itself, or for an HTML view its page with every
    embedded ``<script type="application/json">`` block parsed (the page's other text must match exactly)."""
    if not name.endswith(".html"):
        return json.loads(text)
    blocks = [json.loads(m.group(2)) for m in _EMBEDDED_JSON.finditer(text)]
    return {"page": _EMBEDDED_JSON.sub(r"\1\3", text), "embedded": blocks}


def check(committed_dir: Path, fresh_dir: Path, shown: int = 5, only: list[str] | None = None) -> list[str]:
    """Problems found comparing every chart file in ``fresh_dir`` with ``committed_dir`` (empty when they
    match); with ``only``, ``fresh_dir`` holds what those producers wrote, compared with their committed files."""
    problems = []
    patterns = ("*.json", "*.html")
    fresh_names = {p.name for pattern in patterns for p in fresh_dir.glob(pattern)}
    committed_names = {
        p.name
        for pattern in patterns
        for p in committed_dir.glob(pattern)
        if not p.name.startswith(OTHER_PRODUCERS) and (only is None or set(owners(p.name)) & set(only))
    }
    for name in sorted(fresh_names - committed_names):
        problems.append(f"{name}: produced by the code but not committed in {committed_dir}")
    for name in sorted(committed_names - fresh_names):
        problems.append(f"{name}: committed in {committed_dir} but no producer writes it any more")
    for name in sorted(fresh_names & committed_names):
        try:
            committed = parse_chart((committed_dir / name).read_text(), name)
        except json.JSONDecodeError as error:
            problems.append(f"{name}: committed file is not valid JSON ({error})")
            continue
        fresh = parse_chart((fresh_dir / name).read_text(), name)
        if name.endswith(".html") and committed["page"] != fresh["page"]:
            problems.append(f"{name}: the page around its data differs (its script, style or layout changed)")
            continue
        diffs = list(differences(canonical(committed), canonical(fresh)))
        if diffs:
            more = f" (and {len(diffs) - shown} more)" if len(diffs) > shown else ""
            problems.append(f"{name} drifted at {len(diffs)} place(s){more}:\n    " + "\n    ".join(diffs[:shown]))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="recompute and compare with the committed charts")
    parser.add_argument("--out", default=str(CHARTS), help="charts directory (default: the repository's charts/)")
    args = parser.parse_args(argv)

    def run() -> int:
        if args.check:
            with tempfile.TemporaryDirectory(prefix="charts-check-") as tmp:
                write_files(Path(tmp), produce())
                problems = check(Path(args.out), Path(tmp))
            if problems:
                print(
                    "export_charts: the committed charts no longer match what the code produces:\n  "
                    + "\n  ".join(problems)
                    + "\nRegenerate them with `python scripts/export_charts.py` and commit charts/.",
                    file=sys.stderr,
                )
                return 1
            print(f"export_charts: every chart in {args.out} matches the code", file=sys.stderr)
            return 0
        out = prepare_out_dir(args.out)
        for path in write_files(out, produce()):
            print(f"wrote {path}", file=sys.stderr)
        return 0

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main())
