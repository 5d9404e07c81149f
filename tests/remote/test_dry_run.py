"""Every trace function through nnsight's serialization round trip (no server).

``remote="local"`` serializes the trace as for NDIF, rebuilds it with
``induction_nnsight`` unimportable, runs it and sends the saved values through
the result's wire format: the numbers must equal a plain local run, and what
would break on NDIF must break here.
"""

import threading

import nnsight
import pytest
import torch

from induction_nnsight import (
    Execution,
    head_attention,
    head_scores,
    induction_scores,
    loss_by_position,
    repeated_probe,
    repeated_tokens,
    scan,
)
from induction_nnsight.ndif.backend import remote_backend
from induction_nnsight.ndif.dry_run import DryRunBackend
from induction_nnsight.scores.losses import per_position_loss
from tests.conftest import TINY_ARCHS, TINY_BOS

DRY = Execution(remote="local")  # the remote path, run here
QUIET = Execution(progress=False)

SEQ_LEN = 8


def tokens_for(batch=3, seq_len=SEQ_LEN):
    return repeated_tokens(batch, seq_len, seed=0, low=1, high=128, bos_token_id=TINY_BOS)


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_every_trace_function_survives_the_round_trip(tiny_model, arch, attn):
    model, tokens = tiny_model(arch, attn), tokens_for()
    local = scan(model, tokens, SEQ_LEN)
    dry = scan(model, tokens, SEQ_LEN, execution=DRY)
    assert torch.equal(dry.loss_by_position, local.loss_by_position)
    assert torch.equal(dry.induction_scores, local.induction_scores)
    assert torch.equal(loss_by_position(model, tokens, execution=DRY), local.loss_by_position)
    assert torch.equal(induction_scores(model, tokens, SEQ_LEN, execution=DRY), local.induction_scores)


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_the_head_taxonomy_survives_the_round_trip(tiny_model, arch, attn):
    """Every kind, the weight-only OV score included, and the one-head attention view."""
    model = tiny_model(arch, attn)
    probe = repeated_probe(2, SEQ_LEN, low=1, high=128, bos_token_id=TINY_BOS)
    local = head_scores(model, probe)
    dry = head_scores(model, probe, execution=Execution(remote="local"))
    for kind in local.kinds:
        assert torch.allclose(dry.mean(kind), local.mean(kind), atol=1e-6, equal_nan=True), kind
    pattern = head_attention(model, probe.tokens[:1], 1, 2)
    assert torch.allclose(head_attention(model, probe.tokens[:1], 1, 2, execution=DRY), pattern, atol=1e-6)


def test_without_shipping_by_value_the_round_trip_fails(tiny_model, monkeypatch):
    """The dry run is strict: unregistered, our functions would be looked up by name on NDIF."""
    from cloudpickle.cloudpickle import _PICKLE_BY_VALUE_MODULES

    import induction_nnsight.ndif.backend as backend

    monkeypatch.setattr(backend, "ship_by_value", lambda: None)
    registered = "induction_nnsight" in _PICKLE_BY_VALUE_MODULES
    _PICKLE_BY_VALUE_MODULES.discard("induction_nnsight")
    try:
        with pytest.raises(ModuleNotFoundError, match="induction_nnsight"):
            scan(tiny_model("gpt2", "sdpa"), tokens_for(), SEQ_LEN, execution=DRY)
    finally:
        if registered:
            _PICKLE_BY_VALUE_MODULES.add("induction_nnsight")


def test_unsaved_values_do_not_come_back(tiny_model):
    model, tokens = tiny_model("gpt2", "sdpa"), tokens_for()
    with model.trace(tokens, backend=remote_backend(model, "local")):
        kept = nnsight.save(per_position_loss(model.output.logits, tokens))
        dropped = per_position_loss(model.output.logits, tokens)
    assert kept.shape == (tokens.shape[1] - 1,)
    with pytest.raises(NameError):
        dropped


