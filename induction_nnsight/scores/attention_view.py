"""The interactive attention view of a model: several heads' patterns from one trace, drawn by
:func:`~induction_nnsight.figures.attention_html.attention_html`, for a notebook or a file.

Example (Jupyter shows the returned object inline)::

    from induction_nnsight import attention_view, load_model, repeated_probe

    model = load_model("smollm2-135m")
    attention_view(model, "The quick brown fox jumps over the lazy dog.", "L18H6,L16H0", repeat=2)
    probe = repeated_probe(1, 20, bos_token_id=model.tokenizer.bos_token_id)
    attention_view(model, probe, [(18, 6), (16, 0)]).save("attention_view.html")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InductionError
from ..figures.attention_html import attention_fragment, attention_html
from ..models.layout import model_facts
from ..names import check_heads, head_name, parse_heads
from ..ndif.execution import Execution
from ..probes.tokens import Probe, text_probe
from .reductions import induction_token_mask
from .scan import heads_attention

__all__ = ["AttentionView", "Heads", "attention_view", "view_targets"]

Heads = str | tuple[int, int] | list[tuple[int, int]]


def view_targets(tokens: torch.Tensor) -> dict[str, list[list[int]]]:
    """What the view outlines for each query of one row: the induction target (the keys right
    after an earlier copy of the query's token, :func:`~induction_nnsight.scores.reductions.induction_token_mask`)
    and the previous token.

    Args:
        tokens: ``[pos]`` or ``[1, pos]`` token ids.

    Returns:
        ``{"induction target": [query][keys], "previous token": [query][keys]}``.
    """
    row = tokens.reshape(1, -1)
    mask = induction_token_mask(row)[0]  # [query, key]
    return {
        "induction target": [torch.nonzero(m).flatten().tolist() for m in mask],
        "previous token": [[q - 1] if q else [] for q in range(row.shape[1])],
    }


@dataclass
class AttentionView:
    """A drawn attention view: shows itself in Jupyter (``_repr_html_``), ``.html`` is a whole
    page, ``.save(path)`` writes it.

    Attributes:
        tokens: ``[pos]`` token strings.
        heads: ``[head]`` ``(layer, head)`` pairs.
        weights: ``[head, query, key]`` attention probabilities.
        targets: ``{name: [query][keys]}`` outlined targets.
        title: The line above the view.
    """

    tokens: list[str]
    heads: list[tuple[int, int]]
    weights: torch.Tensor
    targets: dict[str, list[list[int]]]
    title: str = ""

    @property
    def labels(self) -> list[str]:
        """``["L18H6", ...]``."""
        return [head_name(h) for h in self.heads]

    def _args(self) -> tuple:
        return self.tokens, self.weights.tolist(), self.labels

    @property
    def html(self) -> str:
        """The self-contained page (no network)."""
        return attention_html(*self._args(), targets=self.targets, title=self.title)

    def _repr_html_(self) -> str:
        return attention_fragment(*self._args(), targets=self.targets, title=self.title)

    def save(self, path: str | Path) -> Path:
        """Write :attr:`html` to ``path`` (UTF-8); returns the path."""
        path = Path(path)
        path.write_text(self.html, encoding="utf-8")
        return path


def _heads(heads: Heads) -> list[tuple[int, int]]:
    if isinstance(heads, str):
        return parse_heads(heads, option="heads")
    if isinstance(heads, tuple) and len(heads) == 2 and all(isinstance(v, int) for v in heads):
        return [heads]
    found = [tuple(h) for h in heads]
    if not found or any(len(h) != 2 for h in found):
        raise InductionError(f"cannot read heads {heads!r}: pass 'L18H6,L17H3' or [(18, 6), (17, 3)]")
    return [(int(layer), int(head)) for layer, head in found]


def _row(model, text_or_tokens, repeat: int, bos: bool) -> torch.Tensor:
    """``[1, pos]`` token ids: a text tokenized and repeated (BOS first), a probe's first row,
    or token ids as given."""
    if isinstance(text_or_tokens, str):
        if repeat < 1:
            raise InductionError(f"repeat must be at least 1, got {repeat}")
        ids = model.tokenizer(text_or_tokens, add_special_tokens=False)["input_ids"]
        bos_id = model_facts(model).bos_token_id if bos else None
        return text_probe(ids, n_repeats=repeat, bos_token_id=bos_id).tokens
    tokens = text_or_tokens.tokens if isinstance(text_or_tokens, Probe) else text_or_tokens
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    tokens = tokens[:1] if tokens.dim() == 2 else tokens.reshape(1, -1)
    if tokens.numel() == 0:
        raise InductionError("no tokens to show: pass a non-empty text or token row")
    return tokens


def attention_view(
    model,
    text_or_tokens,
    heads: Heads,
    *,
    repeat: int = 1,
    bos: bool = True,
    title: str | None = None,
    execution: Execution | None = None,
) -> AttentionView:
    """An interactive view of where the given heads attend, token by token.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        text_or_tokens: A text (tokenized without special tokens, repeated ``repeat`` times,
            after the BOS token when ``bos``), a :class:`~induction_nnsight.probes.tokens.Probe`
            (its first row) or token ids ``[pos]`` / ``[batch, pos]`` (the first row, as given).
        heads: ``"L18H6,L17H3"``, ``(18, 6)`` or ``[(18, 6), (17, 3)]``.
        repeat: Copies of a text (2 makes the induction target appear on real text).
        bos: Prepend the model's BOS token to a text.
        title: The line above the view (default: the heads and the model).
        execution: How the trace runs (:class:`~induction_nnsight.ndif.execution.Execution`;
            ``remote`` for NDIF); None for the defaults.

    Returns:
        An :class:`AttentionView` with ``weights [head, query, key]``.

    Raises:
        InductionError: On a malformed head, a head outside the model or a row longer than its context.
    """
    chosen = _heads(heads)
    facts = model_facts(model)
    check_heads(chosen, facts.n_layers, facts.n_heads, option="heads")
    tokens = _row(model, text_or_tokens, repeat, bos)
    if facts.n_ctx is not None and tokens.shape[1] > facts.n_ctx:
        raise InductionError(f"{tokens.shape[1]} tokens exceed the model's context of {facts.n_ctx}: pass fewer")
    weights = heads_attention(model, tokens, chosen, execution=execution)
    labels = [model.tokenizer.decode([t]) for t in tokens[0].tolist()]
    if title is None:
        name = Path(facts.name).name if Path(facts.name).is_absolute() else facts.name  # a cache path: its name
        title = f"{', '.join(map(head_name, chosen))} on {tokens.shape[1]} tokens ({name})"
    return AttentionView(labels, chosen, weights, view_targets(tokens), title)
