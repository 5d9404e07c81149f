"""Sessions, the journal and the request-size split on tiny models (issue 23), locally and as a dry run.

Each result is checked against the one-trace-per-request path (``traces_per_request=1``), which
the tests of test_tiny_causal.py check against plain transformers.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from induction_nnsight import Execution, repeated_tokens
from induction_nnsight.app.cli import main
from induction_nnsight.causal.ablation.sweep import ablation_metrics, repeated_half_metric
from induction_nnsight.ndif import dry_run
from induction_nnsight.ndif.journal import Journal
from induction_nnsight.ndif.transfers import RequestTooLarge
from tests.cli_args import tiny_cli
from tests.sent_requests import count_requests

SEQ = 6
ONE_PER_REQUEST = Execution(progress=False, max_tokens=3 * (2 * SEQ + 1), traces_per_request=1)


def rows(batch=3):
    return repeated_tokens(batch, SEQ, seed=0, low=1, high=128, bos_token_id=0)


def ablation_sweep(model, tokens, execution):
    """The repeated-half loss with each of the tiny Llama's 8 heads zero-ablated alone: ``[8]``."""
    sets = [[(layer, head)] for layer in range(2) for head in range(4)]
    return ablation_metrics(model, tokens, sets, repeated_half_metric(SEQ, True), execution=execution)


@pytest.mark.parametrize("remote", [False, "local"])
def test_sessions_equal_one_trace_per_request(tiny_model, monkeypatch, remote):
    model, tokens = tiny_model("llama"), rows()
    reference = ablation_sweep(model, tokens, execution=ONE_PER_REQUEST)  # [layers, heads]
    sent = count_requests(monkeypatch)
    bundled = ablation_sweep(model, tokens, execution=ONE_PER_REQUEST.replace(traces_per_request=16, remote=remote))
    torch.testing.assert_close(bundled, reference, rtol=1e-5, atol=1e-5)
    # 8 ablations, one per trace: a timing request of one trace, then the rest in one session
    assert [len(group) for group in sent] == [1, 7]


def test_time_budget_limits_traces_per_request(tiny_model, monkeypatch):
    model, tokens = tiny_model("llama"), rows()
    sent = count_requests(monkeypatch)
    ablation_sweep(model, tokens, execution=ONE_PER_REQUEST.replace(traces_per_request=16, request_seconds=1e-9))
    assert [len(group) for group in sent] == [1] * 8


def test_request_over_the_size_budget_is_split(tiny_model, monkeypatch):
    """A session over ``request_bytes`` is split until each part fits. Each trace counts 1,000 bytes
    here: the tiny model's real requests grow by a few bytes per trace and drift between calls, too
    little to size a budget by (the real bytes are checked by the next test and tests/remote)."""
    model, tokens = tiny_model("llama"), rows()
    reference = ablation_sweep(model, tokens, execution=ONE_PER_REQUEST)
    sent, sizes = count_requests(monkeypatch), []

    def sized(size: int, budget: int | None) -> None:
        counted = 1000 * len(sent[-1])
        sizes.append(("refused" if budget is not None and counted > budget else "sent", counted))
        if sizes[-1][0] == "refused":
            raise RequestTooLarge(counted, budget)

    monkeypatch.setattr(dry_run, "check_size", sized)
    split = ablation_sweep(
        model, tokens, execution=ONE_PER_REQUEST.replace(remote="local", traces_per_request=16, request_bytes=3500)
    )
    torch.testing.assert_close(split, reference, rtol=1e-5, atol=1e-5)
    assert ("refused", 7000) in sizes  # the first session after the lone timing request
    done = [len(group) for group, (kind, _) in zip(sent, sizes, strict=True) if kind == "sent"]
    assert sum(done) == 8 and max(done) == 3


def test_one_trace_over_the_budget_is_one_line(tiny_model):
    model, tokens = tiny_model("llama"), rows()
    with pytest.raises(RequestTooLarge, match="--max-tokens"):
        ablation_sweep(model, tokens, execution=ONE_PER_REQUEST.replace(remote="local", request_bytes=100))


