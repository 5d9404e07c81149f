"""Head taxonomy: every head's previous-token, duplicate-token, induction, prefix-matching,
attention-sink and copying scores, all from one forward pass.

Each layer's attention pattern is reduced inside the trace as soon as it exists,
so no more than one layer's ``[batch, head, query, key]`` pattern is alive at a
time and what is saved is ``[batch, n_layers, n_heads]`` per kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nnsight
import torch
from einops import einsum, rearrange

from ..models.attention import (
    PRE_ATTENTION_NORMS,
    VALUE_PROJECTIONS,
    attention_call_name,
    attention_modules,
    attention_paths,
    attention_pattern,
    child_named,
    final_norm_path,
    output_projection_paths,
)
from ..models.loading import model_facts
from ..ndif.backend import remote_backend
from ..ndif.settings import Remote, on_ndif
from .reductions import (
    diagonal_score_per_row,
    duplicate_token_mask,
    first_token_score,
    induction_token_mask,
    masked_attention_score,
    per_position_loss,
)
from ..probes.tokens import PatternBatch

PATTERN_KINDS = ("previous_token", "duplicate_token", "induction", "induction_exact", "prefix_matching", "bos")
HEAD_KINDS = (*PATTERN_KINDS, "copying", "copying_ov")

KIND_DESCRIPTIONS = {
    "previous_token": "attention from each token to the one before it",
    "duplicate_token": "attention to earlier positions holding the same token",
    "induction": "mean attention on the diagonal at offset 1 - seq_len (clean repeats)",
    "induction_exact": "attention to the position after each earlier copy of the current token (any text)",
    "prefix_matching": "the same token-match attention, over queries in the repeated copies (Olsson et al.)",
    "bos": "attention to the first token (an attention sink)",
    "copying": "how much the head's output raises the logit of the token it attends to (logits, before the final norm's scaling)",
    "copying_ov": "OV-circuit eigenvalue score: sum of eigenvalues over sum of their absolute values",
}


@dataclass
class HeadScores:
    """Scores of one pass.

    Attributes:
        per_row: ``kind -> [batch, n_layers, n_heads]`` for the activation-based kinds.
        weights: ``kind -> [n_layers, n_heads]`` for weight-only kinds (``copying_ov``).
        loss_by_position: ``[pos - 1]`` mean next-token loss.
    """

    per_row: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    loss_by_position: torch.Tensor | None = None

    def mean(self, kind: str) -> torch.Tensor:
        """``[n_layers, n_heads]`` score of ``kind``, averaged over rows (ignoring NaN rows)."""
        if kind in self.weights:
            return self.weights[kind]
        return self.per_row[kind].nanmean(0)

    @property
    def kinds(self) -> list[str]:
        return [*self.per_row, *self.weights]


def copying_logit_boost(
    pattern: torch.Tensor,
    head_input: torch.Tensor,
    w_out: torch.Tensor,
    unembed: torch.Tensor,
    unembed_mean: torch.Tensor,
    tokens: torch.Tensor,
    center: bool,
) -> torch.Tensor:
    """Direct effect of each head on the logit of the token it attends to most, against the vocabulary mean.

    Args:
        pattern: ``[batch, head, query, key]``.
        head_input: ``[batch, query, head * d_head]`` the input of the output projection.
        w_out: ``[d_model, head * d_head]`` the output projection.
        unembed: ``[vocab, d_model]`` unembedding, already scaled by the final norm's weight.
        unembed_mean: ``[d_model]`` its mean over the vocabulary.
        tokens: ``[batch, pos]``.
        center: Subtract the mean over ``d_model`` first (LayerNorm does; RMSNorm does not).

    Returns:
        ``[batch, head, query]`` logit boost before the final norm divides by the residual's scale.
    """
    n_heads = pattern.shape[1]
    z = rearrange(head_input, "batch query (head d_head) -> batch head query d_head", head=n_heads)
    w = rearrange(w_out, "d_model (head d_head) -> head d_head d_model", head=n_heads)
    out = einsum(z.float(), w.float(), "batch head query d_head, head d_head d_model -> batch head query d_model")
    if center:
        out = out - out.mean(-1, keepdim=True)
    attended = tokens.gather(1, pattern.argmax(-1).flatten(1)).view(pattern.shape[:3])  # [batch, head, query]
    direction = unembed[attended].float() - unembed_mean  # [batch, head, query, d_model]
    return (out * direction).sum(-1)


def copying_score(boost: torch.Tensor, residual: torch.Tensor, query_mask: torch.Tensor, center: bool) -> torch.Tensor:
    """Copying in logit units: the boosts divided by the final norm's scale, averaged over queries.

    Args:
        boost: ``[batch, layer, head, query]`` from :func:`copying_logit_boost`.
        residual: ``[batch, query, d_model]`` the input of the final norm.
        query_mask: ``[batch, query]`` queries to average over.
        center: LayerNorm (divide by the standard deviation) rather than RMSNorm (by the root mean square).

    Returns:
        ``[batch, layer, head]``.
    """
    residual = residual.float()
    scale = residual.std(-1, unbiased=False) if center else residual.pow(2).mean(-1).sqrt()  # [batch, query]
    keep = query_mask[:, None, None].expand_as(boost)  # [batch, layer, head, query]
    # where(), not a product: a zero residual (a padding embedding) would give 0 / 0 at a masked query.
    ratio = torch.where(keep, boost / scale[:, None, None], torch.zeros_like(boost))
    return ratio.sum(-1) / keep.float().sum(-1)


def ov_copying_score(w_value: torch.Tensor, w_out: torch.Tensor, bridge: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Olsson et al.'s copying score of each head's full OV circuit ``W_U W_O W_V W_E``.

    The nonzero eigenvalues of the ``[vocab, vocab]`` circuit equal those of the
    ``[d_head, d_head]`` product ``W_V W_E^T W_U W_O``, which is what is computed.

    Args:
        w_value: ``[kv_head, d_head, d_model]`` (already scaled by the pre-attention norm).
        w_out: ``[d_model, head * d_head]``.
        bridge: ``[d_model, d_model]`` ``W_E^T W_U``, from embedding ``[vocab, d_model]`` and
            unembedding ``[vocab, d_model]`` (the latter scaled by the final norm).
        n_heads: Query heads; each key/value head serves ``n_heads // kv_head`` of them.

    Returns:
        ``[head]`` in ``[-1, 1]``: ``sum(eigenvalues) / sum(|eigenvalues|)``, 1 for a pure copier.
    """
    w_v = w_value.float().repeat_interleave(n_heads // w_value.shape[0], dim=0)  # [head, d_head, d_model]
    w_o = rearrange(w_out.float(), "d_model (head d_head) -> head d_model d_head", head=n_heads)
    circuit = w_v @ bridge.float() @ w_o  # [head, d_head, d_head]
    eigenvalues = torch.linalg.eigvals(circuit.double())
    return (eigenvalues.sum(-1).real / eigenvalues.abs().sum(-1)).float()


@dataclass
class _Layout:
    """Where the weights the copying scores need live (found outside the trace)."""

    o_paths: list[str]
    o_conv: bool
    v_paths: list[str | None]
    v_kind: str | None
    ln1_paths: list[str | None]
    final_norm: str | None
    final_is_layernorm: bool
    gemma_norms: bool
    unembed: str
    embed: str


def _module_path(model, target: torch.nn.Module) -> str:
    for path, module in model._module.named_modules():
        if module is target:
            return path
    raise KeyError(type(target).__name__)


def _layout(model) -> _Layout:
    module = model._module
    o_paths = output_projection_paths(model)
    v_paths, ln1_paths, v_kind = [], [], None
    for path in attention_paths(model):
        attention = module.get_submodule(path)
        name = child_named(attention, VALUE_PROJECTIONS)
        v_kind = name
        v_paths.append(f"{path}.{name}" if name else None)
        layer_path = path.rsplit(".", 1)[0]
        norm = child_named(module.get_submodule(layer_path), PRE_ATTENTION_NORMS)
        ln1_paths.append(f"{layer_path}.{norm}" if norm else None)
    final = final_norm_path(model)
    final_module = module.get_submodule(final) if final else None
    return _Layout(
        o_paths=o_paths,
        o_conv=type(module.get_submodule(o_paths[0])).__name__ == "Conv1D",
        v_paths=v_paths,
        v_kind=v_kind,
        ln1_paths=ln1_paths,
        final_norm=final,
        final_is_layernorm=isinstance(final_module, torch.nn.LayerNorm),
        gemma_norms="Gemma" in type(final_module).__name__ if final_module is not None else False,
        unembed=_module_path(model, module.get_output_embeddings()),
        embed=_module_path(model, module.get_input_embeddings()),
    )


def pattern_score(
    kind: str, pattern: torch.Tensor, batch: PatternBatch, duplicate: torch.Tensor, induction: torch.Tensor
) -> torch.Tensor:
    """One attention-pattern kind's ``[batch, head]`` score (see :data:`KIND_DESCRIPTIONS`).

    Args:
        kind: One of :data:`PATTERN_KINDS`.
        pattern: ``[batch, head, query, key]``.
        batch: The probe and its ground truth.
        duplicate: ``[batch, query, key]`` from :func:`~induction_nnsight.scores.reductions.duplicate_token_mask`.
        induction: ``[batch, query, key]`` from :func:`~induction_nnsight.scores.reductions.induction_token_mask`.
    """
    if kind == "previous_token":
        return diagonal_score_per_row(pattern, -1)
    if kind == "duplicate_token":
        return masked_attention_score(pattern, duplicate)
    if kind == "induction":
        return diagonal_score_per_row(pattern, 1 - batch.period)
    if kind == "induction_exact":
        return masked_attention_score(pattern, induction)
    if kind == "prefix_matching":
        return masked_attention_score(pattern, induction, batch.repeat_queries)
    return first_token_score(pattern)


def _weight(model, path: str, transpose: bool = False) -> torch.Tensor:
    weight = model.get(path).weight
    return weight.T if transpose else weight


def _scale(model, path: str | None, gemma: bool) -> torch.Tensor | float:
    if path is None or getattr(model.get(path), "weight", None) is None:
        return 1.0
    weight = model.get(path).weight
    return 1.0 + weight if gemma else weight


def _value_heads(weight: torch.Tensor, kind: str, n_heads: int, n_kv: int, d_head: int) -> torch.Tensor:
    """``[out, d_model]`` value-carrying weight -> ``[kv_head, d_head, d_model]``."""
    d_model = weight.shape[1]
    if kind == "v_proj":
        return weight.reshape(n_kv, d_head, d_model)
    if kind == "c_attn":  # GPT-2 stacks [q; k; v]
        return weight[2 * n_heads * d_head :].reshape(n_heads, d_head, d_model)
    return weight.reshape(n_heads, 3, d_head, d_model)[:, 2]  # GPT-NeoX interleaves per head


def head_scores(
    model, batch: PatternBatch, *, kinds: tuple[str, ...] = HEAD_KINDS, remote: Remote = False
) -> HeadScores:
    """Score every head for every kind in ``kinds`` from one forward pass.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        batch: The probe tokens and their ground truth (see ``induction_nnsight.probes.tokens``).
        kinds: Subset of :data:`HEAD_KINDS`.
        remote: Run the trace on NDIF (``True``, a host URL or ``RemoteSettings``).

    Returns:
        :class:`HeadScores` with ``[batch, n_layers, n_heads]`` per activation kind,
        ``[n_layers, n_heads]`` per weight kind, and the loss by position.
    """
    unknown = set(kinds) - set(HEAD_KINDS)
    if unknown:
        from ..errors import InductionError

        raise InductionError(f"unknown head kind(s) {sorted(unknown)}: choose from {', '.join(HEAD_KINDS)}")
    facts = model_facts(model)
    attentions = attention_modules(model)
    calls = [attention_call_name(a) for a in attentions]
    eager = facts.attn_implementation == "eager" and not on_ndif(remote)  # NDIF serves sdpa
    tokens = batch.tokens
    duplicate = duplicate_token_mask(tokens)
    induction = induction_token_mask(tokens)
    repeats = batch.repeat_queries
    layout = _layout(model) if {"copying", "copying_ov"} & set(kinds) else None
    wanted = [k for k in PATTERN_KINDS if k in kinds and (k != "induction" or batch.period)]
    copying = "copying" in kinds
    copy_queries = repeats.any(0).nonzero().flatten()  # [q] positions where some row counts copying
    copying_ov = "copying_ov" in kinds and layout.v_kind is not None

    saved_copying = saved_ov = None  # only values saved inside the trace come back out of it
    with torch.no_grad(), model.trace(tokens, backend=remote_backend(model, remote)):
        rows = {kind: [] for kind in wanted}  # kind -> per layer [batch, head]
        boosts = []  # per layer [batch, head, query]: small, unlike the patterns
        if layout is not None:
            # [vocab, d_model], scaled by the final norm
            unembed = _weight(model, layout.unembed) * _scale(model, layout.final_norm, layout.gemma_norms)
            unembed_mean = unembed.float().mean(0)
        for layer, (attention, call) in enumerate(zip(attentions, calls)):
            pattern = attention_pattern(attention, eager, call)  # [batch, head, query, key]
            for kind in wanted:
                rows[kind].append(pattern_score(kind, pattern, batch, duplicate, induction))
            if copying:  # only at the queries that are averaged: half the work on two copies
                head_input = model.get(layout.o_paths[layer]).input[:, copy_queries]  # [batch, q, head * d_head]
                w_out = _weight(model, layout.o_paths[layer], transpose=layout.o_conv)
                boosts.append(copying_logit_boost(
                    pattern[:, :, copy_queries], head_input, w_out, unembed, unembed_mean, tokens,
                    layout.final_is_layernorm,
                ))
        saved_rows = nnsight.save({k: torch.stack(v, dim=1) for k, v in rows.items()})  # kind -> [batch, layer, head]
        if copying:
            residual = model.get(layout.final_norm or layout.unembed).input[:, copy_queries]  # [batch, q, d_model]
            saved_copying = nnsight.save(
                copying_score(torch.stack(boosts, 1), residual, repeats[:, copy_queries], layout.final_is_layernorm)
            )
        saved_loss = nnsight.save(per_position_loss(model.output.logits, tokens))
        if copying_ov:
            bridge = _weight(model, layout.embed).T @ unembed  # [d_model, d_model], once for all layers
            ov = []
            for layer in range(facts.n_layers):
                w_v = _value_heads(
                    _weight(model, layout.v_paths[layer], transpose=layout.v_kind == "c_attn"),
                    layout.v_kind, facts.n_heads, facts.n_kv_heads, facts.d_head,
                ) * _scale(model, layout.ln1_paths[layer], layout.gemma_norms)
                w_out = _weight(model, layout.o_paths[layer], transpose=layout.o_conv)
                ov.append(ov_copying_score(w_v, w_out, bridge, facts.n_heads))
            saved_ov = nnsight.save(torch.stack(ov))
    per_row = {k: v.detach().cpu() for k, v in saved_rows.items()}
    if saved_copying is not None:
        per_row["copying"] = saved_copying.detach().cpu()
    weights = {}
    if "copying_ov" in kinds:  # NaN where the value projection's layout is unknown
        weights["copying_ov"] = (
            saved_ov.detach().cpu() if saved_ov is not None else torch.full((facts.n_layers, facts.n_heads), float("nan"))
        )
    return HeadScores(per_row=per_row, weights=weights, loss_by_position=saved_loss.detach().cpu())

