"""The sentences of ``explain``: plain functions, measured data in, one sentence out.

Every number a sentence states comes from the data it is given (the fields of
:class:`~induction_nnsight.app.explain_result.Explanation`, which ``explain_results.json`` holds), with its
interval where it has one. A claim whose interval contains zero, or that did not survive the
Benjamini-Hochberg correction (``q`` above :data:`~induction_nnsight.stats.ALPHA`, a head not
``clearly_above`` its threshold), is stated as **not resolved**, never as a finding. The HTML report
and the terminal summary both print these sentences; no sentence around a number is typed elsewhere.

>>> resolved(0.1, 0.3), resolved(-0.1, 0.3), resolved(0.1, 0.3, q=0.2)
(True, False, False)
>>> head = {"name": "L1H0", "score": 0.9, "ci": [0.88, 0.92], "clearly_above": True}
>>> head_sentence(head, "induction", 0.4, 4, 8)[:64]
'L1H0 is an induction head: induction score 0.900 [0.880, 0.920] '
"""

from __future__ import annotations

from ..stats import ALPHA
from .report import with_interval

__all__ = [
    "NOT_RESOLVED",
    "Q_FLOOR",
    "SECTIONS",
    "attention_sentence",
    "cost_sentence",
    "dual_route_sentences",
    "edge_sentence",
    "head_sentence",
    "icl_sentence",
    "loss_sentence",
    "more_heads_sentence",
    "no_edge_sentence",
    "no_head_sentence",
    "resolved",
    "sentences",
    "summary",
    "sweep_resolved",
    "sweep_sentence",
    "sweep_summary_sentence",
    "top_vs_random_sentence",
]

NOT_RESOLVED = "not resolved"
"""What a sentence says of a claim its data cannot support."""

SECTIONS = {
    "where": "Where the induction heads are",
    "effect": "What they do to the loss",
    "inputs": "What feeds them",
    "attention": "Their attention",
    "routes": "Token versus concept induction",
    "cost": "What it cost",
}
"""Section key -> heading, in the report's order."""

KIND_WORDS = {
    "induction": ("an induction head", "induction"),
    "previous_token": ("a previous-token head", "previous-token"),
}
PATH_WORDS = {
    "k": ("reads its keys from", "{}'s keys"),
    "q": ("forms its queries from", "{}'s queries"),
    "v": ("reads its values from", "{}'s values"),
    "total": ("depends on", "{} (all paths together)"),
}
LISTED = 8  # heads of one kind stated one by one; the others named in one sentence


def resolved(low: float | None, high: float | None, q: float | None = None) -> bool:
    """Whether an effect is a finding: its interval excludes zero and its corrected ``q`` (where given) is at
    most :data:`~induction_nnsight.stats.ALPHA`."""
    if low is None or high is None or low != low or high != high:
        return False
    return (low > 0 or high < 0) and (q is None or q <= ALPHA)


def _why_not(low, high, q) -> str:
    """Why an effect is not resolved, for the end of its sentence."""
    if low is None or high is None:
        return f"{NOT_RESOLVED} (no interval)"
    if not (low > 0 or high < 0):
        return f"{NOT_RESOLVED} (the interval includes zero)"
    if q is None:
        return f"{NOT_RESOLVED} (no q-value: the rows do not vary)"
    return f"{NOT_RESOLVED} (q = {q:.3f} > {ALPHA:g} after Benjamini-Hochberg correction)"


Q_FLOOR = 0.001
"""Below this a q-value is written ``q < 0.001`` (``settings.q_floor`` in the results)."""


def _q(q: float | None) -> str:
    if q is None:
        return ""
    return f" (q < {Q_FLOOR:g})" if q < Q_FLOOR else f" (q = {q:.3f})"


def _heads(n: int) -> str:
    return f"{n} head" if n == 1 else f"{n} heads"


