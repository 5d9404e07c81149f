"""Jobs: typed settings in, results and chart files out. The CLI and scripts call these."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..causal.head_outputs import check_heads, parse_heads
from ..errors import InductionError
from ..figures.heads import attention_view_figure, top_heads_figure
from ..models.layout import model_facts
from ..models.loading import DEFAULT_MODEL, load_model
from ..ndif.execution import DEFAULT_MAX_TOKENS, Execution
from ..ndif.settings import DEFAULT_TIMEOUT, RemoteSettings, resolve_host
from ..ndif.transfers import describe_transfers
from ..probes.tokens import DEFAULT_HIGH, DEFAULT_LOW, Probe, repeated_tokens, text_probe
from ..scores.detect import detections
from ..scores.heads import head_scores
from ..scores.losses import half_losses
from ..scores.reductions import induction_token_mask
from ..scores.registry import get_score, score_names
from ..scores.scan import heads_attention, scan
from .attention_view import AttentionView, view_targets
from .outputs import rounded, table, to_json
from .report import ascii_attention, text_report, top_heads


class RunsTraces:
    """What every job config with ``remote``, ``ndif_host`` and ``timeout`` fields (and maybe
    ``max_tokens``) shares: the one way to make the :class:`~induction_nnsight.ndif.execution.Execution`
    its job's traces run under."""

    def execution(self, progress: bool = True) -> Execution:
        """How this job's traces run: here, or on NDIF (``remote_settings``); ``max_tokens`` where the
        job has that option; a progress bar when ``progress``."""
        max_tokens = getattr(self, "max_tokens", DEFAULT_MAX_TOKENS)
        return Execution(remote=remote_settings(self) or False, max_tokens=max_tokens, progress=progress)


@dataclass
class ScanConfig(RunsTraces):
    """Settings of ``induction-nnsight scan``."""

    model: str = DEFAULT_MODEL
    batch: int = 10
    seq_len: int = 50
    seed: int = 0
    low: int = DEFAULT_LOW
    high: int = DEFAULT_HIGH
    bos: bool = True
    top: int = 10
    attn_implementation: str | None = None
    remote: bool = False
    ndif_host: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def validate_tokens(self) -> None:
        """Check the token and NDIF settings, before a model is loaded."""
        if not self.timeout > 0:
            raise InductionError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.batch < 1:
            raise InductionError(f"--batch must be at least 1, got {self.batch}")
        if self.seq_len < 1:
            raise InductionError(f"--seq-len must be at least 1, got {self.seq_len}")
        if not 0 <= self.low < self.high:
            raise InductionError(f"token range [{self.low}, {self.high}) is empty: pass 0 <= --low < --high")

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        self.validate_tokens()
        if self.top < 1:
            raise InductionError(f"--top must be at least 1, got {self.top}")

    def describe_tokens(self, n_repeats: int = 2) -> str:
        """Subtitle (rows x copies x block): ``10 x 2 x 50 repeated random tokens in [1000, 10000), seed 0``."""
        return (
            f"{self.batch} x {n_repeats} x {self.seq_len} repeated random tokens in [{self.low}, {self.high}), "
            f"seed {self.seed}{'' if self.bos else ', no BOS'}"
        )


def check_causal_tokens(config: ScanConfig) -> None:
    """:meth:`ScanConfig.validate_tokens`, and a repeated block of at least 2 tokens (a repeated half to score)."""
    config.validate_tokens()
    if config.seq_len < 2:
        raise InductionError(f"--seq-len must be at least 2 here, got {config.seq_len}")


def check_indices(values: list[int] | None, size: int, option: str, what: str) -> None:
    """Refuse ``values`` outside ``0..size-1``, naming ``option``."""
    bad = [v for v in values or [] if not 0 <= v < size]
    if bad:
        raise InductionError(f"{what} {bad[0]} is outside 0..{size - 1}: pass {option} within that range")


def scan_tokens(model, config: ScanConfig, n_repeats: int = 2):
    """Repeated tokens for ``config``, checked against the model's vocabulary and context.

    Returns:
        ``LongTensor[batch, bos + n_repeats * seq_len]``.
    """
    facts = model_facts(model)
    length = int(config.bos) + n_repeats * config.seq_len
    if facts.n_ctx is not None and length > facts.n_ctx:
        raise InductionError(
            f"rows of {length} tokens exceed {config.model}'s context of {facts.n_ctx}: "
            f"pass --seq-len {(facts.n_ctx - int(config.bos)) // n_repeats} or less"
        )
    if config.bos and facts.bos_token_id is None:
        raise InductionError(f"{config.model} has no BOS token: pass --no-bos")
    return repeated_tokens(
        config.batch,
        config.seq_len,
        seed=config.seed,
        low=config.low,
        high=config.high,
        bos_token_id=facts.bos_token_id if config.bos else None,
        vocab_size=facts.vocab_size,
        n_repeats=n_repeats,
    )


