"""Every command on every decoder family (issue 26), each checked against an independent route.

Each family is a tiny random model built from its transformers config (its own implementation), with
its attention weights scaled up (:func:`sharpen`) so patterns are peaked and every comparison below
discriminates. Per family and attention implementation it offers:

* scan and heads: the induction (and previous-token) scores equal those read from transformers' eager
  ``output_attentions``, to ``ATOL``;
* ablate: the loss by position with a head zeroed equals a plain forward whose output projection's
  input has that head's slice zeroed by a torch pre-hook;
* patch: one head's clean output patched into the corrupted run equals the same patch by plain hooks;
* circuit: path patching (``k``, ``q``, ``v``, ``total``) equals :func:`plain_path`, plain hooks that
  recompute the target's q/k/v slice with the model's own norm modules (through the sender's own
  post-attention norm module in post-norm blocks);
* dual-route: the value-weighted attention scores equal eager ``output_attentions`` weighted by the value
  norms read from the value projection's slice, and the copying sweep (prefix-cached) equals a plain
  forward-pre-hook patch of one head at the second-to-last position on whole rows;
* estimate: every head's attribution-patching estimate equals ``g . (0 - z)`` from plain autograd, and
  ``circuit --search estimate`` with nothing verified gives the exact k/q/v scores (its QK-fixed probes).

Each passing test attaches what it checked to its report; ``tests/conftest.py`` gathers the reports of
every worker into the matrix (``docs/families.json``, rendered by the docs) and fails the session when
the committed file is stale (``UPDATE_FAMILIES=1`` rewrites it): see ``tests/families.py``.

Fast tier: tiny models, about 270 checks over 20 families (two of them Llamas whose attention modules carry
no familiar names, detected by what they compute) in well under a minute on one worker.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from induction_nnsight import Execution, load_model, repeated_tokens
from induction_nnsight.causal.ablation.estimators import head_estimate
from induction_nnsight.causal.ablation.sweep import ablate_heads
from induction_nnsight.causal.dual_route.attention import value_weighted_attention
from induction_nnsight.causal.dual_route.copying import COPYING_TARGETS, copying_sweep
from induction_nnsight.causal.dual_route.prompts import RandomTokens, copying_prompts
from induction_nnsight.causal.metrics import RowMetric
from induction_nnsight.causal.pairs import Pair
from induction_nnsight.causal.patching.engine import patch_heads
from induction_nnsight.causal.paths.patching import Ablation, PathVariant, path_patching
from induction_nnsight.causal.paths.search import path_search
from induction_nnsight.models.layout import model_layout
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.heads import head_scores
from induction_nnsight.scores.scan import scan
from tests.conftest import TINY_BOS, save_tiny_model
from tests.families import FAMILIES, PROPERTY, ROUTES, entry
from tests.reference import reference_kind_scores

# one worker process builds each tiny model once
pytestmark = pytest.mark.xdist_group("families")

ATOL = 1e-5
SEQ = 6
BATCH = 2

IDS = [f"{FAMILIES[f][0]}-{a}" for f, a in ROUTES]
_ATTENTION_WEIGHTS = (
    "c_attn",
    "attn.c_proj",
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "qkv_proj",
    "query_key_value",
    "attention.dense",
    "self_attention.dense",
    "out_proj",
    "q_norm",
    "k_norm",
    "self_attn.inner.",  # tests/conftest.py's Llamas with unfamiliar attention modules
    "self_attn.Wqkv",
    "self_attn.wo",
)


def sharpen(model) -> None:
    """Scale every attention weight (and q/k norm weights, which q/k norms would otherwise undo) up 10x."""
    for name, param in model.named_parameters():
        if any(k in name for k in _ATTENTION_WEIGHTS) and ".mlp." not in name and name.endswith("weight"):
            param.mul_(10.0)


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """``family(name, attn) -> (nnsight model, saved dir)``, each tiny model built and loaded once."""
    dirs, models = {}, {}

    def get(name: str, attn: str = "eager"):
        arch = FAMILIES[name][0]
        if arch not in dirs:
            dirs[arch] = save_tiny_model(arch, tmp_path_factory.mktemp(f"family-{arch}"), sharpen)
        if (arch, attn) not in models:
            models[arch, attn] = load_model(str(dirs[arch]), attn_implementation=attn, progress=False)
        return models[arch, attn], dirs[arch]

    return get


@pytest.fixture(scope="module")
def plain(family):
    """``plain(name) -> the plain transformers model (eager, float32)``, once per family."""
    from transformers import AutoModelForCausalLM

    made = {}

    def get(name: str):
        if name not in made:
            made[name] = AutoModelForCausalLM.from_pretrained(
                str(family(name)[1]), attn_implementation="eager", dtype=torch.float32
            ).eval()
        return made[name]

    return get


def record(record_property, name: str, attn: str, command: str, model) -> None:
    """Attach what this passing test checked to its report (gathered into the matrix by tests/families.py)."""
    record_property(PROPERTY, entry(name, attn, command, model_layout(model)))


def tokens(seed: int = 0) -> torch.Tensor:
    return repeated_tokens(BATCH, SEQ, seed=seed, low=1, high=128, bos_token_id=TINY_BOS)


def _eager(plain_model, rows):
    with torch.no_grad():
        return plain_model(rows, output_attentions=True)


def _diagonal(pattern: torch.Tensor) -> torch.Tensor:
    """``[..., head]`` mean attention from each repeated query to the token after its earlier copy."""
    n = pattern.shape[-1]
    return torch.stack([pattern[..., q, q - SEQ + 1] for q in range(SEQ - 1, n)], -1).mean(-1)


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_the_detected_layout_passes_its_check(family, name, attn):
    """The one-pass layout check (pattern sums, values through the value layout, o_proj, norms) accepts what
    detection found on every family."""
    from induction_nnsight.models.validation import set_layout

    model, _ = family(name, attn)
    detected = model_layout(model)
    # only OLMo-2 feeds its attention the residual itself (the plain route below reads the layout's norms)
    assert (detected.pre_attention_norm[0] is None) == (name == "OLMo-2"), detected.pre_attention_norm
    checked = set_layout(model)
    assert (checked.value_layout, checked.attention_call, checked.norm) == (
        detected.value_layout,
        detected.attention_call,
        detected.norm,
    )


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_scan(family, plain, record_property, name, attn):
    model, _ = family(name, attn)
    rows = tokens()
    result = scan(model, rows, SEQ)
    out = _eager(plain(name), rows)
    expected = torch.stack([_diagonal(layer).mean(0) for layer in out.attentions])  # [layer, head]
    assert torch.allclose(result.induction_scores, expected, atol=ATOL), (result.induction_scores, expected)
    loss = torch.stack([F.cross_entropy(out.logits[:, i], rows[:, i + 1]) for i in range(rows.shape[1] - 1)])
    assert torch.allclose(result.loss_by_position, loss, atol=ATOL)
    assert expected.max() - expected.min() > 100 * ATOL  # the heads differ: the comparison discriminates
    record(record_property, name, attn, "scan", model)


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_heads(family, plain, record_property, name, attn):
    model, _ = family(name, attn)
    probe = repeated_probe(BATCH, SEQ, seed=1, low=1, high=128, bos_token_id=TINY_BOS)
    found = head_scores(model, probe, kinds=("induction", "previous_token", "duplicate_token"))
    expected = reference_kind_scores(_eager(plain(name), probe.tokens).attentions, probe.tokens, SEQ, SEQ + 1)
    for kind in ("induction", "previous_token", "duplicate_token"):
        assert torch.allclose(found.mean(kind), expected[kind], atol=ATOL, equal_nan=True), kind
    record(record_property, name, attn, "heads", model)


def _o_proj(plain_model, model, layer):
    return plain_model.get_submodule(model_layout(model).o_proj[layer])


def _edit_head(layer_in: torch.Tensor, head: int, d_head: int, value) -> torch.Tensor:
    x = layer_in.reshape(*layer_in.shape[:2], -1, d_head).clone()
    x[:, :, head] = value
    return x.reshape(layer_in.shape)


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_ablate(family, plain, record_property, name, attn):
    model, _ = family(name, attn)
    rows, d_head = tokens(), model_layout(model).facts.d_head
    got = ablate_heads(model, rows, [(1, 2)])
    hook = _o_proj(plain(name), model, 1).register_forward_pre_hook(lambda _m, a: (_edit_head(a[0], 2, d_head, 0.0),))
    try:
        out = _eager(plain(name), rows)
    finally:
        hook.remove()
    expected = torch.stack([F.cross_entropy(out.logits[:, i], rows[:, i + 1]) for i in range(rows.shape[1] - 1)])
    assert torch.allclose(got, expected, atol=ATOL)
    record(record_property, name, attn, "ablate", model)


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_patch(family, plain, record_property, name, attn):
    model, _ = family(name, attn)
    clean, corrupted = tokens(0), tokens(3)
    d_head = model_layout(model).facts.d_head
    metric = RowMetric("loss", loss_positions=slice(SEQ + 1, 2 * SEQ))
    result = patch_heads(model, Pair(clean, corrupted, metric), layers=[1], execution=Execution(progress=False))
    captured = []
    o_proj = _o_proj(plain(name), model, 1)
    hook = o_proj.register_forward_pre_hook(lambda _m, a: captured.append(a[0].detach().clone()))
    try:
        _eager(plain(name), clean)
    finally:
        hook.remove()
    for head in range(model_layout(model).facts.n_heads):
        hook = o_proj.register_forward_pre_hook(
            lambda _m, a, h=head: (
                _edit_head(a[0], h, d_head, captured[0].reshape(*a[0].shape[:2], -1, d_head)[:, :, h]),
            )
        )
        try:
            out = _eager(plain(name), corrupted)
        finally:
            hook.remove()
        expected = torch.stack(
            [F.cross_entropy(out.logits[:, i], corrupted[:, i + 1]) for i in range(SEQ + 1, 2 * SEQ)]
        ).mean()
        assert abs(float(result.values[1, head]) - float(expected)) < ATOL, (head, result.values[1], expected)
    record(record_property, name, attn, "patch", model)


def _slice(layout, layer: int, component: str, head: int) -> tuple[str, int, int]:
    """Where a head's q/k/v features sit, derived here from each family's code (not the package's arithmetic)."""
    facts = layout.facts
    d, n, kv = facts.d_head, facts.n_heads, facts.n_kv_heads
    index = head if component == "q" else head // (n // kv)
    c = "qkv".index(component)
    if layout.q_proj[layer] is not None:  # separate projections
        return (layout.q_proj, layout.k_proj, layout.v_proj)[c][layer], index * d, (index + 1) * d
    path = layout.v_proj[layer]
    if layout.value_layout == "stacked_qkv":  # [q heads; k heads; v heads]
        start = (0, n, n + kv)[c] * d + index * d
    elif layout.value_layout == "grouped_qkv":  # Falcon's view(batch, pos, kv, n // kv + 2, d): group by group
        per = n // kv
        start = ((head // per) * (per + 2) + head % per) * d if c == 0 else (index * (per + 2) + per + c - 1) * d
    else:  # per head [q_i; k_i; v_i]
        start = index * 3 * d + c * d
    return path, start, start + d


def plain_path(plain_model, layout, rows, source, target, path):
    """``(target's induction score, repeated-half loss)`` with ``source`` zeroed on ``path`` into ``target``."""
    facts = layout.facts
    d, n, group = facts.d_head, facts.n_heads, facts.n_heads // facts.n_kv_heads
    (ls, hs), (lt, ht) = source, target
    z, o_out, resid = {}, {}, {}
    o_mods = [plain_model.get_submodule(p) for p in layout.o_proj]
    blocks = [plain_model.get_submodule(b) for b in layout.blocks]
    hooks = [
        m.register_forward_hook(lambda _m, a, o, i=i: (z.__setitem__(i, a[0]), o_out.__setitem__(i, o))[-1])
        for i, m in enumerate(o_mods)
    ]
    hooks += [
        b.register_forward_pre_hook(
            lambda _m, a, k, i=i: resid.__setitem__(i, a[0] if a else k["hidden_states"]), with_kwargs=True
        )
        for i, b in enumerate(blocks)
    ]
    try:
        _eager(plain_model, rows)
    finally:
        for h in hooks:
            h.remove()
    hooks = []
    if path == "total":
        hooks.append(o_mods[ls].register_forward_pre_hook(lambda _m, a: (_edit_head(a[0], hs, d, 0.0),)))
    else:
        weight = o_mods[ls].weight
        w_o = (weight.T if layout.conv1d else weight)[:, hs * d : (hs + 1) * d]
        c = z[ls].reshape(*z[ls].shape[:2], n, d)[:, :, hs] @ w_o.T
        post = layout.post_attention_norm[ls]
        with torch.no_grad():
            if post is not None:  # the sender's own post-attention norm module, recomputed
                norm = plain_model.get_submodule(post)
                c = norm(o_out[ls]) - norm(o_out[ls] - c)
            pre = layout.pre_attention_norm[lt]
            x_new = resid[lt] - c
            x_new = plain_model.get_submodule(pre)(x_new) if pre is not None else x_new
            module_path, start, stop = _slice(layout, lt, path, ht)
            module = plain_model.get_submodule(module_path)
            new = module(x_new)[..., start:stop]

        def overwrite(_m, _a, out):
            out = out.clone()
            out[..., start:stop] = new
            return out

        hooks.append(module.register_forward_hook(overwrite))
        if group > 1 and path in "kv":
            others = [h for h in range((ht // group) * group, (ht // group + 1) * group) if h != ht]
            clean = z[lt].reshape(*z[lt].shape[:2], n, d)

            def restore(_m, a):
                x = a[0].reshape(*a[0].shape[:2], n, d).clone()
                x[:, :, others] = clean[:, :, others]
                return (x.reshape(a[0].shape),)

            hooks.append(o_mods[lt].register_forward_pre_hook(restore))
    try:
        out = _eager(plain_model, rows)
    finally:
        for h in hooks:
            h.remove()
    score = _diagonal(out.attentions[lt][:, ht]).mean()
    loss = torch.stack([F.cross_entropy(out.logits[:, i], rows[:, i + 1]) for i in range(SEQ + 1, 2 * SEQ)]).mean()
    return score, loss


PLAIN_PATHS: dict = {}  # (family, source, target, path) -> the plain route's (score, loss)
CASES = [((0, 1), (1, 2), "k"), ((0, 3), (1, 0), "q"), ((0, 0), (1, 3), "v"), ((0, 2), (1, 1), "total")]


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_circuit(family, plain, record_property, name, attn):
    """Path patching equals plain hooks (the plain route runs eager), on every family: post-norm, fused q/k/v,
    multi-query and the rest."""
    model, _ = family(name, attn)
    rows = tokens()
    variants = [PathVariant(None, None, None)] + [PathVariant(s, t, p) for s, t, p in CASES]
    result = path_patching(model, rows, SEQ, variants, execution=Execution(progress=False))
    layout = model_layout(model)
    moved = 0
    for i, (s, t, p) in enumerate(CASES, start=1):
        if (name, s, t, p) not in PLAIN_PATHS:  # the plain route runs eager: once per family serves both routes
            PLAIN_PATHS[name, s, t, p] = plain_path(plain(name), layout, rows, s, t, p)
        score, loss = PLAIN_PATHS[name, s, t, p]
        assert abs(float(result.scores[i]) - float(score)) < ATOL, (p, result.scores[i], score)
        assert abs(float(result.losses[i]) - float(loss)) < ATOL, (p, result.losses[i], loss)
        moved += p in "kq" and abs(float(result.scores[i]) - result.clean_scores[t]) > 1e-4
    assert moved >= 1  # a k or q path moves its target's pattern: the comparison can fail
    if layout.post_norm:  # the frozen-scale variant is another, linear, definition: it differs
        frozen = path_patching(
            model, rows, SEQ, variants, ablation=Ablation(sender_norm="frozen"), execution=Execution(progress=False)
        )
        assert torch.isfinite(frozen.scores[1:]).all()
        assert (frozen.scores[1:3] - result.scores[1:3]).abs().max() > 1e-6
    record(record_property, name, attn, "circuit", model)


def test_falcon_alibi_sdpa_reads_what_its_kernel_computes(family, monkeypatch, record_property):
    """Falcon's ALiBi runs differ between transformers' own eager and sdpa code (logits by about 0.05 here), so
    eager attentions are no reference for its sdpa route: the scan under sdpa must give the probabilities
    ``softmax(Q K^T / sqrt(d) + mask)`` of the very inputs its kernel got (captured by wrapping torch's
    function in a plain forward), and the sdpa model's own losses; ablation the plain sdpa model's, by hooks."""
    from transformers import AutoModelForCausalLM

    name = "Falcon (multi-query, ALiBi)"
    model, path = family(name, "sdpa")
    plain_sdpa = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="sdpa", dtype=torch.float32)
    rows, seen = tokens(), []
    kernel = F.scaled_dot_product_attention

    def recording(query, key, value, attn_mask=None, **kwargs):
        seen.append((query, key, attn_mask))
        return kernel(query, key, value, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    with torch.no_grad():
        logits = plain_sdpa(rows).logits
    monkeypatch.undo()
    expected = []
    for query, key, mask in seen:
        scores = query @ key.transpose(-1, -2) / query.shape[-1] ** 0.5 + mask  # one key head: broadcast
        expected.append(_diagonal(torch.softmax(scores, -1)).mean(0))
    result = scan(model, rows, SEQ)
    assert torch.allclose(result.induction_scores, torch.stack(expected), atol=ATOL)
    loss = torch.stack([F.cross_entropy(logits[:, i], rows[:, i + 1]) for i in range(rows.shape[1] - 1)])
    assert torch.allclose(result.loss_by_position, loss, atol=ATOL)
    record(record_property, name, "sdpa", "scan", model)
    d_head = model_layout(model).facts.d_head
    hook = _o_proj(plain_sdpa, model, 1).register_forward_pre_hook(lambda _m, a: (_edit_head(a[0], 2, d_head, 0.0),))
    try:
        with torch.no_grad():
            logits = plain_sdpa(rows).logits
    finally:
        hook.remove()
    loss = torch.stack([F.cross_entropy(logits[:, i], rows[:, i + 1]) for i in range(rows.shape[1] - 1)])
    assert torch.allclose(ablate_heads(model, rows, [(1, 2)]), loss, atol=ATOL)
    record(record_property, name, "sdpa", "ablate", model)


def test_qkv_patching_through_projections_equals_through_the_kernel(family):
    """Falcon under eager computes its pattern with its own softmax, so q/k/v patching edits the head's slice of
    the fused projection (before rotary); under sdpa it edits the kernel's inputs (after rotary). Rotary acts
    position by position, so the two routes must give the same grid."""
    from induction_nnsight.causal.patching.engine import patch_qkv

    name = "Falcon (multi-query, rotary)"
    clean, corrupted = tokens(0), tokens(3)
    metric = RowMetric("loss", loss_positions=slice(SEQ + 1, 2 * SEQ))
    grids = [
        patch_qkv(family(name, attn)[0], Pair(clean, corrupted, metric), 1, 2, execution=Execution(progress=False))
        for attn in ("eager", "sdpa")
    ]
    assert torch.allclose(grids[0].values, grids[1].values, atol=ATOL)
    assert (grids[0].values - grids[0].corrupted).abs().max() > 100 * ATOL  # the patches move the metric


def test_sender_norm_is_a_circuit_option(family):
    """``--sender-norm``: a bad value is one line before any model loads; ``frozen`` reaches the circuit."""
    from induction_nnsight.app.circuit_job import CircuitConfig, run_circuit
    from induction_nnsight.errors import InductionError

    with pytest.raises(InductionError, match=r"--sender-norm must be one of recompute, frozen"):
        CircuitConfig(sender_norm="scaled").validate()
    model, path = family("Gemma 3", "eager")
    common = dict(model=str(path), batch=2, seq_len=SEQ, low=1, high=128, targets="L1H0", paths=("k",))
    effects = [
        [e["effect"] for e in run_circuit(CircuitConfig(**common, sender_norm=n), model, progress=False)[0]["edges"]]
        for n in ("recompute", "frozen")
    ]
    assert len(effects[0]) == len(effects[1]) == 4 and effects[0] != effects[1]


ENTITIES = [(5, 6), (7, 8, 9), (11, 12, 13, 14), (15, 16, 17, 18, 19)]
COPIED = [(5, 6), (7, 8), (11, 12), (15, 16)]


def _value_norms(plain_model, layout, rows) -> list[torch.Tensor]:
    """``[batch, head, key]`` per layer: the norm of the value each head reads, from its projection's slice."""
    facts = layout.facts
    outputs = {}
    modules = [plain_model.get_submodule(_slice(layout, layer, "v", 0)[0]) for layer in range(facts.n_layers)]
    hooks = [m.register_forward_hook(lambda _m, _a, o, i=i: outputs.__setitem__(i, o)) for i, m in enumerate(modules)]
    try:
        _eager(plain_model, rows)
    finally:
        for hook in hooks:
            hook.remove()
    return [
        torch.stack(
            [
                outputs[layer][..., slice(*_slice(layout, layer, "v", head)[1:])].norm(dim=-1)
                for head in range(facts.n_heads)
            ],
            1,
        )
        for layer in range(facts.n_layers)
    ]


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_dual_route(family, plain, record_property, name, attn):
    """Value-weighted attention from the last query (eager probabilities times value norms, renormalised) and
    the prefix-cached copying sweep (one head patched at the second-to-last position) equal plain routes."""
    model, _ = family(name, attn)
    layout = model_layout(model)
    rows = tokens()
    keys = torch.tensor([[1, SEQ], [2, SEQ + 1]])  # [batch, n_keys]
    got = value_weighted_attention(model, rows, keys)  # [batch, n_keys, layer, head]
    norms = _value_norms(plain(name), layout, rows)
    expected = []
    for layer, pattern in enumerate(_eager(plain(name), rows).attentions):
        weighted = pattern[:, :, -1] * norms[layer]  # [batch, head, key]
        weighted = weighted / weighted.sum(-1, keepdim=True)
        expected.append(weighted[torch.arange(BATCH)[:, None], :, keys])  # [batch, n_keys, head]
    assert torch.allclose(got, torch.stack(expected, 2), atol=ATOL)

    # spans of one length: the rows of one length run in one batch
    (prompts,) = copying_prompts(COPIED, RandomTokens.uniform(20, 120), seed=0, separator=3, bos=TINY_BOS)
    cut = slice(2 * layout.facts.d_head, 3 * layout.facts.d_head)  # head 2 of layer 0, read by both targets
    o_proj = _o_proj(plain(name), model, 0)
    clean = []
    hook = o_proj.register_forward_pre_hook(lambda _m, a: clean.append(a[0][:, -2, cut].detach().clone()))
    try:
        _eager(plain(name), prompts.clean)
        _eager(plain(name), prompts.corrupt)  # clean[1]: the corrupt rows' own output there
    finally:
        hook.remove()
    # a sliding window shorter than the paper's 30-token block never reaches the span from position -2: the
    # clean and corrupt outputs are then equal and the patch a no-op, which the sweep must reproduce exactly
    reaches = not torch.equal(clean[0], clean[1])
    # OLMo-2 and Qwen3 (q/k norms): on the paper's rows the plain route's patch of L0H2 moves nothing either
    # (0.0 exactly, although the outputs differ; not understood yet): the comparison holds but cannot fail there
    inert = name in ("OLMo-2", "Qwen3")

    def patch(_m, a):
        x = a[0].clone()
        x[:, -2, cut] = clean[0]
        return (x,)

    for target, (position, index) in COPYING_TARGETS.items():
        swept = copying_sweep(model, prompts, target, heads=[(0, 2)], execution=Execution(progress=False))
        logp = []
        for patched in (False, True):
            hook = o_proj.register_forward_pre_hook(patch) if patched else None
            try:
                logits = _eager(plain(name), prompts.corrupt).logits
            finally:
                if hook is not None:
                    hook.remove()
            logp.append(logits[:, position].log_softmax(-1)[torch.arange(len(ENTITIES)), prompts.entities[:, index]])
        assert torch.allclose(swept, torch.stack(logp), atol=ATOL), (target, swept, logp)
        moved = (logp[1] - logp[0]).abs().max()
        # where the head sees the span, the patch moves the metric ten times past the tolerance: the check can fail
        assert moved > 10 * ATOL if reaches and not inert else moved == 0 or inert, (reaches, moved)
    record(record_property, name, attn, "dual-route", model)


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_estimate(family, plain, record_property, name, attn):
    """Every head's attribution-patching estimate of its zero ablation equals ``g . (0 - z)`` from plain
    autograd, ``g`` the gradient of the repeated-half loss at the output projection's input."""
    model, _ = family(name, attn)
    facts = model_layout(model).facts
    rows = tokens()
    metric = RowMetric("loss", loss_positions=slice(SEQ + 1, 2 * SEQ))
    got = head_estimate(model, rows, metric, "zero", estimator="plain").estimate  # [layer, head]
    plain_model = plain(name)
    inputs = {}

    def keep(_m, a, i):
        a[0].retain_grad()
        inputs[i] = a[0]

    modules = [_o_proj(plain_model, model, layer) for layer in range(facts.n_layers)]
    hooks = [m.register_forward_pre_hook(lambda _m, a, i=i: keep(_m, a, i)) for i, m in enumerate(modules)]
    try:
        with torch.enable_grad():
            logits = plain_model(rows).logits
            losses = [F.cross_entropy(logits[:, i], rows[:, i + 1]) for i in range(SEQ + 1, 2 * SEQ)]
            torch.stack(losses).mean().backward()
    finally:
        for hook in hooks:
            hook.remove()
        plain_model.zero_grad(set_to_none=True)
    expected = torch.stack(
        [
            (inputs[i].grad * -inputs[i].detach()).reshape(*rows.shape, facts.n_heads, facts.d_head).sum((0, 1, 3))
            for i in range(facts.n_layers)
        ]
    )
    assert torch.allclose(got, expected, atol=ATOL, rtol=1e-4), (got, expected)
    assert expected.abs().max() > 100 * ATOL
    # circuit --search estimate with nothing verified: the k/q/v probes' scores are exact (path patching's)
    variants = [PathVariant(None, None, None)] + [PathVariant(s, t, p) for s, t, p in CASES]
    quiet = Execution(progress=False)
    exact = path_patching(model, rows, SEQ, variants, execution=quiet)
    found, verified, _ = path_search(model, rows, SEQ, variants, verify=0, execution=quiet)
    assert not verified[1:].any() and torch.isfinite(found.scores[1:]).all() and torch.isfinite(found.losses).all()
    for i, (_, _, path) in enumerate(CASES, start=1):
        if path != "total":
            assert abs(float(found.scores[i]) - float(exact.scores[i])) < ATOL, (path, found.scores[i], exact.scores[i])
    record(record_property, name, attn, "estimate", model)