def _count(value: float) -> str:
    """``2448`` for a whole number, ``2041.6`` otherwise."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def head_sentence(head: dict, kind: str, threshold: float, n_heads: int, rows: int) -> str:
    """One head above ``kind``'s threshold: its score with interval, and whether the correction keeps it.

    Args:
        head: ``{"name", "score", "ci", "clearly_above"}`` (a heads-pass entry).
        kind: ``induction`` or ``previous_token``.
        threshold: The kind's threshold.
        n_heads: Heads tested (the correction's family).
        rows: Rows the interval is over.
    """
    article, word = KIND_WORDS[kind]
    score = with_interval(head["score"], *head.get("ci", (None, None)))
    if head.get("clearly_above"):
        return (
            f"{head['name']} is {article}: {word} score {score} over {rows} rows, clearly above the threshold "
            f"{threshold:g} after Benjamini-Hochberg correction over {n_heads} heads."
        )
    return (
        f"{head['name']} reaches the {word} threshold {threshold:g} ({word} score {score} over {rows} rows), but "
        f"being above it is {NOT_RESOLVED} after Benjamini-Hochberg correction over {n_heads} heads."
    )


def no_head_sentence(best: dict, kind: str, threshold: float) -> str:
    """No head reaches ``kind``'s threshold: the best one, with its score."""
    _, word = KIND_WORDS[kind]
    score = with_interval(best["score"], *best.get("ci", (None, None)))
    return f"No head reaches the {word} threshold {threshold:g}; the highest, {best['name']}, scores {score}."


def more_heads_sentence(heads: list[dict], kind: str) -> str:
    """The heads of ``kind`` past the first :data:`LISTED`, by name."""
    _, word = KIND_WORDS[kind]
    return f"Also above the {word} threshold: {', '.join(h['name'] for h in heads)}."


def loss_sentence(loss: dict, rows: int, seq_len: int) -> str:
    """The two halves' mean losses and the drop between them."""
    return (
        f"On {rows} rows of {seq_len} random tokens shown twice, the mean loss is {loss['first_half']:.3f} nats "
        f"on the first copy and {loss['repeated_half']:.3f} nats on the repeat, a drop of {loss['drop']:.3f} nats "
        "(means over the rows)."
    )


def top_vs_random_sentence(vs: dict, heads: list[str], method: str, draws: int) -> str:
    """The top-k heads ablated together against k random heads, and whether the difference is resolved."""
    top = with_interval(vs["top"], *vs["top_ci"])
    random = with_interval(vs["random_mean"], *vs["random_mean_ci"])
    text = (
        f"{method.capitalize()}-ablating the top {vs['k']} induction {'head' if vs['k'] == 1 else 'heads'} "
        f"({', '.join(heads)}) moves the repeated-half loss from {vs['baseline']:.3f} to {top} nats; "
        f"{_heads(vs['k']).replace('head', 'random head')} give {random} nats "
        f"(mean of {draws} draws). "
    )
    low, high = vs["top_ci"][0], vs["random_mean_ci"][1]
    if low is not None and high is not None and low > high:
        return text + "The top heads matter more than random heads: the two intervals do not overlap."
    return text + f"That the top heads matter more than random heads is {NOT_RESOLVED}: the intervals overlap."


def sweep_resolved(row: dict) -> bool:
    """Whether one head's ablation effect is a finding: its interval excludes zero and it is
    ``distinguishable_from_zero`` after the correction over every head."""
    return resolved(row.get("ci_low"), row.get("ci_high"), row.get("q")) and bool(
        row.get("distinguishable_from_zero", False)
    )


def sweep_sentence(row: dict) -> str:
    """One head ablated alone: the change of the repeated-half loss with its interval and q."""
    change = with_interval(row["delta"], row.get("ci_low"), row.get("ci_high"), sign=True)
    text = f"Ablating {row['name']} alone changes the repeated-half loss by {change} nats"
    if sweep_resolved(row):
        return text + _q(row.get("q")) + "."
    return f"{text}: {_why_not(row.get('ci_low'), row.get('ci_high'), row.get('q'))}."


def sweep_summary_sentence(n_heads: int, n_verified: int, n_resolved: int, estimator: str) -> str:
    """How the per-head sweep was searched: estimated for every head, exact for the strongest."""
    return (
        f"The {estimator} estimate ranked all {n_heads} heads; the {n_verified} it ranked strongest were ablated "
        f"exactly, and {n_resolved} of those effects are resolved."
    )


def _kind_of(name: str, heads: dict) -> str:
    """``, a previous-token head (previous-token score ...)`` where the heads pass resolved one, else empty."""
    for kind in ("previous_token", "induction"):
        for head in heads.get(kind, []):
            if head["name"] == name and head.get("clearly_above"):
                article, word = KIND_WORDS[kind]
                return f", {article} ({word} score {with_interval(head['score'], *head['ci'])})"
    return ""


def edge_sentence(edge: dict, heads: dict, composition: dict | None = None) -> str:
    """The strongest verified edge into a target on one path: the score change (loss change for ``v``, which
    cannot move the pattern), the loss change, the composition score beside.

    Args:
        edge: A verified circuit edge (``source``, ``target``, ``path``, ``effect``, ``ci_low``, ``ci_high``,
            ``q``, ``loss_effect``, ``loss_ci_low``, ``loss_ci_high``, ``loss_q``).
        heads: The heads section (for the source's kind).
        composition: The composition row of the same source, target and path (None: none).
    """
    verb, noun = PATH_WORDS[edge["path"]]
    target, source = edge["target"], edge["source"]
    score = (edge["effect"], edge["ci_low"], edge["ci_high"], edge["q"])
    loss = (edge["loss_effect"], edge["loss_ci_low"], edge["loss_ci_high"], edge["loss_q"])
    primary, other = (loss, score) if edge["path"] == "v" else (score, loss)
    what = "the repeated-half loss" if edge["path"] == "v" else f"{target}'s induction score"
    unit = " nats" if edge["path"] == "v" else ""
    shown = with_interval(primary[0], primary[1], primary[2], sign=True) + unit
    if not resolved(*primary[1:]):
        return (
            f"No source of {noun.format(target)} is resolved: removing the strongest, from {source}, changes {what} by "
            f"{shown}: {_why_not(*primary[1:])}."
        )
    removed = f"removing {source}'s output" if edge["path"] == "total" else "removing that path"
    text = f"{target} {verb} {source}{_kind_of(source, heads)}: {removed} changes {what} by {shown}"
    text += _q(primary[3])
    if edge["path"] != "v":
        if other[1] is None:
            text += f", and by estimate the repeated-half loss by {other[0]:+.3f} nats"
        else:
            loss_text = with_interval(other[0], other[1], other[2], sign=True)
            verdict = _q(other[3]) if resolved(*other[1:]) else f", {_why_not(*other[1:])}"
            text += f", and the repeated-half loss by {loss_text} nats{verdict}"
    if composition is not None:
        text += (
            f"; its {edge['path'].upper()}-composition score is {composition['score']:.3f} against a baseline of "
            f"{composition['baseline']:.3f}"
        )
    return text + "."


def no_edge_sentence(target: str, path: str) -> str:
    """No edge into ``target`` on ``path`` was path-patched."""
    return f"No source of {PATH_WORDS[path][1].format(target)} was path-patched exactly, so none is resolved."


def attention_sentence(attention: dict) -> str:
    """The chosen heads' exact-token induction scores on the repeated prompt (one prompt: no interval)."""
    parts = [f"{name}'s is {score:.3f}" for name, score in attention["scores"].items()]
    return (
        f"On the prompt shown {attention['repeat']} times ({attention['n_tokens']} tokens), the exact-token "
        f"induction score: {'; '.join(parts)} (one prompt, no interval)."
    )


def icl_sentence(icl: dict) -> str:
    """Olsson's ICL score on natural text, and whether it is resolved (or why it was not measured)."""
    if not icl.get("ran", True):
        return f"Olsson's ICL score was not measured: {icl['reason']}."
    s = icl["score"]
    score = with_interval(s["mean"], s["ci_low"], s["ci_high"], sign=True)
    text = (
        f"On {icl['n_windows']} windows of {icl['length']} tokens of {icl['source']}, the loss is "
        f"{icl['loss_at_early']:.3f} nats at token {icl['early']} and {icl['loss_at_late']:.3f} at token "
        f"{icl['late']}: Olsson's ICL score (late minus early) is {score} nats"
    )
    if resolved(s["ci_low"], s["ci_high"]):
        return text + f", so the loss {'falls' if s['mean'] < 0 else 'rises'} with context."
    return f"{text}: {_why_not(s['ci_low'], s['ci_high'], None)}."


def dual_route_sentences(dual: dict, top: int, n_heads: int) -> list[str]:
    """The dual-route stage: why it was skipped, or its strongest copying heads and the dissociation."""
    if not dual["ran"]:
        return [f"Token versus concept induction was not measured: {dual['reason']}."]
    out = []
    for grid, word in (("token_copying", "token-copying"), ("concept_copying", "concept-copying")):
        best = dual["top_heads"][grid][0]
        score = with_interval(best["score"], *best["ci"], sign=True)
        verdict = "" if resolved(*best["ci"]) else f": {_why_not(*best['ci'], None)}"
        out.append(
            f"The strongest {word} head is {best['name']}: {score} ({dual['copying_unit']}){verdict} (the best of "
            f"{n_heads} heads; its interval is not corrected for that choice)."
        )
    for kind, d in dual["difference"].items():
        diff = with_interval(d["mean"], d["ci_low"], d["ci_high"], sign=True)
        text = (
            f"Mean-ablating the top {dual['ablated']} {kind} heads, the drop on copying a word list minus the drop "
            f"on copying a random-token list is {diff}"
        )
        if resolved(d["ci_low"], d["ci_high"]):
            more = "meaning" if d["mean"] > 0 else "verbatim copying"
            out.append(f"{text}: they matter more for {more}.")
        else:
            out.append(f"{text}: {_why_not(d['ci_low'], d['ci_high'], None)}.")
    return out


def cost_sentence(cost: dict) -> str:
    """The run's time and passes, stage by stage."""
    total = cost["total"]
    stages = ", ".join(f"{name} {c['seconds']:.1f} s" for name, c in cost["stages"].items())
    return (
        f"The run took {total['seconds']:.1f} s ({stages}): {_count(total['forward_passes'])} forward and "
        f"{_count(total['backward_passes'])} backward row passes over {total['tokens']} tokens."
    )


def _composition(rows: list[dict], source: str, target: str, path: str) -> dict | None:
    return next((r for r in rows if (r["source"], r["target"], r["path"]) == (source, target, path)), None)


def _circuit_sentences(circuit: dict, heads: dict) -> list[str]:
    out = []
    for target in circuit["targets"]:
        name = target["head"]
        for path in circuit["paths"]:
            edges = [e for e in circuit["edges"] if e["target"] == name and e["path"] == path]
            if not edges:
                out.append(no_edge_sentence(name, path))
                continue
            key = "loss_effect" if path == "v" else "effect"
            edge = max(edges, key=lambda e: abs(e[key]))
            out.append(edge_sentence(edge, heads, _composition(circuit["composition"], edge["source"], name, path)))
    return out


def sentences(explanation) -> dict[str, list[str]]:
    """Every sentence of the report, by section (:data:`SECTIONS`), from an
    :class:`~induction_nnsight.app.explain_result.Explanation` (or anything with its fields)."""
    heads, settings = explanation.heads, explanation.settings
    where = []
    for kind in ("induction", "previous_token"):
        found = heads[kind]
        threshold = heads["threshold"][kind]
        if not found:
            where.append(no_head_sentence(heads[f"best_{kind}"], kind, threshold))
        for head in found[:LISTED]:
            where.append(head_sentence(head, kind, threshold, heads["n_heads"], heads["rows"]))
        if len(found) > LISTED:
            where.append(more_heads_sentence(found[LISTED:], kind))
    where.append(loss_sentence(explanation.loss, settings["batch"], settings["seq_len"]))
    ablation = explanation.ablation
    effect = [
        top_vs_random_sentence(
            ablation["top_vs_random"], ablation["top_heads"], ablation["method"], ablation["random_draws"]
        ),
        sweep_summary_sentence(heads["n_heads"], ablation["n_verified"], ablation["n_resolved"], ablation["estimator"]),
        *(sweep_sentence(row) for row in ablation["sweep"]),
    ]
    return {
        "where": where,
        "effect": effect,
        "inputs": _circuit_sentences(explanation.circuit, heads),
        "attention": [attention_sentence(explanation.attention), icl_sentence(explanation.icl)],
        "routes": dual_route_sentences(explanation.dual_route, settings["top_k"], heads["n_heads"]),
        "cost": [cost_sentence(explanation.cost)],
    }


def summary(explanation) -> str:
    """The text ``explain`` prints: each section's heading and its sentences."""
    facts = explanation.model_facts
    lines = [f"{explanation.model}: {facts['n_layers']} layers x {facts['n_heads']} heads"]
    for key, heading in SECTIONS.items():
        lines += ["", heading]
        lines += [f"  - {s}" for s in explanation.sentences.get(key, [])]
    return "\n".join(lines)
