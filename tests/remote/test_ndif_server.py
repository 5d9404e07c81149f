"""End to end against NDIF's real API service on 127.0.0.1 (see ndif_server.py).

The CPU worker runs each request in a process where ``induction_nnsight`` cannot
be imported, under sdpa attention, so these tests also prove that every function
a trace calls travels by value and that scores are recomputed from q and k.
"""

import json
import time

import nnsight
import pytest
import torch

from induction_nnsight import (
    Execution,
    InductionError,
    induction_scores,
    load_model,
    loss_by_position,
    repeated_tokens,
    scan,
)
from induction_nnsight.app.cli import main
from induction_nnsight.ndif.backend import remote_backend
from induction_nnsight.ndif.settings import RemoteSettings
from induction_nnsight.scores.losses import per_position_loss
from tests.cli_args import tiny_cli
from tests.conftest import TINY_ARCHS, TINY_BOS, _tiny_config, _tiny_tokenizer
from tests.remote.conftest import API_KEY

SEQ_LEN = 8


def tokens_for(batch=3, seq_len=SEQ_LEN, seed=0):
    return repeated_tokens(batch, seq_len, seed=seed, low=1, high=128, bos_token_id=TINY_BOS)


def completed(ndif) -> int:
    return ndif.server.log("worker").count(" completed,")


def test_the_worker_cannot_import_the_package(ndif):
    assert "induction_nnsight importable: no" in ndif.server.log("worker")


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_remote_equals_local(ndif, tiny_model, arch):
    local_model, remote_model, tokens = tiny_model(arch, "sdpa"), ndif.models[arch], tokens_for()
    local = scan(local_model, tokens, SEQ_LEN)
    settings = RemoteSettings(ndif.host)
    remote = scan(remote_model, tokens, SEQ_LEN, execution=Execution(remote=settings))
    assert torch.equal(remote.loss_by_position, local.loss_by_position)
    assert torch.equal(remote.induction_scores, local.induction_scores)
    assert torch.equal(
        loss_by_position(remote_model, tokens, execution=Execution(remote=settings)), local.loss_by_position
    )
    assert torch.equal(
        induction_scores(remote_model, tokens, SEQ_LEN, execution=Execution(remote=settings)), local.induction_scores
    )
    assert len(settings.transfers) == 3


def test_head_taxonomy_remote_equals_local(ndif, tiny_model):
    from induction_nnsight import head_scores, repeated_probe

    probe = repeated_probe(2, SEQ_LEN, low=1, high=128, bos_token_id=TINY_BOS)
    local = head_scores(tiny_model("llama", "sdpa"), probe)
    remote = head_scores(ndif.models["llama"], probe, execution=Execution(remote=RemoteSettings(ndif.host)))
    for kind in local.kinds:
        assert torch.allclose(remote.mean(kind), local.mean(kind), atol=1e-6, equal_nan=True), kind


def test_eager_local_and_sdpa_remote_agree(ndif, tiny_model):
    """Remote scoring recomputes attention (NDIF has no weights to return) and matches eager weights."""
    tokens = tokens_for()
    eager = induction_scores(tiny_model("llama", "eager"), tokens, SEQ_LEN)
    remote = induction_scores(ndif.models["llama"], tokens, SEQ_LEN, execution=Execution(remote=ndif.host))
    assert torch.allclose(remote, eager, atol=1e-6)


def test_a_session_sends_two_traces_in_one_request(ndif, tiny_model):
    model, local_model = ndif.models["gpt2"], tiny_model("gpt2", "sdpa")
    clean = tokens_for()
    corrupted = clean.clone()
    corrupted[:, 1 + SEQ_LEN :] = tokens_for(seed=1)[:, 1 + SEQ_LEN :]  # second copy no longer repeats
    settings = RemoteSettings(ndif.host)
    before = completed(ndif)
    with model.session(backend=remote_backend(model, settings)):
        with model.trace(clean):
            clean_loss = nnsight.save(per_position_loss(model.output.logits, clean))
        with model.trace(corrupted):
            corrupted_loss = nnsight.save(per_position_loss(model.output.logits, corrupted))
    assert len(settings.transfers) == 1 and completed(ndif) == before + 1
    assert torch.equal(clean_loss, loss_by_position(local_model, clean))
    assert torch.equal(corrupted_loss, loss_by_position(local_model, corrupted))


def test_the_circuit_in_sessions_equals_local(ndif, tiny_model):
    """Path patching's runs (blocks skipped and fed a saved residual) bundled in sessions on NDIF."""
    from induction_nnsight.causal.circuit import CircuitMeasure, circuit

    tokens, measure = tokens_for(batch=2), CircuitMeasure(targets=[(1, 2)], composition=False, exact_losses=None)
    sizes = Execution(progress=False, max_tokens=2 * tokens.numel())  # 2 runs per trace: 8 traces
    local = circuit(tiny_model("llama", "sdpa"), tokens, SEQ_LEN, measure=measure, execution=sizes)
    settings = RemoteSettings(ndif.host)
    remote = circuit(
        ndif.models["llama"],
        tokens,
        SEQ_LEN,
        measure=measure,
        execution=sizes.replace(remote=settings, traces_per_request=4),
    )
    assert len(settings.transfers) == 1 + 3  # the clean trace, then requests of 1, 4 and 3 traces
    assert len(remote.edges) == len(local.edges) == 16
    for a, b in zip(local.edges, remote.edges):
        assert (a.source, a.target, a.path) == (b.source, b.target, b.path)
        assert abs(a.effect - b.effect) < 1e-6 and abs(a.loss_effect - b.loss_effect) < 1e-5


