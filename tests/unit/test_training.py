"""The training loop on a micro config, in seconds: the corpus keeps its promise, same seed gives
the same weights, a resumed run equals an uninterrupted one, checkpoints land on the planned steps."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from induction_nnsight.errors import InductionError
from induction_nnsight.training.config import TrainSettings, checkpoint_steps, new_model
from induction_nnsight.training.corpus import repeated_spans
from induction_nnsight.training.loop import LOSS_LOG, saved_checkpoints, train

MICRO = dict(
    steps=12,
    batch=2,
    seq_len=24,
    vocab_size=16,
    d_model=16,
    n_heads=2,
    n_checkpoints=4,
    log_every=3,
    max_span=6,
    warmup=2,
)


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def log_without_time(out) -> list[dict]:
    lines = [json.loads(line) for line in (out / LOSS_LOG).read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def test_corpus_has_the_promised_repeats():
    batch = repeated_spans(16, 96, 50, seed=3, step=7, spans=(4, 20))
    tokens, source = batch.tokens, batch.source
    assert (tokens[:, 0] == 0).all() and tokens[:, 1:].min() >= 1 and tokens.max() < 50
    copied = source >= 0
    assert torch.equal(tokens[copied], tokens.gather(1, source.clamp(min=0))[copied])  # each copy repeats its source
    assert 0.15 < copied.float().mean() < 0.6
    distance = (torch.arange(96) - source)[copied]
    assert distance.min() >= 4 and distance.max() > 20 and len(distance.unique()) > 10  # distances vary
    again = repeated_spans(16, 96, 50, seed=3, step=7, spans=(4, 20))
    other = repeated_spans(16, 96, 50, seed=3, step=8, spans=(4, 20))
    assert torch.equal(again.tokens, tokens) and not torch.equal(other.tokens, tokens)


def test_checkpoint_steps_are_log_spaced():
    steps = checkpoint_steps(1000, 5)
    assert steps == [0, 10, 46, 215, 1000]
    ratios = [b / a for a, b in zip(steps[1:-1], steps[2:])]
    assert max(ratios) / min(ratios) < 1.05


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_attention_only_models_have_zero_mlps(arch):
    model = new_model(TrainSettings(arch=arch, **MICRO))
    block = model.transformer.h[0] if arch == "gpt2" else model.model.layers[0]
    hidden = torch.randn(2, 5, 16)
    assert block.mlp(hidden).abs().max() == 0


def test_same_seed_same_weights_and_checkpoints_on_the_planned_steps(tmp_path):
    first = train(TrainSettings(**MICRO), tmp_path / "a", progress=False)
    second = train(TrainSettings(**MICRO), tmp_path / "b", progress=False)
    other = train(TrainSettings(**{**MICRO, "seed": 1}), tmp_path / "c", progress=False)
    planned = checkpoint_steps(MICRO["steps"], MICRO["n_checkpoints"])
    assert list(first.checkpoints) == planned == list(saved_checkpoints(tmp_path / "a"))
    assert first.resumed_from is None
    for step in planned:
        a, b = weights(first.checkpoints[step]), weights(second.checkpoints[step])
        assert all(torch.equal(a[k], b[k]) for k in a)
    last_a, last_c = weights(first.checkpoints[12]), weights(other.checkpoints[12])
    assert any(not torch.equal(last_a[k], last_c[k]) for k in last_a)
    assert log_without_time(tmp_path / "a") == log_without_time(tmp_path / "b")
    assert [line["step"] for line in first.log] == sorted({3, 6, 9, 12, *planned[1:]})
    assert (first.checkpoints[12] / "tokenizer.json").is_file()


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole = train(TrainSettings(**MICRO), tmp_path / "whole", progress=False)
    cut = tmp_path / "cut"
    train(TrainSettings(**MICRO), cut, progress=False)
    resume_at = checkpoint_steps(12, 4)[-2]
    for step, path in saved_checkpoints(cut).items():  # as if killed right after checkpoint `resume_at`
        if step > resume_at:
            shutil.rmtree(path)
    resumed = train(TrainSettings(**MICRO), cut, progress=False)
    assert resumed.resumed_from == resume_at
    a, b = weights(whole.checkpoints[12]), weights(resumed.checkpoints[12])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert log_without_time(tmp_path / "whole") == log_without_time(cut)
    done = train(TrainSettings(**MICRO), cut, progress=False)  # nothing left to do
    assert done.resumed_from == 12 and list(done.checkpoints) == list(whole.checkpoints)


def test_other_settings_do_not_resume(tmp_path):
    train(TrainSettings(**MICRO), tmp_path, progress=False)
    with pytest.raises(InductionError, match="other settings \\(lr\\)"):
        train(TrainSettings(**{**MICRO, "lr": 1e-4}), tmp_path, progress=False)


def test_bad_settings_name_the_option():
    with pytest.raises(InductionError, match="--d-model 30 is not a multiple of --n-heads 4"):
        TrainSettings(d_model=30, n_heads=4).validate()
    with pytest.raises(InductionError, match="--arch"):
        TrainSettings(arch="mamba").validate()
