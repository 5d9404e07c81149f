"""Independent routes to the package's numbers: plain transformers, no nnsight."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM


def plain_transformers_scan(model_dir, tokens: torch.Tensor, seq_len: int):
    """``(loss [pos - 1], induction scores [n_layers, n_heads])`` from ``output_attentions=True``.

    Scores walk the stripe position by position instead of using ``diagonal``.
    """
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager", dtype=torch.float32)
    with torch.no_grad():
        out = model(tokens, output_attentions=True)
    n = tokens.shape[1]
    loss = torch.stack([F.cross_entropy(out.logits[:, i], tokens[:, i + 1]) for i in range(n - 1)])
    queries = range(seq_len - 1, n)
    scores = torch.stack(
        [
            torch.stack([layer[:, :, q, q - seq_len + 1] for q in queries], dim=-1).mean(dim=(0, 2))
            for layer in out.attentions
        ]
    )
    return loss, scores


def plain_attentions(model_dir, tokens: torch.Tensor):
    """``(model, outputs)`` of a plain eager forward with attention weights and hidden states."""
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager", dtype=torch.float32)
    with torch.no_grad():
        return model, model(tokens, output_attentions=True, output_hidden_states=True)


def reference_kind_scores(attentions, tokens: torch.Tensor, period: int, second_start: int) -> dict:
    """Pattern-kind scores walked query by query: ``kind -> [n_layers, n_heads]``."""
    batch, n = tokens.shape
    out = {}
    for kind in ("previous_token", "duplicate_token", "induction_exact", "prefix_matching", "bos", "induction"):
        per_layer = []
        for layer in attentions:
            rows = []
            for b in range(batch):
                values = []
                for q in range(n):
                    row = layer[b, :, q]  # [head, key]
                    if kind == "previous_token" and q >= 1:
                        values.append(row[:, q - 1])
                    elif kind == "bos" and q >= 1:
                        values.append(row[:, 0])
                    elif kind == "induction" and q >= period - 1:
                        values.append(row[:, q - period + 1])
                    elif kind == "duplicate_token":
                        keys = [k for k in range(q) if tokens[b, k] == tokens[b, q]]
                        if keys:
                            values.append(row[:, keys].sum(-1))
                    elif kind in ("induction_exact", "prefix_matching"):
                        keys = [k for k in range(1, q + 1) if tokens[b, k - 1] == tokens[b, q]]
                        if keys and (kind == "induction_exact" or q >= second_start):
                            values.append(row[:, keys].sum(-1))
                rows.append(torch.stack(values).mean(0) if values else torch.full((layer.shape[1],), float("nan")))
            per_layer.append(torch.stack(rows).nanmean(0))
        out[kind] = torch.stack(per_layer)
    return out


# --- causal validation: head outputs edited by plain torch hooks --------------------------

_PROJECTIONS = ("o_proj", "c_proj")


def plain_model(model_dir):
    return AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager", dtype=torch.float32)


def plain_projections(model):
    """Each layer's attention output projection, found by walking the plain model."""
    found = []
    for name, module in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last in _PROJECTIONS and (".attn." in name or ".self_attn." in name):
            found.append(module)
    return found


def plain_head_inputs(model, tokens):
    """``[n_layers][batch, pos, n_heads * d_head]`` inputs of the output projections (pre-hooks)."""
    captured = []
    hooks = [
        p.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach().clone()))
        for p in plain_projections(model)
    ]
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def plain_edited_loss(model, tokens, n_heads, replace):
    """Loss by position ``[pos - 1]`` when ``replace(layer, x[batch, pos, head, d_head])`` rewrites head outputs."""

    def pre_hook(layer):
        def hook(_module, args):
            x = args[0]
            split = x.reshape(*x.shape[:2], n_heads, -1).clone()
            split = replace(layer, split)
            return (split.reshape(x.shape), *args[1:])

        return hook

    hooks = [p.register_forward_pre_hook(pre_hook(i)) for i, p in enumerate(plain_projections(model))]
    try:
        with torch.no_grad():
            logits = model(tokens).logits
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack([F.cross_entropy(logits[:, i], tokens[:, i + 1]) for i in range(tokens.shape[1] - 1)])
