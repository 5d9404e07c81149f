"""The clean/corrupted pair behind ``induction-nnsight patch``, built from its settings and checked against
the model."""

from __future__ import annotations

import torch

from ..causal.pairs import Pair, repeated_pair, text_pair
from ..errors import InductionError
from ..models.layout import model_facts
from .jobs import scan_tokens

__all__ = ["pair_for"]


def pair_for(model, config) -> Pair:
    """The clean/corrupted pair a ``patch`` job's settings ask for, checked against the model.

    ``--pair repeated``: repeated random tokens whose first copy is corrupted (``--seeds`` draws pooled);
    ``--pair text``: the clean and corrupted texts with their metric.

    Raises:
        InductionError: On settings the model cannot honour (no BOS, no tokenizer, tokens outside the
            vocabulary, a metric the pair does not take).
    """
    facts = model_facts(model)
    if config.bos and facts.bos_token_id is None:
        raise InductionError(f"{config.model} has no BOS token: pass --no-bos")
    bos = facts.bos_token_id if config.bos else None
    if config.pair == "repeated":
        if config.high > facts.vocab_size:
            raise InductionError(
                f"token range exceeds the vocabulary of {facts.vocab_size}: pass --high {facts.vocab_size} or less"
            )
        scan_tokens(model, config)  # checks the rows against the model's context and BOS
        pairs = [
            repeated_pair(
                config.batch,
                config.seq_len,
                seed=config.seed + i,
                low=config.low,
                high=config.high,
                bos_token_id=bos,
                vocab_size=facts.vocab_size,
            )
            for i in range(config.seeds)
        ]
        pair = pairs[0]  # --seeds: the rows of every seed's draw, pooled
        pair.clean = torch.cat([p.clean for p in pairs])
        pair.corrupted = torch.cat([p.corrupted for p in pairs])
        pair.description += f", seeds {config.seed}..{config.seed + config.seeds - 1}" if config.seeds > 1 else ""
        if config.metric not in (None, "loss"):
            raise InductionError("the repeated pair is scored by its repeated-half loss: drop --metric")
        return pair
    if model.tokenizer is None:
        raise InductionError(f"{config.model} has no tokenizer: use --pair repeated")
    pair = text_pair(
        model.tokenizer,
        config.clean,
        config.corrupted,
        correct=config.correct,
        wrong=config.wrong,
        metric=config.metric,
        bos_token_id=bos,
    )
    return pair
