"""The dual route's scores equal the paper's formulas computed from scratch with plain PyTorch (issue 35, item 7).

The reference builds every prompt itself from the seed, as the paper's code does (``attention_scores.py``,
``causal_scores.py``: 30 tokens before the newline, the span's start drawn from ``range(15, 30 - |c| + 1)``,
clean ``[BOS] r c / r c[0]`` and corrupt ``[BOS] r' / r c[0]`` with ``|r| = 30 - |c|``, ``|r'| = 30``),
draws its random tokens with its own ``torch.Generator`` calls, and runs each row alone through the
transformers model with forward hooks (no nnsight, no batching, no prefix cache):

- copying (``convert_causal_scores.py``): mean over rows of ``P_patched - P_corrupt`` (or the same of
  log-probabilities), P(c[1]) at the last position on entities, P(c[0]) at position -2 on random spans,
  one head's slice of the output projection's input at -2 copied from the clean run; to 1e-6 and to a
  hundredth of the largest effect (a tiny model with its matrices scaled up, so the effects are resolved);
- attention (``utils.py``'s value weighting): the last query's attention probabilities
  (``output_attentions``, eager) times each key's value-vector norm, renormalised, at ``c[0]`` and
  ``c[-1]``, averaged over rows; to 1e-6.

The probe's seeds follow ``dual_route_prompts``' docstring; with one entity per length, the probe takes
them in length order.
"""

from __future__ import annotations

import pytest
import torch
import transformers as tf

from induction_nnsight import Execution, load_model
from induction_nnsight.causal.dual_route import DualRouteProbe, Entity, dual_route
from induction_nnsight.causal.dual_route.dissociation import ablated_probabilities
from induction_nnsight.causal.dual_route.prompts import ListPrompts
from tests.conftest import save_tiny_model

SEED, LOW, HIGH, N_HEADS, D_HEAD = 3, 20, 120, 4, 8
ENTITIES = [Entity(f"e{n}", tuple(range(5 + 6 * n, 5 + 7 * n))[:n]) for n in (2, 3, 4, 5)]
QUIET = Execution(progress=False, max_rows=8)


@pytest.fixture(scope="module")
def scaled_dir(tmp_path_factory):
    """``scaled_dir(arch)``: the tiny random model with its matrices scaled 6x, so that one head moves the
    next token's probability by enough to tell a wrong formula (at the default init it moves it by ~1e-8)."""
    made = {}

    def make(arch):
        if arch not in made:
            scale = lambda m: [p.mul_(6.0) for p in m.parameters() if p.dim() == 2]
            made[arch] = save_tiny_model(arch, tmp_path_factory.mktemp(f"scaled-{arch}"), edit=scale)
        return made[arch]

    return make


def _draw(generator: torch.Generator, n: int) -> list[int]:
    return torch.randint(LOW, HIGH, (n,), generator=generator).tolist()


