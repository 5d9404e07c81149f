"""Activation patching: run the corrupted input, paste in one clean activation, score.

Clean and corrupted rows run in the same forward pass (clean rows first, then
the corrupted rows once per patch), so each patch copies the clean activation
inside the trace and only the metric leaves it. Sites:

* each head's output (``[n_layers, n_heads]`` grid),
* the residual stream after each layer at each position (``[n_layers, pos]``),
* one head's queries, keys or values at each position (``[3, pos + 1]``; the
  last column patches every position). Under grouped-query attention a head's
  keys and values belong to its key/value head, shared by its group of query
  heads, so patching them patches the whole group's.

Each returns a :class:`~induction_nnsight.causal.patch_results.PatchResult`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...errors import InductionError
from ...models.attention import attention_calls, attention_modules, call_query_argument
from ...models.layout import model_facts, model_layout
from ...models.qkv import kv_head
from ...names import head_name
from ...ndif.execution import Execution, as_execution
from ..cost import passes, variants_cost
from ..head_outputs import head_edit
from ..head_weights import projection_slice
from ..intervals import recovery_interval
from ..metrics import CausalMetric, MetricFn, as_metric
from ..variants import Rows, _run_variant_rows
from .results import PatchResult

QKV = ("q", "k", "v")


def _check_pair(clean: torch.Tensor, corrupted: torch.Tensor) -> None:
    if clean.shape != corrupted.shape:
        raise InductionError(
            f"clean rows {tuple(clean.shape)} and corrupted rows {tuple(corrupted.shape)} differ in shape: "
            "pass a pair of the same batch and length"
        )


def _patch(model, pair, metric, n_variants, edit, execution: Execution | None, desc: str):
    """``(clean, corrupted, [n_variants - 1] patched, ([n - 1] low, [n - 1] high), cost)`` of ``pair = (clean,
    corrupted)`` rows, with each recovery's 95% interval over rows and the passes it ran; variant 0 of
    ``edit`` must patch nothing."""
    clean, corrupted = pair
    _check_pair(clean, corrupted)
    run = as_execution(execution)
    rows = _run_variant_rows(model, corrupted, n_variants, edit, metric, clean, run, desc)  # [n, batch]
    clean_rows = _run_variant_rows(model, clean, 1, None, metric, None, run.replace(progress=False), "clean")[0]
    interval = recovery_interval(rows[1:], rows[0], clean_rows)
    values = rows.mean(dim=1)
    # every variant's corrupted rows, the clean (source) rows once per trace, and the clean rows' own pass
    cost = variants_cost(n_variants, tuple(corrupted.shape), clean.shape[0], run) + passes(*clean.shape, forward=1)
    return float(clean_rows.mean()), float(values[0]), values[1:], interval, cost


def _grid(found: tuple, labels: tuple[list[str], list[str]], metric: CausalMetric, name: str) -> PatchResult:
    """The :class:`PatchResult` of :func:`_patch`'s output, its grid shaped by its ``(rows, columns)`` labels."""
    clean_value, corrupted_value, values, (low, high), cost = found
    shape = (len(labels[0]), len(labels[1]))
    return PatchResult(
        clean_value,
        corrupted_value,
        values.reshape(shape),
        rows=labels[0],
        columns=labels[1],
        metric=metric.label,
        model=name,
        ci_low=low.reshape(shape),
        ci_high=high.reshape(shape),
        cost=cost,
    )


