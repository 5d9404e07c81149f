"""Where activation patching pastes a clean activation: one small type per place.

A site gives the labels of its grid, one mask per patched variant and the edit that pastes the clean
(source) rows into each variant's corrupted rows where its mask says (variant 0 patches nothing), as
TransformerLens' ``generic_activation_patch`` takes one ``patch_setter`` and one activation name:

* :class:`HeadSite`: each head's output (``[n_layers, n_heads]`` grid; layers not swept are NaN);
* :class:`ResidualSite`: the residual stream after each layer at each position (``[n_layers_swept, pos]``);
* :class:`QKVSite`: one head's queries, keys or values at each position (``[3, pos + 1]``; the last column
  patches every position). Under grouped-query attention a head's keys and values belong to its key/value
  head, shared by its group of query heads, so patching them patches the whole group's.

A new place to patch is one more class with a ``plan(model, n_pos) -> SitePlan`` method; the engine
(:func:`~induction_nnsight.causal.patching.engine.patch`) runs any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from ...errors import InductionError
from ...models.attention import attention_calls, attention_modules, call_query_argument
from ...models.layout import model_facts, model_layout
from ...models.qkv import kv_head
from ...names import head_name
from ..head_outputs import head_edit
from ..head_weights import projection_slice
from ..variants import Edit, Rows

__all__ = ["QKV", "HeadSite", "QKVSite", "ResidualSite", "Site", "SitePlan"]

QKV = ("q", "k", "v")


@dataclass(frozen=True)
class SitePlan:
    """What one site patches on rows of ``n_pos`` positions.

    Attributes:
        rows: Labels of the grid's rows.
        columns: Labels of its columns.
        cells: The grid cell ``(row, column)`` of each patched variant, in order (variant ``i + 1``).
        masks: ``[1 + len(cells), ...]`` bool, what each variant patches (variant 0: nothing).
        edit: Pastes the clean rows in where a variant's mask says, inside a trace.
        desc: The progress bar's label.
    """

    rows: list[str]
    columns: list[str]
    cells: list[tuple[int, int]]
    masks: torch.Tensor
    edit: Edit
    desc: str


class Site(Protocol):
    """A place to patch: anything with ``plan(model, n_pos) -> SitePlan``."""

    def plan(self, model, n_pos: int) -> SitePlan: ...


def _masks(entries: Sequence[tuple], shape: tuple[int, ...]) -> torch.Tensor:
    """``[1 + len(entries), *shape]`` bool: variant ``i + 1`` True at ``entries[i]`` (an index into ``shape``)."""
    masks = torch.zeros(1 + len(entries), *shape, dtype=torch.bool)
    for i, entry in enumerate(entries, 1):
        masks[i][entry] = True
    return masks


def _pasted(x: torch.Tensor, keep: torch.Tensor, rows: Rows, index: tuple = ()) -> torch.Tensor:
    """``x [rows, ..., pos, features]`` with the source rows pasted into each variant's rows where
    ``keep [variants, pos]`` is True, in the part ``x[:, *index]`` of each row (``[.., pos, features]``)."""
    source, target = x[: rows.n_source], x[rows.n_source :]
    target = target.reshape(rows.n_variants, rows.batch, *x.shape[1:]).clone()
    keep = keep.to(x.device).reshape(rows.n_variants, 1, keep.shape[-1], 1)
    at = (slice(None), slice(None), *index)
    target[at] = torch.where(keep, source[(slice(None), *index)], target[at])
    return torch.cat([source, target.reshape(-1, *x.shape[1:])])


def _indices(chosen: Sequence[int] | None, n: int, what: str) -> list[int]:
    """``chosen`` (every one of ``0..n - 1`` when None), each checked to lie in ``0..n - 1``; ``what``:
    ``"layer"`` or ``"position"``."""
    found = list(range(n)) if chosen is None else list(chosen)
    for i in found:
        if not 0 <= i < n:
            raise InductionError(f"{what} {i} is outside 0..{n - 1}: pass valid --{what}s")
    return found


@dataclass(frozen=True)
class HeadSite:
    """Each head's output, one head at a time.

    Attributes:
        layers: Layers to sweep (all when None); the other rows of the grid are NaN.
    """

    layers: Sequence[int] | None = None

    def plan(self, model, n_pos: int) -> SitePlan:
        facts = model_facts(model)
        layers = _indices(self.layers, facts.n_layers, "layer")
        cells = [(layer, head) for layer in layers for head in range(facts.n_heads)]
        masks = _masks(cells, (facts.n_layers, facts.n_heads))
        rows = [f"L{i}" for i in range(facts.n_layers)]
        columns = [f"H{h}" for h in range(facts.n_heads)]
        return SitePlan(rows, columns, cells, masks, head_edit(model, masks, "source"), f"patching {len(cells)} heads")


@dataclass(frozen=True)
class ResidualSite:
    """The residual stream after a layer at one position, for each (layer, position).

    Attributes:
        layers: Layers whose output is patched (all when None).
        positions: Positions patched (all when None).
    """

    layers: Sequence[int] | None = None
    positions: Sequence[int] | None = None

    def plan(self, model, n_pos: int) -> SitePlan:
        layer_list = _indices(self.layers, model_facts(model).n_layers, "layer")
        position_list = _indices(self.positions, n_pos, "position")
        entries = [(layer, p) for layer in layer_list for p in position_list]
        masks = _masks(entries, (model_facts(model).n_layers, n_pos))  # [v, layer, pos]
        blocks = model_layout(model).blocks

        def edit(rows: Rows) -> None:
            chosen = masks[rows.start : rows.stop]
            for layer in torch.nonzero(chosen.any(dim=(0, 2))).flatten().tolist():
                block = model.get(blocks[layer])
                output = block.output
                hidden = output[0] if isinstance(output, tuple) else output  # [rows, pos, d_model]
                new = _pasted(hidden, chosen[:, layer], rows)
                block.output = (new, *output[1:]) if isinstance(output, tuple) else new

        cells = [(i, j) for i in range(len(layer_list)) for j in range(len(position_list))]
        labels = [f"L{layer}" for layer in layer_list], [str(p) for p in position_list]
        return SitePlan(*labels, cells, masks, edit, f"patching residual at {len(cells)} sites")


@dataclass(frozen=True)
class QKVSite:
    """One head's queries, keys or values at each position, and at every position at once.

    The states are those reaching the attention call (after rotary embeddings), read and replaced
    through nnsight's ``.source``; where the call takes no q/k/v (a family's own softmax under eager),
    the head's slice of the q/k/v projection outputs, before any rotary embedding (which acts position
    by position, so patching a position's slice there equals patching it after).

    Attributes:
        layer: The head's layer.
        head: The head (a query head; its key/value head is patched for ``k`` and ``v``).
        positions: Positions patched one at a time (all when None).
    """

    layer: int
    head: int
    positions: Sequence[int] | None = None

    def plan(self, model, n_pos: int) -> SitePlan:
        facts = model_facts(model)
        layer, head = self.layer, self.head
        if not (0 <= layer < facts.n_layers and 0 <= head < facts.n_heads):
            raise InductionError(
                f"head {head_name(layer, head)} is outside the model's {facts.n_layers} x {facts.n_heads} heads"
            )
        position_list = _indices(self.positions, n_pos, "position")
        columns = [[p] for p in position_list] + [list(range(n_pos))]
        masks = _masks([(c, cols) for c in range(3) for cols in columns], (3, n_pos))  # [v, component, pos]
        call = attention_calls(model)[layer]
        first = call_query_argument(call)  # where the call takes the query (None: it takes no q/k/v)
        if first is None:
            edit = self._projection_edit(model, masks)
        else:
            attention = attention_modules(model)[layer]
            kv = kv_head(head, facts.n_heads, facts.n_kv_heads)

            def edit(rows: Rows) -> None:
                chosen = masks[rows.start : rows.stop]  # [k, 3, pos]
                operation = getattr(attention.source, call)
                args, kwargs = operation.inputs
                # query [rows, q_head, pos, d], key/value [rows, kv_head, pos, d]
                states = list(args[first : first + 3])
                for c in range(3):
                    if chosen[:, c].any():
                        states[c] = _pasted(states[c], chosen[:, c], rows, (head if c == 0 else kv,))
                operation.inputs = ((*args[:first], *states, *args[first + 3 :]), kwargs)

        cells = [(c, j) for c in range(3) for j in range(len(columns))]
        labels = list(QKV), [str(p) for p in position_list] + ["all"]
        return SitePlan(*labels, cells, masks, edit, f"patching {head_name(layer, head)} q/k/v")

    def _projection_edit(self, model, masks: torch.Tensor) -> Edit:
        """The edit on the head's slices of the q/k/v projection outputs (``[rows, pos, features]``)."""
        layout = model_layout(model)
        slices = [projection_slice(layout, self.layer, c, self.head) for c in QKV]  # (path, start, stop) each

        def edit(rows: Rows) -> None:
            chosen = masks[rows.start : rows.stop]  # [k, 3, pos]
            for path in dict.fromkeys(p for p, _, _ in slices):
                module = model.get(path)
                out = module.output
                for c, (p, start, stop) in enumerate(slices):
                    if p == path and chosen[:, c].any():
                        out = _pasted(out, chosen[:, c], rows, (Ellipsis, slice(start, stop)))
                module.output = out

        return edit
