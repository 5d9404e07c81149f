"""The attention job behind ``induction-nnsight attention``: chosen heads' attention on a prompt
repeated, as Plotly views, ASCII views and the interactive HTML view, each with its exact-token
induction score."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import InductionError
from ..figures.heads import attention_view_figure
from ..models.layout import model_facts
from ..names import check_heads, head_name, parse_heads
from ..probes.tokens import text_probe
from ..scores.attention_view import AttentionView, view_targets
from ..scores.reductions import induction_token_mask, masked_attention_score
from ..scores.scan import heads_attention
from .jobs import ScanConfig, model_for
from .options import like, option
from .outputs import rounded, table
from .report import ascii_attention
from .results import JobResult
from .run_context import RunContext, ndif_option

__all__ = ["AttentionConfig", "AttentionJobResult", "run_attention"]


@dataclass
class AttentionConfig:
    """Settings of ``induction-nnsight attention``."""

    model: str = like(ScanConfig, "model")
    layer: int | None = option(None, help="layer index (with --head; or pass --heads)", parse=int)
    head: int | None = option(None, help="head index (with --layer; or pass --heads)", parse=int)
    prompt: str = option("", help="the text; it is repeated --repeat times", required=True)
    repeat: int = option(2, help="copies of the prompt", parse=int)
    bos: bool = like(ScanConfig, "bos")
    attn_implementation: str | None = like(ScanConfig, "attn_implementation")
    remote: bool = ndif_option("remote")
    ndif_host: str | None = ndif_option("ndif_host")
    timeout: float = ndif_option("timeout")
    heads: str | None = option(None, help="several heads instead of --layer/--head, e.g. L18H6,L16H0", metavar="HEADS")
    html: bool = option(
        False, help="also write attention_view.html: hover a token to see where each head looks from it"
    )

    def chosen_heads(self) -> list[tuple[int, int]]:
        """The heads asked for: ``heads`` parsed, or ``[(layer, head)]``."""
        if self.heads is not None and (self.layer is not None or self.head is not None):
            raise InductionError("pass either --layer and --head (one head) or --heads (several), not both")
        if self.heads is not None:
            return parse_heads(self.heads, "--heads")
        if self.layer is None or self.head is None:
            raise InductionError("no head chosen: pass --layer and --head, or --heads L18H6,L17H3")
        return [(self.layer, self.head)]

    def validate_for(self, model) -> None:
        """Check the chosen heads against the model (loaded, or its weightless architecture)."""
        facts, heads = model_facts(model), self.chosen_heads()
        if self.heads is not None:
            check_heads(heads, facts.n_layers, facts.n_heads, "--heads")
        elif not 0 <= self.layer < facts.n_layers:
            raise InductionError(f"--layer {self.layer} is out of range: pass 0..{facts.n_layers - 1}")
        elif not 0 <= self.head < facts.n_heads:
            raise InductionError(f"--head {self.head} is out of range: pass 0..{facts.n_heads - 1}")


@dataclass(eq=False)
class AttentionJobResult(JobResult):
    """One head's attention on the prompt (``attention_<head>_results.json``, in this order).

    Attributes:
        model: The model's name or path.
        settings: The :class:`AttentionConfig` as a dict.
        tokens: ``[pos]`` token strings of the repeated prompt.
        pattern: ``[query][key]`` attention probabilities.
        induction_exact_score: The head's exact-token induction score on the prompt.
    """

    model: str
    settings: dict
    tokens: list[str]
    pattern: list
    induction_exact_score: float | None


def run_attention(
    config: AttentionConfig, model=None, context: RunContext | None = None
) -> tuple[AttentionJobResult, dict[str, str], str]:
    """Each chosen head's attention on a prompt (one trace): results and Plotly view per head, ASCII
    views, and with ``html`` the interactive ``attention_view.html``.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        context: How the job runs (device, plan, request budgets, journal; None: ``RunContext()``).

    Returns:
        ``(result, files, ascii_views)``: the last head's :class:`AttentionJobResult`, every head's files, the
        ASCII views.
    """
    if not config.prompt.strip():
        raise InductionError("the prompt is empty: pass --prompt TEXT")
    if config.repeat < 1:
        raise InductionError(f"--repeat must be at least 1, got {config.repeat}")
    heads = config.chosen_heads()
    context = context or RunContext()
    model = model_for(config, model, context)
    facts = model_facts(model)
    config.validate_for(model)
    ids = model.tokenizer(config.prompt, add_special_tokens=False)["input_ids"]
    probe = text_probe(ids, n_repeats=config.repeat, bos_token_id=facts.bos_token_id if config.bos else None)
    if facts.n_ctx is not None and probe.tokens.shape[1] > facts.n_ctx:
        raise InductionError(
            f"the repeated prompt has {probe.tokens.shape[1]} tokens, over the context of "
            f"{facts.n_ctx}: pass a shorter --prompt or a smaller --repeat"
        )
    patterns = heads_attention(model, probe.tokens, heads, execution=context.execution(config))
    stripe = induction_token_mask(probe.tokens)[0]
    labels = [model.tokenizer.decode([t]) for t in probe.tokens[0].tolist()]
    files, views = {}, []
    for (layer, head), pattern in zip(heads, patterns):  # one results file and chart per head
        name = head_name(layer, head)
        score = float(masked_attention_score(pattern[None, None], stripe[None])[0, 0])  # induction_exact's reduction
        results = AttentionJobResult(
            model=config.model,
            settings=asdict(config),
            tokens=labels,
            pattern=table(pattern),
            induction_exact_score=rounded(score),
        )
        figure = attention_view_figure(
            labels,
            pattern.tolist(),
            stripe.tolist(),
            f"{name} attention — {config.model}",
            f"the prompt x {config.repeat}{'' if config.bos else ', no BOS'}, exact-token induction score {score:.2f}",
        )
        files |= {f"attention_{name}.json": figure.to_json(), f"attention_{name}_results.json": results.to_json()}
        views.append((f"{name}\n" if len(heads) > 1 else "") + ascii_attention(labels, pattern, stripe))
    if config.html:
        title = f"{', '.join(map(head_name, heads))} on the prompt ({config.model})"
        files["attention_view.html"] = AttentionView(labels, heads, patterns, view_targets(probe.tokens), title).html
    return results, files, "\n\n".join(views)