def patch_heads(
    model,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    metric: CausalMetric | MetricFn,
    *,
    layers: Sequence[int] | None = None,
    execution: Execution | None = None,
) -> PatchResult:
    """Patch each head's clean output into the corrupted run, one head at a time.

    Args:
        model: An nnsight ``TransformersModel``.
        clean: ``[batch, pos]`` clean token ids.
        corrupted: ``[batch, pos]`` corrupted token ids.
        metric: What to recover.
        layers: Layers to sweep (all when None); other cells are NaN.
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote``, ``max_tokens``, ``max_rows``, ``progress``); None for the defaults.

    Returns:
        A :class:`PatchResult` with ``[n_layers, n_heads]`` grids.
    """
    metric = as_metric(metric)
    facts = model_facts(model)
    chosen = list(range(facts.n_layers)) if layers is None else list(layers)
    masks = torch.zeros(1 + len(chosen) * facts.n_heads, facts.n_layers, facts.n_heads, dtype=torch.bool)
    cells = [(layer, head) for layer in chosen for head in range(facts.n_heads)]
    for i, (layer, head) in enumerate(cells, 1):
        masks[i, layer, head] = True
    clean_value, corrupted_value, values, (low, high), cost = _patch(
        model,
        (clean, corrupted),
        metric,
        len(masks),
        head_edit(model, masks, "source"),
        execution,
        f"patching {len(cells)} heads",
    )
    grids = torch.full((3, facts.n_layers, facts.n_heads), float("nan"))  # values, low, high
    for i, (layer, head) in enumerate(cells):
        grids[:, layer, head] = torch.stack([values[i], low[i], high[i]])
    return PatchResult(
        clean_value,
        corrupted_value,
        grids[0],
        rows=[f"L{i}" for i in range(facts.n_layers)],
        columns=[f"H{h}" for h in range(facts.n_heads)],
        metric=metric.label,
        model=facts.name,
        ci_low=grids[1],
        ci_high=grids[2],
        cost=cost,
    )


def _positions(positions: Sequence[int] | None, n_pos: int) -> list[int]:
    chosen = list(range(n_pos)) if positions is None else list(positions)
    for p in chosen:
        if not 0 <= p < n_pos:
            raise InductionError(f"position {p} is outside 0..{n_pos - 1}: pass valid --positions")
    return chosen


def patch_residual(
    model,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    metric: CausalMetric | MetricFn,
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    execution: Execution | None = None,
) -> PatchResult:
    """Patch the clean residual stream after a layer at one position, for each (layer, position).

    Returns:
        A :class:`PatchResult` with ``[n_layers_swept, n_positions]`` grids.
    """
    metric = as_metric(metric)
    facts = model_facts(model)
    _check_pair(clean, corrupted)
    layer_list = list(range(facts.n_layers)) if layers is None else list(layers)
    for layer in layer_list:
        if not 0 <= layer < facts.n_layers:
            raise InductionError(f"layer {layer} is outside 0..{facts.n_layers - 1}: pass valid --layers")
    position_list = _positions(positions, clean.shape[1])
    cells = [(layer, p) for layer in layer_list for p in position_list]
    # masks[v, layer, pos]: variant v patches that layer's output at that position.
    masks = torch.zeros(1 + len(cells), facts.n_layers, clean.shape[1], dtype=torch.bool)
    for i, (layer, p) in enumerate(cells, 1):
        masks[i, layer, p] = True
    blocks = model_layout(model).blocks

    def edit(rows: Rows) -> None:
        chosen = masks[rows.start : rows.stop]
        for layer in torch.nonzero(chosen.any(dim=(0, 2))).flatten().tolist():
            block = model.get(blocks[layer])
            output = block.output
            hidden = output[0] if isinstance(output, tuple) else output  # [rows, pos, d_model]
            source, target = hidden[: rows.n_source], hidden[rows.n_source :]
            n_pos = hidden.shape[1]
            target = target.reshape(rows.n_variants, rows.batch, n_pos, -1)
            keep = chosen[:, layer].to(hidden.device).reshape(rows.n_variants, 1, n_pos, 1)
            target = torch.where(keep, source, target).reshape(-1, n_pos, hidden.shape[-1])
            new = torch.cat([source, target])
            block.output = (new, *output[1:]) if isinstance(output, tuple) else new

    found = _patch(
        model, (clean, corrupted), metric, len(masks), edit, execution, f"patching residual at {len(cells)} sites"
    )
    labels = ([f"L{layer}" for layer in layer_list], [str(p) for p in position_list])
    return _grid(found, labels, metric, facts.name)


