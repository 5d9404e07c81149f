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
        [torch.stack([layer[:, :, q, q - seq_len + 1] for q in queries], dim=-1).mean(dim=(0, 2))
         for layer in out.attentions]
    )
    return loss, scores