def test_journal_resumes_without_recomputing(tiny_model, tmp_path, monkeypatch, capsys):
    model, tokens = tiny_model("llama"), rows()
    path = tmp_path / "ablate_journal.json"
    first = ablation_sweep(model, tokens, execution=ONE_PER_REQUEST.replace(journal=Journal.open(path, {"a": 1})))
    saved = json.loads(path.read_text())  # strict JSON
    assert len(saved["records"]) == 8
    sent = count_requests(monkeypatch)
    journal = Journal.open(path, {"a": 1})
    again = ablation_sweep(model, tokens, execution=ONE_PER_REQUEST.replace(journal=journal))
    assert sent == [] and journal.resumed == 8
    assert "resumed 8 of 8 chunks" in capsys.readouterr().err
    torch.testing.assert_close(again, first, rtol=0, atol=1e-7)
    # other tokens: other keys, so nothing is resumed
    other = ablation_sweep(
        model, rows(batch=2), execution=ONE_PER_REQUEST.replace(journal=Journal.open(path, {"a": 1}))
    )
    assert sum(len(group) for group in sent) == 8 and other.shape == first.shape


def test_journal_with_other_settings_is_refused_in_one_line(tmp_path):
    path = tmp_path / "x_journal.json"
    Journal.open(path, {"seed": 0, "batch": 4}).record({"k": torch.zeros(2)})
    with pytest.raises(Exception, match=r"batch was 4 in the journal, now 5.*--no-resume") as error:
        Journal.open(path, {"seed": 0, "batch": 5})
    assert "\n" not in str(error.value)
    assert Journal.open(path, {"seed": 0, "batch": 5}, resume=False).records == {}


# The CLI, killed with SIGKILL after its journal holds 3 requests' chunks.
KILLED_CLI = textwrap.dedent("""
    import os, signal, sys
    from induction_nnsight.app import cli
    from induction_nnsight.ndif.journal import Journal

    record = Journal.record
    count = [0]

    def record_then_die(self, results):
        record(self, results)
        count[0] += 1
        if count[0] == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    Journal.record = record_then_die
    sys.exit(cli.main(sys.argv[1:]))
""")


def ablate_args(tiny_dir, out, *extra):
    return tiny_cli("ablate", tiny_dir("llama"), out, "--top-k", "2", "--draws", "2", "--max-tokens", "26", *extra)


def test_sigkill_mid_sweep_resumes_with_identical_results(tiny_dir, tmp_path, monkeypatch, capsys):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_CLI, *ablate_args(tiny_dir, killed)], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    journal = killed / "ablate_journal.json"
    assert [p.name for p in killed.iterdir() if not p.name.startswith(".")] == [journal.name]
    n_recorded = len(json.loads(journal.read_text())["records"])
    assert n_recorded >= 3
    sent = count_requests(monkeypatch)
    capsys.readouterr()
    assert main(ablate_args(tiny_dir, killed)) == 0
    assert "resumed" in capsys.readouterr().err
    recomputed = sum(len(group) for group in sent)
    sent.clear()
    assert main(ablate_args(tiny_dir, clean)) == 0
    assert recomputed == sum(len(group) for group in sent) - n_recorded  # finished chunks are not recomputed
    assert not journal.exists()  # removed once the results are written
    a = json.loads((killed / "ablation_results.json").read_text())
    b = json.loads((clean / "ablation_results.json").read_text())
    for key in ("baseline", "top_vs_random", "curve", "sweep"):
        assert_close_json(a[key], b[key])


def assert_close_json(a, b, path="$"):
    """Equal JSON values, floats within 1e-6 (wall-clock ``seconds`` aside)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a.keys() - {"seconds"}:
            assert_close_json(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close_json(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-6), path
    else:
        assert a == b, path


def test_no_resume_and_changed_settings_on_the_command_line(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    Journal.open(out / "ablate_journal.json", {"command": "ablate", "batch": 99}).record({"k": torch.zeros(1)})
    args = ablate_args(tiny_dir, out)
    capsys.readouterr()  # the fixtures' own output (saving the tiny model)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch was 99 in the journal, now 2" in err[0] and "--no-resume" in err[0]
    assert not (out / "ablation_results.json").exists()
    assert main(ablate_args(tiny_dir, out, "--no-resume")) == 0
    assert (out / "ablation_results.json").exists() and not (out / "ablate_journal.json").exists()


def test_journal_is_strict_json_and_never_partial(tmp_path, monkeypatch):
    path = tmp_path / "x_journal.json"
    journal = Journal.open(path, {"seed": 0})
    journal.record({"a": torch.tensor([1.0, float("nan")])})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    before = path.read_text()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        journal.record({"b": torch.ones(3)})
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
    monkeypatch.undo()
    back = Journal.open(path, {"seed": 0}).get("a")
    assert back[0] == 1.0 and torch.isnan(back[1])
