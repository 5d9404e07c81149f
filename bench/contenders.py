"""The contenders: each one does the whole job on the same tokens and weights.

A contender is a function ``make(ctx) -> run`` registered with
:func:`contender`; ``run()`` does one timed call and returns an :class:`Outcome`:
the tensors the call saves (what a remote run would download, or what a local
tool keeps), plus the scores and losses used for the cross-checks. Models are
loaded once per process through ``ctx.model(kind)`` and shared by the configs.

Adding a contender is one function (see ``heads-sdpa``)::

    @contender("my-contender", needs="nnsight-eager", group="ours", description="...")
    def _mine(ctx):
        model = ctx.model("nnsight-eager")
        def run():
            ...
            return Outcome(saved={...}, scores=...)
        return run
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import models as bench_models


@dataclass
class Outcome:
    """What one call of a contender produced.

    Attributes:
        saved: Name -> tensor of everything the call saves out of the forward pass.
        scores: ``[n_layers, n_heads]`` induction scores, when the contender makes them.
        loss: ``[pos - 1]`` mean loss by position, when the contender makes it.
        note: Free text for the report.
    """

    saved: dict[str, torch.Tensor] = field(default_factory=dict)
    scores: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    note: str = ""

    def saved_bytes(self) -> int:
        return int(sum(t.numel() * t.element_size() for t in self.saved.values() if isinstance(t, torch.Tensor)))


@dataclass(frozen=True)
class Contender:
    name: str
    make: Callable[[Context], Callable[[], Outcome]]
    needs: str  # the model kind it loads, see Context.model
    group: str  # "baseline", "ours", "tutorial", "transformerlens"
    description: str


CONTENDERS: dict[str, Contender] = {}


def contender(name: str, *, needs: str, group: str, description: str):
    """Register ``make(ctx) -> run`` under ``name``."""

    def register(make):
        CONTENDERS[name] = Contender(name, make, needs, group, description)
        return make

    return register


class Context:
    """One model's weights, the current tokens, and the models loaded so far."""

    def __init__(self, model_name: str, path: Path):
        self.model_name = model_name
        self.path = path
        self._models: dict[str, Any] = {}
        self.tokens: torch.Tensor | None = None
        self.seq_len: int = 0

    def model(self, kind: str):
        """``hf-eager``, ``hf-sdpa``, ``nnsight-eager``, ``nnsight-sdpa`` or ``tl``, loaded once."""
        if kind not in self._models:
            family, _, attn = kind.partition("-")
            if family == "hf":
                self._models[kind] = bench_models.load_hf(self.path, attn)
            elif family == "nnsight":
                self._models[kind] = bench_models.load_nnsight(self.path, attn)
            elif family == "tl":
                self._models[kind] = bench_models.load_tl(self.path)
            else:
                raise ValueError(kind)
        return self._models[kind]

    def set_batch(self, tokens: torch.Tensor, seq_len: int) -> None:
        self.tokens = tokens
        self.seq_len = seq_len


def available(name: str) -> str | None:
    """None when ``name`` can run here, else why not (one line)."""
    if CONTENDERS[name].group == "transformerlens":
        try:
            import transformer_lens  # noqa: F401
        except Exception as error:  # ImportError, or a broken install
            return f"transformer_lens not importable ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    return None


def _stripe_scores(patterns: list[torch.Tensor], seq_len: int) -> torch.Tensor:
    """``[n_layers, n_heads]`` from per-layer ``[batch, head, query, key]`` patterns."""
    from induction_nnsight.scores.reductions import diagonal_score_per_row

    return torch.stack([diagonal_score_per_row(p, 1 - seq_len).mean(0) for p in patterns])


# ---------------------------------------------------------------- baselines