def _spans(lengths: list[int], seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [_draw(generator, n) for n in lengths]


def _attention_rows(spans, seed: int, bos: int, sep: int) -> list[tuple[list[int], int, int]]:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for c in spans:
        p = int(torch.randint(15, 30 - len(c) + 1, (1,), generator=generator))
        r1 = _draw(generator, p)
        r2 = _draw(generator, 30 - p - len(c))
        rows.append(([bos, *r1, *c, *r2, sep, *r1], 1 + p, p + len(c)))
    return rows


def _copying_rows(spans, seed: int, bos: int, sep: int) -> list[tuple[list[int], list[int], list[int]]]:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for c in spans:
        r = _draw(generator, 30 - len(c))
        other = _draw(generator, 30)
        rows.append(([bos, *r, *c, sep, *r, c[0]], [bos, *other, sep, *r, c[0]], list(c)))
    return rows


def _blocks(hf, arch):
    if arch == "gpt2":
        return [(b.attn.c_attn, b.attn.c_proj) for b in hf.transformer.h]
    return [(layer.self_attn.v_proj, layer.self_attn.o_proj) for layer in hf.model.layers]


def _row_copying(hf, projections, clean, corrupt, c, position: int, index: int, log: bool) -> torch.Tensor:
    """``[n_layers, n_heads]`` one row's patched minus corrupt (log-)probability of ``c[index]`` at ``position``."""
    saved = {}
    hooks = [
        p.register_forward_pre_hook(lambda m, a, at=at: saved.__setitem__(at, a[0][0, -2].clone()))
        for at, p in enumerate(projections)
    ]
    with torch.no_grad():
        hf(torch.tensor([clean]))
    for hook in hooks:
        hook.remove()

    def value(layer=None, head=None) -> float:
        hook = None
        if layer is not None:
            cut = slice(head * D_HEAD, (head + 1) * D_HEAD)

            def patch(module, args):
                x = args[0].clone()
                x[0, -2, cut] = saved[layer][cut]
                return (x,)

            hook = projections[layer].register_forward_pre_hook(patch)
        with torch.no_grad():
            logits = hf(torch.tensor([corrupt])).logits[0, position].float()
        if hook is not None:
            hook.remove()
        p = logits.log_softmax(-1) if log else logits.softmax(-1)
        return float(p[c[index]])

    base = value()
    return torch.tensor(
        [[value(layer, head) - base for head in range(N_HEADS)] for layer in range(len(projections))],
        dtype=torch.float64,
    )


def _copying_reference(hf, arch, rows, position: int, index: int, log: bool) -> torch.Tensor:
    """``[n_layers, n_heads]`` mean over rows of the patched minus the corrupt (log-)probability."""
    projections = [out for _, out in _blocks(hf, arch)]
    total = sum(_row_copying(hf, projections, *row, position, index, log) for row in rows)
    return (total / len(rows)).float()


def _row_attention(hf, arch, tokens, first: int, last: int) -> torch.Tensor:
    """``[2, n_layers, n_heads]`` one row's value-weighted attention from the last query to ``first`` and ``last``."""
    values = {}
    hooks = [
        v.register_forward_hook(lambda m, i, o, at=at: values.__setitem__(at, o[0]))
        for at, (v, _) in enumerate(_blocks(hf, arch))
    ]
    with torch.no_grad():
        out = hf(torch.tensor([tokens]), output_attentions=True)
    for hook in hooks:
        hook.remove()
    found = torch.zeros(2, len(out.attentions), N_HEADS, dtype=torch.float64)
    for layer, attention in enumerate(out.attentions):  # [1, head, query, key]
        v = values[layer][:, 2 * N_HEADS * D_HEAD :] if arch == "gpt2" else values[layer]  # [key, kv * d]
        norms = v.reshape(len(tokens), -1, D_HEAD).norm(dim=-1)  # [key, kv_head]
        norms = norms.repeat_interleave(N_HEADS // norms.shape[1], dim=1).T  # [head, key]
        weighted = attention[0, :, -1] * norms
        weighted = weighted / weighted.sum(-1, keepdim=True)
        found[0, layer], found[1, layer] = weighted[:, first].double(), weighted[:, last].double()
    return found


def _attention_reference(hf, arch, rows) -> torch.Tensor:
    """``[2, n_layers, n_heads]``: mean over rows of the value-weighted attention at ``c[0]`` and ``c[-1]``."""
    return (sum(_row_attention(hf, arch, *row) for row in rows) / len(rows)).float()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("measure", ["probability", "log_probability"])
def test_copying_and_attention_scores_equal_the_papers_formulas(scaled_dir, arch, measure):
    path = scaled_dir(arch)
    model = load_model(str(path), attn_implementation="eager", progress=False)
    probe = DualRouteProbe(
        n_attention=4, n_copying=4, n_dissociation=2, max_k=2, n_reference=2, measure=measure,
        seed=SEED, low=LOW, high=HIGH,
    )  # fmt: skip
    result = dual_route(model, ENTITIES, probe=probe, execution=QUIET)
    hf = tf.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    bos = hf.config.bos_token_id
    newline = model.tokenizer.encode("\n", add_special_tokens=False)
    sep = newline[0] if len(newline) == 1 else LOW  # the probe's fallback where no one-token newline exists
    entities = [list(e.ids) for e in ENTITIES]  # one per length: taken in length order
    lengths = [len(e) for e in entities]
    log = measure == "log_probability"

    concept = _copying_reference(hf, arch, _copying_rows(entities, SEED + 6, bos, sep), -1, 1, log)
    token = _copying_reference(hf, arch, _copying_rows(_spans(lengths, SEED + 5), SEED + 7, bos, sep), -2, 0, log)
    for grid, want in (("concept_copying", concept), ("token_copying", token)):
        error, effect = (result.mean(grid) - want).abs().max(), want.abs().max()
        # to 1e-6, and to a hundredth of the largest effect: a wrong formula cannot hide under the tolerance
        assert error < 1e-6 and error < 0.01 * effect, (grid, error, effect)

    on_entities = _attention_reference(hf, arch, _attention_rows(entities, SEED + 2, bos, sep))
    on_random = _attention_reference(hf, arch, _attention_rows(_spans(lengths, SEED + 1), SEED + 3, bos, sep))
    expected = {
        "entity_first_attention": on_entities[0],
        "concept_attention": on_entities[1],
        "token_attention": on_random[0],
        "random_end_attention": on_random[1],
    }
    for grid, want in expected.items():
        assert torch.allclose(result.mean(grid), want, atol=1e-6, rtol=0), grid
    assert not torch.allclose(on_entities[0], on_entities[1], atol=1e-3)  # first and last keys differ


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_dissociation_mean_ablation_equals_hooks_that_write_the_means(scaled_dir, arch):
    """``ablated_probabilities``: P(answer) at the last position with each head set's outputs replaced by the
    given means at every position, against forward pre-hooks on the output projections (to 1e-6, and the
    ablations move the probability by more than 100x that)."""
    path = scaled_dir(arch)
    model = load_model(str(path), attn_implementation="eager", progress=False)
    hf = tf.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    generator = torch.Generator().manual_seed(SEED)
    tokens = torch.randint(LOW, HIGH, (3, 12), generator=generator)
    answer = torch.randint(LOW, HIGH, (3,), generator=generator)
    n_layers = len(_blocks(hf, arch))
    means = {layer: torch.randn(N_HEADS, D_HEAD, generator=generator) for layer in range(n_layers)}
    sets = [[], [(0, 1)], [(0, 1), (1, 3)], [(1, 0), (1, 2)]]
    prompts = ListPrompts(tokens, answer, torch.arange(3))
    got = ablated_probabilities(model, prompts, sets, means, execution=QUIET)  # [sets, batch]

    projections = [out for _, out in _blocks(hf, arch)]

    def probabilities(heads) -> torch.Tensor:
        def write(layer):
            def hook(module, args):
                x = args[0].clone()
                for at, head in heads:
                    if at == layer:
                        x[..., head * D_HEAD : (head + 1) * D_HEAD] = means[layer][head]
                return (x,)

            return hook

        hooks = [p.register_forward_pre_hook(write(layer)) for layer, p in enumerate(projections)]
        with torch.no_grad():
            probs = hf(tokens).logits[:, -1].float().softmax(-1)
        for hook in hooks:
            hook.remove()
        return probs.gather(1, answer[:, None])[:, 0]

    want = torch.stack([probabilities(heads) for heads in sets])
    assert torch.allclose(got, want, atol=1e-6, rtol=0), (got - want).abs().max()
    assert (want[1:] - want[0]).abs().max() > 1e-4  # the ablations move the probability: the check can fail