def test_an_unpicklable_value_in_the_trace_fails(tiny_model):
    model, lock = tiny_model("gpt2", "sdpa"), threading.Lock()
    with pytest.raises(TypeError, match="lock"), model.trace(tokens_for(), backend=remote_backend(model, "local")):
        with lock:
            out = nnsight.save(model.output.logits.sum())  # noqa: F841


def test_the_dry_run_measures_the_bytes_each_way(tiny_model):
    model = tiny_model("llama", "sdpa")
    backend = remote_backend(model, "local")
    assert isinstance(backend, DryRunBackend)
    with model.trace(tokens_for(), backend=backend):
        scores = nnsight.save(model.output.logits.mean())
    assert 0 < backend.transfer.received_bytes < 4096 and backend.transfer.sent_bytes > 0
    # what comes back grows with what is saved: the full logits add their bytes (compressed, so at least
    # half of them for float noise; at most all of them plus framing)
    big = remote_backend(model, "local")
    with model.trace(tokens_for(), backend=big):
        logits = nnsight.save(model.output.logits)
    extra = big.transfer.received_bytes - backend.transfer.received_bytes
    assert logits.nbytes // 2 <= extra <= logits.nbytes + 1024, (extra, logits.nbytes)
    with model.trace(tokens_for()):
        local = nnsight.save(model.output.logits)
    assert torch.allclose(logits, local, atol=1e-6) and torch.isclose(scores, local.mean(), atol=1e-6)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_causal_functions_survive_the_round_trip(tiny_model, arch):
    """Ablation, the three patching sites and attribution (a backward pass) as NDIF would run them."""
    from induction_nnsight.causal.ablation.estimators import head_attribution
    from induction_nnsight.causal.ablation.sweep import ablate_heads
    from induction_nnsight.causal.pairs import repeated_pair
    from induction_nnsight.causal.patching.engine import patch_heads, patch_qkv, patch_residual

    model = tiny_model(arch, "sdpa")
    tokens = tokens_for()
    assert torch.allclose(
        ablate_heads(model, tokens, [(1, 2)], execution=Execution(remote="local")),
        ablate_heads(model, tokens, [(1, 2)]),
    )
    pair = repeated_pair(2, SEQ_LEN, low=1, high=128, bos_token_id=TINY_BOS)
    args = (model, pair)
    for run in (
        lambda **kw: patch_heads(*args, **kw),
        lambda **kw: patch_residual(*args, positions=[3, 9], **kw),
        lambda **kw: patch_qkv(*args, 1, 2, positions=[9], **kw),
    ):
        local, dry = run(execution=QUIET), run(execution=Execution(remote="local", progress=False))
        assert torch.allclose(dry.values, local.values, atol=1e-6)
    local = head_attribution(model, pair.corrupted, pair.metric, "source", source=pair.clean)
    dry = head_attribution(
        model, pair.corrupted, pair.metric, "source", source=pair.clean, execution=Execution(remote="local")
    )
    assert torch.allclose(dry, local, atol=1e-6)


@pytest.mark.parametrize("exact_losses", [None, 1])
def test_the_circuit_survives_the_round_trip(tiny_model, exact_losses):
    """Path patching (skipped clean blocks fed from a saved residual, early stops, the gradient pass of
    the estimated mode) as NDIF would run it: the same edges as locally."""
    from induction_nnsight.causal.circuit import CircuitMeasure, circuit

    model = tiny_model("llama", "sdpa")
    tokens = tokens_for(batch=2)
    measure = CircuitMeasure(targets=[(1, 2)], composition=False, exact_losses=exact_losses)
    local = circuit(model, tokens, SEQ_LEN, measure=measure, execution=QUIET)
    dry = circuit(model, tokens, SEQ_LEN, measure=measure, execution=Execution(remote="local", progress=False))
    assert len(dry.edges) == len(local.edges) > 0
    for a, b in zip(local.edges, dry.edges):
        assert (a.source, a.target, a.path) == (b.source, b.target, b.path)
        assert abs(a.effect - b.effect) < 1e-5 and abs(a.loss_effect - b.loss_effect) < 1e-4