def _forward(ctx: Context, attn: str, blocks_only: bool = False):
    model = ctx.model(f"hf-{attn}")

    def run() -> Outcome:
        with torch.no_grad():
            if blocks_only:  # the base model: no unembedding
                return Outcome(saved={"hidden": model.base_model(ctx.tokens).last_hidden_state})  # [b, pos, d_model]
            return Outcome(saved={"logits": model(ctx.tokens).logits})  # [batch, pos, vocab]

    return run


@contender(
    "forward-eager",
    needs="hf-eager",
    group="baseline",
    description="plain transformers forward pass, eager attention, torch.no_grad",
)
def _forward_eager(ctx):
    return _forward(ctx, "eager")


@contender(
    "forward-sdpa",
    needs="hf-sdpa",
    group="baseline",
    description="plain transformers forward pass, sdpa attention, torch.no_grad",
)
def _forward_sdpa(ctx):
    return _forward(ctx, "sdpa")


@contender(
    "body-eager",
    needs="hf-eager",
    group="baseline",
    description="plain transformers forward pass of the blocks alone (no unembedding, no logits), eager: "
    "nearly the least an exact pass that reads every layer's pattern computes (all but the last "
    "layer's MLP)",
)
def _body_eager(ctx):
    return _forward(ctx, "eager", blocks_only=True)


@contender(
    "nnsight-forward-eager",
    needs="nnsight-eager",
    group="baseline",
    description="the same forward pass through an nnsight trace that saves only the logits, eager: "
    "what nnsight itself adds (its first call's one-time costs, in a fresh process)",
)
def _nnsight_forward_eager(ctx):
    import nnsight

    model = ctx.model("nnsight-eager")

    def run() -> Outcome:
        with torch.no_grad(), model.trace(ctx.tokens):
            logits = nnsight.save(model.output.logits)  # [batch, pos, vocab]
        return Outcome(saved={"logits": logits})

    return run


# ---------------------------------------------------------------- ours


def _scan(ctx: Context, attn: str):
    from induction_nnsight.scores.scan import scan

    model = ctx.model(f"nnsight-{attn}")

    def run() -> Outcome:
        result = scan(model, ctx.tokens, ctx.seq_len)
        return Outcome(
            saved={"loss_by_position": result.loss_by_position, "induction_scores": result.induction_scores},
            scores=result.induction_scores,
            loss=result.loss_by_position,
        )

    return run


@contender(
    "scan-eager",
    needs="nnsight-eager",
    group="ours",
    description="induction_nnsight.scores.scan: loss by position + induction scores in one trace, eager",
)
def _scan_eager(ctx):
    return _scan(ctx, "eager")


@contender(
    "scan-sdpa",
    needs="nnsight-sdpa",
    group="ours",
    description="induction_nnsight.scores.scan under sdpa (patterns recomputed from q, k inside the trace)",
)
def _scan_sdpa(ctx):
    return _scan(ctx, "sdpa")


def _heads(ctx: Context, attn: str, loss: bool = True):
    from induction_nnsight.probes.tokens import Probe
    from induction_nnsight.scores.heads import head_scores

    model = ctx.model(f"nnsight-{attn}")

    def run() -> Outcome:
        start = ctx.tokens.shape[1] - 2 * ctx.seq_len
        probe = Probe("repeated", ctx.tokens, ctx.seq_len, start, start + ctx.seq_len)
        result = head_scores(model, probe, loss=loss)
        saved = {f"{kind}": result.per_row[kind] for kind in result.per_row}
        saved.update(result.static)
        if loss:
            saved["loss_by_position"] = result.loss_by_position
        return Outcome(saved=saved, scores=result.mean("induction"), loss=result.loss_by_position)

    return run


@contender(
    "kinds-eager",
    needs="nnsight-eager",
    group="ours",
    description="induction_nnsight.head_scores(loss=False): all eight head kinds, no loss (the trace stops "
    "before the unembedding), eager",
)
def _kinds_eager(ctx):
    return _heads(ctx, "eager", loss=False)


