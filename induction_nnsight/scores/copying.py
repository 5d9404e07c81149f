"""Copying reductions: how much a head's output raises the logit of the token it attends to.

Two routes: :func:`copying_logit_boost` and :func:`copying_score` measure it on a run
(direct logit attribution through the final norm); :func:`ov_copying_score` from the
weights alone (the eigenvalues of the full OV circuit, Olsson et al. 2022).
"""

from __future__ import annotations

import torch
from einops import rearrange


def copying_logit_boost(
    pattern: torch.Tensor,
    head_input: torch.Tensor,
    w_out: torch.Tensor,
    unembed: torch.Tensor,
    unembed_mean: torch.Tensor,
    tokens: torch.Tensor,
    center: bool,
    final_scale: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """Direct effect of each head on the logit of the token it attends to most, against the vocabulary mean.

    Args:
        pattern: ``[batch, head, query, key]``.
        head_input: ``[batch, query, head * d_head]`` the input of the output projection.
        w_out: ``[d_model, head * d_head]`` the output projection.
        unembed: ``[vocab, d_model]`` unembedding as stored (only the attended rows are read and scaled).
        unembed_mean: ``[d_model]`` the mean over the vocabulary of the rows scaled by ``final_scale``.
        tokens: ``[batch, pos]``.
        center: Subtract the mean over ``d_model`` first (LayerNorm does; RMSNorm does not).
        final_scale: ``[d_model]`` the final norm's multiplier (1.0 without one).

    Returns:
        ``[batch, head, query]`` logit boost before the final norm divides by the residual's scale.
    """
    batch, n_heads, n_query = pattern.shape[:3]
    z = rearrange(head_input, "batch query (head d_head) -> batch head query d_head", head=n_heads)
    w = rearrange(w_out, "d_model (head d_head) -> head d_head d_model", head=n_heads)
    attended = tokens.gather(1, pattern.argmax(-1).flatten(1)).view(batch, n_heads, n_query)
    # gathered head-major, [head, batch * query, d_model], the layout the batched product reads (no copy
    # into it), and a fresh gather: edited in place
    direction = unembed.index_select(0, attended.transpose(0, 1).flatten().to(unembed.device)).float()
    direction = direction.view(n_heads, batch * n_query, unembed.shape[-1])
    direction.mul_(final_scale).sub_(unembed_mean)
    if center:  # centring the head's output over d_model is centring the direction (a dot product)
        direction.sub_(direction.mean(-1, keepdim=True))
    # (z W_O) . direction = z . (direction W_O^T): one d_model-wide block, the product d_head wide
    back = torch.bmm(direction, w.float().transpose(1, 2))  # [head, batch * query, d_head]
    back = rearrange(back, "head (batch query) d_head -> batch head query d_head", batch=batch)
    return (z.float() * back).sum(-1)


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