def test_payload_does_not_grow_with_batch_and_barely_with_length(ndif):
    """Only the loss vector and the score table come back: a few hundred bytes here."""
    model = ndif.models["llama"]

    def received(batch, seq_len):
        settings = RemoteSettings(ndif.host)
        scan(model, tokens_for(batch, seq_len), seq_len, execution=Execution(remote=settings))
        return settings.transfers[0].received_bytes

    small, wide, long = received(1, 8), received(16, 8), received(1, 32)
    assert max(small, wide, long) < 4096
    assert abs(wide - small) < 128  # same shapes back: [16] loss, [2, 4] scores
    assert long - small < 4 * 48 + 128  # 48 more float32 losses, plus compression noise
    # what an activation download would have cost instead: logits alone
    assert wide < 16 * 17 * 128 * 4 / 100


def test_model_not_hosted_lists_the_running_models(ndif, tmp_path):
    cls, config = _tiny_config("gpt2")
    cls(config).save_pretrained(tmp_path)
    _tiny_tokenizer().save_pretrained(tmp_path)
    other = load_model(str(tmp_path), remote=True, progress=False)
    with pytest.raises(InductionError) as error:
        scan(other, tokens_for(), SEQ_LEN, execution=Execution(remote=ndif.host))
    message = str(error.value)
    assert message.startswith(f"{tmp_path} is not running on NDIF at {ndif.host}; running models: ")
    assert all(str(m.repo_id) in message for m in ndif.models.values())
    assert len(message.splitlines()) == 1 and API_KEY not in message


def test_timeout(ndif):
    model = ndif.models["gpt2"]
    settings = RemoteSettings(ndif.host, timeout=1.5)
    start = time.monotonic()
    with pytest.raises(InductionError, match=r"no result within 1.5 s; pass a longer --timeout") as error:
        with model.trace(tokens_for(), backend=remote_backend(model, settings)):
            time.sleep(4)
            total = nnsight.save(model.output.logits.sum())  # noqa: F841
    assert time.monotonic() - start < 4 and API_KEY not in str(error.value)


def test_request_rejected_by_the_service(ndif):
    strict = ndif.server.second_api(NDIF_MIN_NNSIGHT_VERSION="99.0")
    with pytest.raises(InductionError) as error:
        scan(ndif.models["gpt2"], tokens_for(), SEQ_LEN, execution=Execution(remote=strict))
    message = str(error.value)
    assert message.startswith(f"NDIF at {strict} rejected the request: ") and "nnsight" in message
    assert len(message.splitlines()) == 1 and API_KEY not in message


def test_a_failure_on_the_server_is_one_line(ndif):
    model = ndif.models["gpt2"]
    with pytest.raises(InductionError) as error:
        with model.trace(tokens_for(), backend=remote_backend(model, ndif.host)):
            bad = nnsight.save(model.output.logits[0, 0, 10_000])  # noqa: F841 - vocab is 128
    message = str(error.value)
    assert message.startswith("NDIF failed to run the trace: ") and "IndexError" in message
    assert len(message.splitlines()) == 1


def test_cli_scan_remote_equals_local(ndif, tiny_dir, tmp_path, capsys):
    common = tiny_cli("scan", tiny_dir("llama"), None, "--attn-implementation", "sdpa", batch=4, seq_len=10)
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert (
        main([*common, "--remote", "--ndif-host", ndif.host, "--timeout", "120", "--out", str(tmp_path / "remote")])
        == 0
    )
    local = json.loads((tmp_path / "local" / "scan_results.json").read_text())
    remote = json.loads((tmp_path / "remote" / "scan_results.json").read_text())
    for field in ("loss_by_position", "induction_scores", "top_heads", "mean_loss_repeated_half"):
        assert remote[field] == local[field]
    assert remote["ndif"]["host"] == ndif.host and remote["ndif"]["requests"] == 1
    assert 0 < remote["ndif"]["received_bytes"] < 4096
    written = "".join(p.read_text() for p in (tmp_path / "remote").iterdir()) + "".join(capsys.readouterr())
    assert API_KEY not in written


@pytest.mark.slow
def test_smollm2_remote_equals_local(ndif, smollm2):
    if "smollm2" not in ndif.models:
        pytest.skip("SmolLM2 is not cached (load_model('smollm2-135m') fetches it once)")
    tokens = repeated_tokens(2, 20, seed=0, bos_token_id=smollm2.tokenizer.bos_token_id)
    local = scan(smollm2, tokens, 20)
    settings = RemoteSettings(ndif.host, timeout=300)
    remote = scan(ndif.models["smollm2"], tokens, 20, execution=Execution(remote=settings))
    assert torch.allclose(remote.loss_by_position, local.loss_by_position, atol=1e-5)
    assert torch.allclose(remote.induction_scores, local.induction_scores, atol=1e-5)
    print(f"SmolLM2 scan: sent {settings.transfers[0].sent_bytes} B, received {settings.transfers[0].received_bytes} B")