def patch_qkv(
    model,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    metric: CausalMetric | MetricFn,
    layer: int,
    head: int,
    *,
    positions: Sequence[int] | None = None,
    execution: Execution | None = None,
) -> PatchResult:
    """Patch one head's clean queries, keys or values at each position (and at all at once).

    The states are those reaching the attention call (after rotary embeddings),
    read and replaced through nnsight's ``.source``.

    Returns:
        A :class:`PatchResult` with ``[3, n_positions + 1]`` grids: rows q, k, v;
        the last column patches every position.
    """
    metric = as_metric(metric)
    facts = model_facts(model)
    _check_pair(clean, corrupted)
    if not (0 <= layer < facts.n_layers and 0 <= head < facts.n_heads):
        raise InductionError(
            f"head {head_name(layer, head)} is outside the model's {facts.n_layers} x {facts.n_heads} heads"
        )
    n_pos = clean.shape[1]
    position_list = _positions(positions, n_pos)
    columns = [[p] for p in position_list] + [list(range(n_pos))]
    # masks[v, component, pos]
    masks = torch.zeros(1 + 3 * len(columns), 3, n_pos, dtype=torch.bool)
    for c in range(3):
        for j, cols in enumerate(columns):
            masks[1 + c * len(columns) + j, c, cols] = True
    attention = attention_modules(model)[layer]
    call = attention_calls(model)[layer]
    kv = kv_head(head, facts.n_heads, facts.n_kv_heads)

    first = call_query_argument(call)  # where the call takes the query (None: it takes no q/k/v)
    if first is None:
        return _patch_projections(model, (clean, corrupted), metric, (layer, head), masks, execution, columns)

    def edit(rows: Rows) -> None:
        chosen = masks[rows.start : rows.stop]  # [k, 3, pos]
        operation = getattr(attention.source, call)
        args, kwargs = operation.inputs
        states = list(args[first : first + 3])  # query [rows, q_head, pos, d], key/value [rows, kv_head, pos, d]
        for c in range(3):
            if not chosen[:, c].any():
                continue
            x = states[c]
            index = head if c == 0 else kv
            source, target = x[: rows.n_source], x[rows.n_source :]
            target = target.reshape(rows.n_variants, rows.batch, *x.shape[1:]).clone()
            keep = chosen[:, c].to(x.device).reshape(rows.n_variants, 1, n_pos, 1)
            target[:, :, index] = torch.where(keep, source[:, index], target[:, :, index])
            states[c] = torch.cat([source, target.reshape(-1, *x.shape[1:])])
        operation.inputs = ((*args[:first], *states, *args[first + 3 :]), kwargs)

    found = _patch(
        model, (clean, corrupted), metric, len(masks), edit, execution, f"patching {head_name(layer, head)} q/k/v"
    )
    return _grid(found, (list(QKV), [str(p) for p in position_list] + ["all"]), metric, facts.name)


def _patch_projections(model, pair, metric, head, masks, execution, columns) -> PatchResult:
    """q/k/v patching where the attention call takes no q/k/v (a family's own softmax under eager): the head's
    slice of the q/k/v projection outputs, before any rotary embedding (which acts position by position, so
    patching a position's slice there equals patching it after)."""
    facts, layout = model_facts(model), model_layout(model)
    layer, index = head
    n_pos = pair[0].shape[1]
    slices = [projection_slice(layout, layer, c, index) for c in QKV]  # (path, start, stop) per component

    def edit(rows: Rows) -> None:
        chosen = masks[rows.start : rows.stop]  # [k, 3, pos]
        for path in dict.fromkeys(p for p, _, _ in slices):
            module = model.get(path)
            out = module.output  # [rows, pos, features]
            source, target = out[: rows.n_source], out[rows.n_source :]
            target = target.reshape(rows.n_variants, rows.batch, *out.shape[1:]).clone()
            for c, (p, start, stop) in enumerate(slices):
                if p != path or not chosen[:, c].any():
                    continue
                keep = chosen[:, c].to(out.device).reshape(rows.n_variants, 1, n_pos, 1)
                target[..., start:stop] = torch.where(keep, source[..., start:stop], target[..., start:stop])
            module.output = torch.cat([source, target.reshape(-1, *out.shape[1:])])

    found = _patch(model, pair, metric, len(masks), edit, execution, f"patching {head_name(layer, index)} q/k/v")
    return _grid(found, (list(QKV), [str(p) for p in range(n_pos) if [p] in columns] + ["all"]), metric, facts.name)