@contender(
    "heads-eager",
    needs="nnsight-eager",
    group="ours",
    description="induction_nnsight.head_scores: all eight head kinds and the loss in one trace, eager",
)
def _heads_eager(ctx):
    return _heads(ctx, "eager")


@contender(
    "heads-sdpa",
    needs="nnsight-sdpa",
    group="ours",
    description="induction_nnsight.head_scores: all eight head kinds and the loss in one trace, sdpa",
)
def _heads_sdpa(ctx):
    return _heads(ctx, "sdpa")


@contender(
    "induction-eager",
    needs="nnsight-eager",
    group="ours",
    description="induction_nnsight.induction_scores: the induction score alone (no loss: the trace stops "
    "after the last layer's attention), eager",
)
def _induction_eager(ctx):
    from induction_nnsight.scores.scan import induction_scores

    model = ctx.model("nnsight-eager")

    def run() -> Outcome:
        scores = induction_scores(model, ctx.tokens, ctx.seq_len)
        return Outcome(saved={"induction_scores": scores}, scores=scores)

    return run


# ---------------------------------------------------------------- the tutorial approach


@contender(
    "tutorial-eager",
    needs="nnsight-eager",
    group="tutorial",
    description="nnsight, save every layer's full attention [B, H, T, T] and the logits, reduce afterwards",
)
def _tutorial_eager(ctx):
    import nnsight

    from induction_nnsight.models.attention import attention_modules
    from induction_nnsight.scores.losses import per_position_loss

    model = ctx.model("nnsight-eager")
    attentions = attention_modules(model)

    def run() -> Outcome:
        patterns = []  # each [batch, head, query, key]; a list made inside the trace would not come out
        with model.trace(ctx.tokens):
            for a in attentions:
                patterns.append(nnsight.save(a.output[1]))
            logits = nnsight.save(model.output.logits)  # [batch, pos, vocab]
        with torch.no_grad():
            scores = _stripe_scores(patterns, ctx.seq_len)
            loss = per_position_loss(logits, ctx.tokens)
        saved = {f"pattern_{i}": p for i, p in enumerate(patterns)}
        saved["logits"] = logits
        return Outcome(saved=saved, scores=scores.detach(), loss=loss.detach())

    return run


# ---------------------------------------------------------------- TransformerLens


@contender(
    "tl-run-with-cache",
    needs="tl",
    group="transformerlens",
    description="TransformerLens 4 TransformerBridge.run_with_cache (every activation) + the same score and loss",
)
def _tl_cache(ctx):
    from induction_nnsight.scores.losses import per_position_loss

    bridge = ctx.model("tl")
    n_layers = bridge.cfg.n_layers

    def run() -> Outcome:
        with torch.no_grad():
            logits, cache = bridge.run_with_cache(ctx.tokens)
            patterns = [cache["pattern", layer, "attn"] for layer in range(n_layers)]
            scores = _stripe_scores(patterns, ctx.seq_len)
            loss = per_position_loss(logits, ctx.tokens)
        saved = {name: t for name, t in cache.items() if isinstance(t, torch.Tensor)}
        saved["logits"] = logits
        return Outcome(saved=saved, scores=scores, loss=loss)

    return run


@contender(
    "tl-detect-head",
    needs="tl",
    group="transformerlens",
    description=(
        "TransformerLens head_detector.detect_head(model, prompts, 'induction_head'): one run_with_cache per prompt"
    ),
)
def _tl_detect(ctx):
    from transformer_lens.head_detector import detect_head

    bridge = ctx.model("tl")

    def run() -> Outcome:
        rows = ctx.tokens[:, 1:]  # TransformerLens prepends the BOS itself
        prompts = [" ".join(f"t{i}" for i in row.tolist()) for row in rows]
        with torch.no_grad():
            scores = detect_head(bridge, prompts, "induction_head")  # [n_layers, n_heads]
        return Outcome(
            saved={"scores": scores},
            scores=scores,
            note="'mul' score: stripe mass over all rows, not the diagonal mean",
        )

    return run
