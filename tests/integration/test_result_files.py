"""Every command's result set on a tiny model: strict JSON, one run id, the user's umask."""

import os

import pytest

from induction_nnsight.app.cli import main
from induction_nnsight.app.outputs import parse_strict
from tests.run_ids import run_id_of

TOKENS = ["--low", "1", "--high", "128", "--batch", "2", "--seq-len", "6"]
COMMANDS = {
    "scan": ["scan", *TOKENS],
    "heads": ["heads", *TOKENS],
    "attention": ["attention", "--layer", "1", "--head", "2", "--prompt", "t5 t9 t7"],
    "ablate": ["ablate", *TOKENS, "--top-k", "2", "--draws", "2", "--no-sweep"],
    "patch": ["patch", *TOKENS, "--pair", "repeated", "--sites", "heads"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_result_set_is_strict_json_with_one_run_id(tiny_dir, tmp_path, command):
    old = os.umask(0o022)
    try:
        assert main([*COMMANDS[command], "--model", str(tiny_dir("neox")), "--out", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    files = sorted(tmp_path.iterdir())
    assert files and all(p.suffix == ".json" for p in files)
    values = [parse_strict(p.read_text()) for p in files]  # no NaN or Infinity tokens
    assert len({run_id_of(v) for v in values}) == 1 and run_id_of(values[0])
    assert {p.stat().st_mode & 0o777 for p in files} == {0o644}


def test_missing_scores_are_null(tiny_dir, tmp_path, monkeypatch):
    """The OV copying score is undefined for a value layout the tool does not know: null in the file, not NaN."""
    import dataclasses

    from induction_nnsight.scores import heads

    layout = heads.model_layout
    monkeypatch.setattr(heads, "model_layout", lambda model: dataclasses.replace(layout(model), value_layout=None))
    assert (
        main([*COMMANDS["heads"], "--kinds", "copying_ov", "--model", str(tiny_dir("neox")), "--out", str(tmp_path)])
        == 0
    )
    scores = parse_strict((tmp_path / "heads_results.json").read_text())["kinds"]["copying_ov"]["scores"]
    assert scores and all(value is None for row in scores for value in row)


def test_cache_command_lists_and_clears(tmp_path, monkeypatch, capsys):
    from induction_nnsight.models.cache import cache_entries

    monkeypatch.setenv("INDUCTION_NNSIGHT_CACHE", str(tmp_path))
    (tmp_path / "model.gguf").write_bytes(b"x" * 3 * 2**20)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "model.gguf" in out and "3.0 MiB" in out
    assert main(["cache", "--clear"]) == 0
    assert "removed" in capsys.readouterr().out and cache_entries(tmp_path) == []
