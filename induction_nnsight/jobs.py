"""Jobs: typed settings in, results and chart files out. The CLI and scripts call these."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .charts import head_heatmap_figure, loss_by_position_figure
from .errors import InductionError
from .models import DEFAULT_MODEL, load_model, model_facts
from .remote import DEFAULT_TIMEOUT, RemoteSettings, describe_transfers, resolve_host
from .report import top_heads
from .scan import half_losses, scan
from .tokens import DEFAULT_HIGH, DEFAULT_LOW, repeated_tokens


@dataclass
class ScanConfig:
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

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        if not self.timeout > 0:
            raise InductionError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.batch < 1:
            raise InductionError(f"--batch must be at least 1, got {self.batch}")
        if self.seq_len < 1:
            raise InductionError(f"--seq-len must be at least 1, got {self.seq_len}")
        if self.top < 1:
            raise InductionError(f"--top must be at least 1, got {self.top}")
        if not 0 <= self.low < self.high:
            raise InductionError(f"token range [{self.low}, {self.high}) is empty: pass 0 <= --low < --high")


def scan_tokens(model, config: ScanConfig):
    """Repeated tokens for ``config``, checked against the model's vocabulary and context.

    Returns:
        ``LongTensor[batch, bos + 2 * seq_len]``.
    """
    facts = model_facts(model)
    length = int(config.bos) + 2 * config.seq_len
    if facts.n_ctx is not None and length > facts.n_ctx:
        raise InductionError(
            f"rows of {length} tokens exceed {config.model}'s context of {facts.n_ctx}: "
            f"pass --seq-len {(facts.n_ctx - int(config.bos)) // 2} or less"
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
    )


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
    from .outputs import to_json

    config.validate()
    remote = remote_settings(config)
    if model is None:
        model = load_model(config.model, attn_implementation=config.attn_implementation, remote=config.remote)
    tokens = scan_tokens(model, config)
    result = scan(model, tokens, config.seq_len, remote=remote or False)
    first, repeated = half_losses(result.loss_by_position, config.seq_len, config.bos)
    facts = model_facts(model)
    results = {
        "model": config.model,
        "model_facts": {**asdict(facts), "name": config.model},
        "settings": asdict(config),
        "n_tokens_per_row": int(tokens.shape[1]),
        "loss_by_position": [round(float(v), 6) for v in result.loss_by_position],
        "mean_loss_first_half": round(first, 6),
        "mean_loss_repeated_half": round(repeated, 6),
        "induction_scores": [[round(float(v), 6) for v in row] for row in result.induction_scores],
        "top_heads": top_heads(result.induction_scores, config.top),
    }
    if remote is not None:  # what crossed the network (never the API key)
        results["ndif"] = {"host": resolve_host(remote.host), **describe_transfers(remote.transfers)}
    loss_fig = loss_by_position_figure(
        results["loss_by_position"], config.seq_len, config.bos,
        title=f"Loss by position, {config.batch} x repeated {config.seq_len} random tokens ({config.model})",
    )
    score_fig = head_heatmap_figure(
        results["induction_scores"], title=f"Induction score per head ({config.model})", colorbar_title="induction score"
    )
    files = {
        "loss_by_position.json": loss_fig.to_json(),
        "induction_scores.json": score_fig.to_json(),
        "scan_results.json": to_json(results),
    }
    return results, files