def model_for(config, model=None):
    """``model`` if given, else the model ``config`` names (``model``, ``attn_implementation``, ``remote``)."""
    if model is not None:
        return model
    return load_model(config.model, attn_implementation=config.attn_implementation, remote=config.remote)


def remote_settings(config) -> RemoteSettings | None:
    """NDIF settings of a config with ``remote``, ``ndif_host`` and ``timeout`` fields (None: run locally)."""
    if not config.remote:
        return None
    return RemoteSettings(host=config.ndif_host, timeout=config.timeout)


def run_scan(config: ScanConfig, model=None) -> tuple[dict, dict[str, str]]:
    """Run a scan and build its result dict and chart JSON texts.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).

    Returns:
        ``(results, files)``: the machine-readable results and
        ``{"loss_by_position.json", "induction_scores.json", "scan_results.json"} -> text``.
    """
    config.validate()
    execution = config.execution()
    model = model_for(config, model)
    tokens = scan_tokens(model, config)
    result = scan(model, tokens, config.seq_len, execution=execution)
    first, repeated = half_losses(result.loss_by_position, config.seq_len, config.bos)
    facts = model_facts(model)
    results = {
        "model": config.model,
        "model_facts": {**asdict(facts), "name": config.model},
        "settings": asdict(config),
        "n_tokens_per_row": int(tokens.shape[1]),
        "loss_by_position": table(result.loss_by_position),
        "mean_loss_first_half": rounded(first),
        "mean_loss_repeated_half": rounded(repeated),
        "induction_scores": table(result.induction_scores),
        "top_heads": top_heads(result.induction_scores, config.top),
    }
    if remote := execution.remote:  # what crossed the network (never the API key)
        results["ndif"] = {"host": resolve_host(remote.host), **describe_transfers(remote.transfers)}
    loss_fig = result.figure(
        "loss_by_position", title=f"Mean loss by position — {config.model}", subtitle=config.describe_tokens()
    )
    score_fig = result.figure(
        "induction_scores", title=f"Induction score per head — {config.model}", subtitle=config.describe_tokens()
    )
    files = {
        "loss_by_position.json": loss_fig.to_json(),
        "induction_scores.json": score_fig.to_json(),
        "scan_results.json": to_json(results),
    }
    return results, files


@dataclass
class HeadsConfig(ScanConfig):
    """Settings of ``induction-nnsight heads`` and ``report``."""

    kinds: tuple[str, ...] | None = None  # every registered score
    threshold: float | None = None  # each score's own default
    n_repeats: int = 2
    n_boot: int = 1000

    def validate(self) -> None:
        super().validate()
        for kind in self.kinds if self.kinds is not None else ():
            if kind not in score_names():
                raise InductionError(f"unknown kind {kind!r}: pass --kinds from {', '.join(score_names())}")
        if self.threshold is not None:
            for kind in self.kinds if self.kinds is not None else score_names():
                get_score(kind).check_threshold(self.threshold)
        if self.n_repeats < 2:
            raise InductionError(f"--repeats must be at least 2, got {self.n_repeats}")


def run_heads(config: HeadsConfig, model=None) -> tuple[dict, dict[str, str], str]:
    """Score every kind in one pass; build results, charts and the text report.

    Returns:
        ``(results, files, report_text)``; ``files`` maps ``heads_results.json``,
        ``heads_top.json`` and ``heads_<kind>.json`` to their JSON text.
    """
    config.validate()
    model = model_for(config, model)
    tokens = scan_tokens(model, config, n_repeats=config.n_repeats)
    facts = model_facts(model)
    start = int(config.bos)
    probe = Probe("repeated", tokens, config.seq_len, start, start + config.seq_len)
    scores = head_scores(model, probe, kinds=config.kinds, remote=config.execution().remote)
    settings = {**asdict(config), "kinds": list(scores.kinds)}
    found = detections(scores, config.threshold, settings, n_boot=config.n_boot)
    first, repeated = half_losses(scores.loss_by_position, config.seq_len, config.bos)
    facts_dict = {**asdict(facts), "name": config.model}
    tops = {kind: d.top(config.top) for kind, d in found.items()}
    results = {
        "model": config.model,
        "model_facts": facts_dict,
        "settings": settings,
        "descriptions": {k: get_score(k).description for k in found},
        "mean_loss_first_half": rounded(first),
        "mean_loss_repeated_half": rounded(repeated),
        "kinds": {kind: {**d.to_dict(), "top": tops[kind]} for kind, d in found.items()},
    }
    subtitle = config.describe_tokens(config.n_repeats)
    files = {
        "heads_results.json": to_json(results),
        "heads_top.json": top_heads_figure(
            tops,
            f"Top heads of each kind — {config.model}",
            subtitle,
            units={kind: get_score(kind).unit for kind in tops},
        ).to_json(),
    }
    for kind, d in found.items():
        files[f"heads_{kind}.json"] = d.figure(
            title=f"{kind.replace('_', ' ').capitalize()} score per head — {config.model}",
            subtitle=subtitle,
        ).to_json()
    report = text_report(facts_dict, tops, (first, repeated))
    return results, files, report


