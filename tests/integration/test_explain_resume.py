"""``explain`` resumes from its journals after an interruption (issue 36, item 3), on a tiny random model.

A run interrupted in its third stage (circuit) leaves the first two stages' records and the third's chunk
journal in ``OUT/explain_journal/``; the rerun reads the two stages back (it does not call their jobs),
reads the circuit's chunks back from its journal, runs the rest, and writes the results an uninterrupted run
writes (run ids and timings aside). A rerun with other settings is refused in one line.
"""

from __future__ import annotations

import re

import pytest

from induction_nnsight.app import explain_job
from induction_nnsight.app.cli import main
from induction_nnsight.app.explain_journal import JOURNAL_DIR, ExplainJournal
from induction_nnsight.errors import InductionError
from induction_nnsight.strict_json import parse_strict
from tests.integration.test_explain import TINY

JOBS = ("run_heads", "run_ablate", "run_circuit", "run_attention", "run_icl")


def timeless(path) -> dict:
    """``explain_results.json`` without its run id and what it says about time."""
    results = parse_strict(path.read_text())
    results.pop("run_id")
    results.pop("cost")
    results["sentences"].pop("cost")
    return results


def count_calls(monkeypatch) -> list[str]:
    """Record each stage job ``explain`` calls, by name (the jobs still run)."""
    calls: list[str] = []

    def counting(name: str, job):
        def counted(*args, **kwargs):
            calls.append(name)
            return job(*args, **kwargs)

        return counted

    for name in JOBS:
        monkeypatch.setattr(explain_job, name, counting(name, getattr(explain_job, name)))
    return calls


def test_an_interrupted_explain_resumes_and_writes_the_same_results(tiny_dir, tmp_path, monkeypatch, capsys):
    args = ["explain", "--model", str(tiny_dir("gpt2")), *TINY]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    expected = timeless(tmp_path / "whole" / "explain_results.json")

    out = tmp_path / "out"
    circuit = explain_job.run_circuit

    def interrupted(*job_args, **kwargs):
        circuit(*job_args, **kwargs)  # every chunk of the stage journaled, then Ctrl-C before its record
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(explain_job, "run_circuit", interrupted)
        assert main([*args, "--out", str(out)]) == 130
    journal = out / JOURNAL_DIR
    assert sorted(p.name for p in journal.iterdir()) == ["ablate.json", "circuit_journal.json", "heads.json"]
    assert not (out / "explain_results.json").exists()

    capsys.readouterr()
    assert main([*args, "--seed", "1", "--out", str(out)]) == 2  # other settings: refused, nothing run
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed was 0 in the journal, now 1" in err and "--no-resume" in err

    calls = count_calls(monkeypatch)
    assert main([*args, "--out", str(out)]) == 0
    assert calls == ["run_circuit", "run_attention", "run_icl"]  # heads and ablate read back, not run
    err = capsys.readouterr().err
    assert "heads: resumed from" in err and "ablate: resumed from" in err
    assert re.search(r"resumed (\d+) of \1 chunks from .*circuit_journal\.json", err)  # the circuit's chunks
    assert not journal.exists()  # the report is written: nothing left to resume
    assert timeless(out / "explain_results.json") == expected


def test_the_journal_refuses_other_settings_and_no_resume_starts_afresh(tmp_path):
    journal = ExplainJournal.open(tmp_path, {"seed": 0, "batch": 4})
    journal.record("heads", {"results": {"score": 0.5}, "files": {}, "cost": {}})
    journal.chunks("ablate").record({})  # an interrupted stage's chunk journal
    with pytest.raises(InductionError, match=r"batch was 4 in the journal, now 5\): rerun"):
        ExplainJournal.open(tmp_path, {"seed": 0, "batch": 5})
    fresh = ExplainJournal.open(tmp_path, {"seed": 0, "batch": 5}, resume=False)
    assert fresh.finished("heads") is None and not list(fresh.folder.glob("*"))
    assert ExplainJournal.open(tmp_path, {"seed": 0, "batch": 4}).finished("heads") is None
