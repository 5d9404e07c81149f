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
  post-attention norm module in post-norm blocks).

Every family and what the layout found is written to :data:`MATRIX` (``docs/families.json``), which the
docs page renders; :func:`test_the_committed_matrix_is_what_the_tests_found` fails when it is stale
(``UPDATE_FAMILIES=1`` rewrites it).

Slow tier: 202 checks over 18 families take about a minute; the fast tier keeps the tiny GPT-2 and
Llama routes (tests/integration/*), and CI runs this matrix with the slow tier.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from induction_nnsight import Execution, load_model, repeated_tokens
from induction_nnsight.causal.ablation import ablate_heads
from induction_nnsight.causal.metrics import RowMetric
from induction_nnsight.causal.patching import patch_heads
from induction_nnsight.causal.path_patching import Ablation, PathVariant, path_patching
from induction_nnsight.models.layout import model_layout
from induction_nnsight.probes.tokens import repeated_probe
from induction_nnsight.scores.heads import head_scores
from induction_nnsight.scores.scan import scan
from tests.conftest import TINY_BOS, save_tiny_model
from tests.reference import reference_kind_scores

# the slow tier (in the fast tier under xdist its last test found another matrix in a full run, not
# traced yet); one worker process runs the whole module: its last test reads what the others recorded
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("families")]

ATOL = 1e-5
SEQ = 6
BATCH = 2
MATRIX = Path(__file__).resolve().parents[2] / "docs" / "families.json"

# family -> (tiny config in tests/conftest.py, attention implementations the family offers, what it exercises)
FAMILIES = {
    "GPT-2": ("gpt2", ("eager", "sdpa"), "learned positions, Conv1D, stacked c_attn"),
    "GPT-J": ("gptj", ("eager", "sdpa"), "partial rotary, parallel attention and MLP"),
    "GPT-NeoX": ("neox", ("eager", "sdpa"), "interleaved query_key_value, partial rotary"),
    "Llama": ("llama", ("eager", "sdpa"), "grouped-query attention, rotary"),
    "Mistral": ("mistral", ("eager", "sdpa"), "sliding window"),
    "Mixtral": ("mixtral", ("eager", "sdpa"), "mixture of experts"),
    "Qwen2": ("qwen2", ("eager", "sdpa"), "q/k/v biases"),
    "Qwen3": ("qwen3", ("eager", "sdpa"), "per-head q/k norms"),
    "Gemma 2": ("gemma2", ("eager",), "post-norm, soft-capping, sliding and global layers"),
    "Gemma 3": ("gemma3", ("eager", "sdpa"), "post-norm, sliding and global layers"),
    "OLMo": ("olmo", ("eager", "sdpa"), "non-parametric LayerNorm"),
    "OLMo-2": ("olmo2", ("eager", "sdpa"), "post-norm without pre-attention norm, q/k norms"),
    "Phi-3": ("phi3", ("eager", "sdpa"), "fused qkv_proj with grouped-query attention"),
    "OPT": ("opt", ("eager", "sdpa"), "learned positions, self_attn_layer_norm"),
    "Falcon (multi-query, ALiBi)": ("falcon", ("eager",), "its own attention code, one key/value head"),
    "Falcon (multi-query, rotary)": ("falcon-rope", ("eager", "sdpa"), "its own attention code, two branches"),
    "Falcon (new decoder, grouped)": ("falcon-new", ("eager", "sdpa"), "key/value groups packed in one projection"),
    "BLOOM (ALiBi)": ("bloom", ("eager",), "its own attention code, interleaved query_key_value"),
}
ROUTES = [(family, attn) for family, (_, attns, _) in FAMILIES.items() for attn in attns]
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


FOUND: dict[str, dict] = {}  # family -> the matrix row the tests found


def record(name: str, attn: str, command: str, model) -> None:
    layout = model_layout(model)
    pre = layout.pre_attention_norm[0] is not None
    placement = "post-norm" if layout.post_norm else "pre-norm"
    placement += "" if pre else " (no pre-attention norm)"
    row = FOUND.setdefault(
        name,
        {
            "family": name,
            "config": FAMILIES[name][0],
            "exercises": FAMILIES[name][2],
            "attention_source": {},
            "norm": f"{layout.norm}{' (1 + w)' if layout.norm_offset else ''}, {placement}",
            "value_layout": layout.value_layout,
            "kv_heads": f"{layout.facts.n_kv_heads} of {layout.facts.n_heads}",
            "commands": {},
        },
    )
    row["attention_source"][attn] = layout.attention_call
    # sorted: the order the tests ran in (which xdist may change) does not show
    row["commands"][command] = sorted({*row["commands"].get(command, []), attn})


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
def test_scan(family, plain, name, attn):
    model, _ = family(name, attn)
    rows = tokens()
    result = scan(model, rows, SEQ)
    out = _eager(plain(name), rows)
    expected = torch.stack([_diagonal(layer).mean(0) for layer in out.attentions])  # [layer, head]
    assert torch.allclose(result.induction_scores, expected, atol=ATOL), (result.induction_scores, expected)
    loss = torch.stack([F.cross_entropy(out.logits[:, i], rows[:, i + 1]) for i in range(rows.shape[1] - 1)])
    assert torch.allclose(result.loss_by_position, loss, atol=ATOL)
    assert expected.max() - expected.min() > 100 * ATOL  # the heads differ: the comparison discriminates
    record(name, attn, "scan", model)


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_heads(family, plain, name, attn):
    model, _ = family(name, attn)
    probe = repeated_probe(BATCH, SEQ, seed=1, low=1, high=128, bos_token_id=TINY_BOS)
    found = head_scores(model, probe, kinds=("induction", "previous_token", "duplicate_token"))
    expected = reference_kind_scores(_eager(plain(name), probe.tokens).attentions, probe.tokens, SEQ, SEQ + 1)
    for kind in ("induction", "previous_token", "duplicate_token"):
        assert torch.allclose(found.mean(kind), expected[kind], atol=ATOL, equal_nan=True), kind
    record(name, attn, "heads", model)


def _o_proj(plain_model, model, layer):
    return plain_model.get_submodule(model_layout(model).o_proj[layer])


def _edit_head(layer_in: torch.Tensor, head: int, d_head: int, value) -> torch.Tensor:
    x = layer_in.reshape(*layer_in.shape[:2], -1, d_head).clone()
    x[:, :, head] = value
    return x.reshape(layer_in.shape)


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_ablate(family, plain, name, attn):
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
    record(name, attn, "ablate", model)


@pytest.mark.parametrize(("name", "attn"), ROUTES, ids=IDS)
def test_patch(family, plain, name, attn):
    model, _ = family(name, attn)
    clean, corrupted = tokens(0), tokens(3)
    d_head = model_layout(model).facts.d_head
    metric = RowMetric("loss", loss_positions=slice(SEQ + 1, 2 * SEQ))
    result = patch_heads(model, clean, corrupted, metric, layers=[1], execution=Execution(progress=False))
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
    record(name, attn, "patch", model)


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
def test_circuit(family, plain, name, attn):
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
    record(name, attn, "circuit", model)


def test_falcon_alibi_sdpa_reads_what_its_kernel_computes(family, monkeypatch):
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
    record(name, "sdpa", "scan", model)
    d_head = model_layout(model).facts.d_head
    hook = _o_proj(plain_sdpa, model, 1).register_forward_pre_hook(lambda _m, a: (_edit_head(a[0], 2, d_head, 0.0),))
    try:
        with torch.no_grad():
            logits = plain_sdpa(rows).logits
    finally:
        hook.remove()
    loss = torch.stack([F.cross_entropy(logits[:, i], rows[:, i + 1]) for i in range(rows.shape[1] - 1)])
    assert torch.allclose(ablate_heads(model, rows, [(1, 2)]), loss, atol=ATOL)
    record(name, "sdpa", "ablate", model)


def test_qkv_patching_through_projections_equals_through_the_kernel(family):
    """Falcon under eager computes its pattern with its own softmax, so q/k/v patching edits the head's slice of
    the fused projection (before rotary); under sdpa it edits the kernel's inputs (after rotary). Rotary acts
    position by position, so the two routes must give the same grid."""
    from induction_nnsight.causal.patching import patch_qkv

    name = "Falcon (multi-query, rotary)"
    clean, corrupted = tokens(0), tokens(3)
    metric = RowMetric("loss", loss_positions=slice(SEQ + 1, 2 * SEQ))
    grids = [
        patch_qkv(family(name, attn)[0], clean, corrupted, metric, 1, 2, execution=Execution(progress=False))
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


def test_the_committed_matrix_is_what_the_tests_found():
    """Runs last in this module: the rows the tests above recorded equal docs/families.json."""
    if len(FOUND) < len(FAMILIES):
        pytest.skip("the family matrix did not run in full in this session")
    found = [FOUND[name] for name in FAMILIES]
    if os.environ.get("UPDATE_FAMILIES"):
        MATRIX.write_text(json.dumps(found, indent=1) + "\n")
    committed = json.loads(MATRIX.read_text())
    assert committed == found, "docs/families.json is stale: rerun this module with UPDATE_FAMILIES=1"