@dataclass
class AttentionConfig(RunsTraces):
    """Settings of ``induction-nnsight attention``."""

    model: str = DEFAULT_MODEL
    layer: int | None = None
    head: int | None = None
    prompt: str = ""
    repeat: int = 2
    bos: bool = True
    attn_implementation: str | None = None
    remote: bool = False
    ndif_host: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    heads: str | None = None  # several heads, "L18H6,L17H3", instead of layer and head
    html: bool = False  # also write attention_view.html, the interactive view of every head

    def chosen_heads(self) -> list[tuple[int, int]]:
        """The heads asked for: ``heads`` parsed, or ``[(layer, head)]``."""
        if self.heads is not None and (self.layer is not None or self.head is not None):
            raise InductionError("pass either --layer and --head (one head) or --heads (several), not both")
        if self.heads is not None:
            return parse_heads(self.heads, "--heads")
        if self.layer is None or self.head is None:
            raise InductionError("no head chosen: pass --layer and --head, or --heads L18H6,L17H3")
        return [(self.layer, self.head)]


def run_attention(config: AttentionConfig, model=None) -> tuple[dict, dict[str, str], str]:
    """Each chosen head's attention on a prompt (one trace): results and Plotly view per head, ASCII
    views, and with ``html`` the interactive ``attention_view.html`` (results: the last head's)."""
    if not config.prompt.strip():
        raise InductionError("the prompt is empty: pass --prompt TEXT")
    if config.repeat < 1:
        raise InductionError(f"--repeat must be at least 1, got {config.repeat}")
    heads = config.chosen_heads()
    model = model_for(config, model)
    facts = model_facts(model)
    if config.heads is not None:
        check_heads(heads, facts.n_layers, facts.n_heads, "--heads")
    elif not 0 <= config.layer < facts.n_layers:
        raise InductionError(f"--layer {config.layer} is out of range: pass 0..{facts.n_layers - 1}")
    elif not 0 <= config.head < facts.n_heads:
        raise InductionError(f"--head {config.head} is out of range: pass 0..{facts.n_heads - 1}")
    ids = model.tokenizer(config.prompt, add_special_tokens=False)["input_ids"]
    probe = text_probe(ids, n_repeats=config.repeat, bos_token_id=facts.bos_token_id if config.bos else None)
    if facts.n_ctx is not None and probe.tokens.shape[1] > facts.n_ctx:
        raise InductionError(
            f"the repeated prompt has {probe.tokens.shape[1]} tokens, over the context of "
            f"{facts.n_ctx}: pass a shorter --prompt or a smaller --repeat"
        )
    patterns = heads_attention(model, probe.tokens, heads, execution=config.execution())
    stripe = induction_token_mask(probe.tokens)[0]
    labels = [model.tokenizer.decode([t]) for t in probe.tokens[0].tolist()]
    files, views = {}, []
    for (layer, head), pattern in zip(heads, patterns):  # one results file and chart per head
        name = f"L{layer}H{head}"
        score = float((pattern * stripe).sum(-1)[stripe.any(-1)].mean()) if stripe.any() else float("nan")
        results = {
            "model": config.model,
            "settings": asdict(config),
            "tokens": labels,
            "pattern": table(pattern),
            "induction_exact_score": rounded(score),
        }
        figure = attention_view_figure(
            labels,
            pattern.tolist(),
            stripe.tolist(),
            f"{name} attention — {config.model}",
            f"the prompt x {config.repeat}{'' if config.bos else ', no BOS'}, exact-token induction score {score:.2f}",
        )
        files |= {f"attention_{name}.json": figure.to_json(), f"attention_{name}_results.json": to_json(results)}
        views.append((f"{name}\n" if len(heads) > 1 else "") + ascii_attention(labels, pattern, stripe))
    if config.html:
        title = f"{', '.join(f'L{layer}H{head}' for layer, head in heads)} on the prompt ({config.model})"
        files["attention_view.html"] = AttentionView(labels, heads, patterns, view_targets(probe.tokens), title).html
    return results, files, "\n\n".join(views)
