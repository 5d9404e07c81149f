"""The circuit's path-patching traces in sessions and the journal (issue 23), on the tiny Llama.

Each result is checked against the one-trace-per-request path (``traces_per_request=1``), which
tests/integration/test_path_patching.py checks against plain transformers.
"""

import json

import pytest

from induction_nnsight import Execution, repeated_tokens
from induction_nnsight.app.cli import main
from induction_nnsight.causal.circuit import CircuitMeasure, circuit
from induction_nnsight.ndif.journal import Journal
from tests.sent_requests import count_requests

SEQ = 6
# 16 runs into L1H2 (4 sources x k, q, v, total), 2 per trace: 2 traces start at layer 0, 6 at layer 1
ONE_PER_REQUEST = Execution(progress=False, max_tokens=2 * 2 * (2 * SEQ + 1), traces_per_request=1)
MEASURE = CircuitMeasure(targets=[(1, 2)], composition=False, exact_losses=None)


def rows():
    return repeated_tokens(2, SEQ, seed=0, low=1, high=128, bos_token_id=0)


def edges(model, execution) -> dict:
    """``(source, target, path) -> (score effect, loss effect)`` of every edge."""
    found = circuit(model, rows(), SEQ, measure=MEASURE, execution=execution)
    return {(e.source, e.target, e.path): (e.effect, e.loss_effect) for e in found.edges}


def assert_same_edges(a: dict, b: dict) -> None:
    """Equal edges: score effects within 1e-7 (the tiny model's are about 1e-5, 2e-6 apart at the
    closest), loss effects within 1e-5."""
    assert a.keys() == b.keys() and len(a) == 16
    for key in a:
        assert a[key][0] == pytest.approx(b[key][0], abs=1e-7), key
        assert a[key][1] == pytest.approx(b[key][1], abs=1e-5), key


@pytest.fixture(scope="module")
def reference(tiny_model):
    return edges(tiny_model("llama"), ONE_PER_REQUEST)


@pytest.mark.parametrize("remote", [False, "local"])
def test_sessions_equal_one_trace_per_request(tiny_model, reference, monkeypatch, remote):
    sent = count_requests(monkeypatch)
    bundled = edges(tiny_model("llama"), ONE_PER_REQUEST.replace(traces_per_request=4, remote=remote))
    assert_same_edges(bundled, reference)
    # 8 traces: a timing request of one, then sessions of at most 4
    assert [len(group) for group in sent] == [1, 4, 3]


def test_estimated_edges_probe_in_sessions_equal_one_trace_per_request(tiny_model, monkeypatch):
    """``exact_losses=1``: 12 k/q/v runs are first probed (estimated), then the strongest path-patched."""
    model, measure = tiny_model("llama"), CircuitMeasure(targets=[(1, 2)], composition=False, exact_losses=1)

    def run(execution):
        found = circuit(model, rows(), SEQ, measure=measure, execution=execution)
        return {(e.source, e.target, e.path): (e.effect, e.loss_effect) for e in found.edges}

    one = run(ONE_PER_REQUEST)
    sent = count_requests(monkeypatch)
    assert_same_edges(run(ONE_PER_REQUEST.replace(traces_per_request=4)), one)
    # the 6 probe traces (2 runs each: 12 k/q/v runs) go first, as a timing request of one and sessions
    assert [len(group) for group in sent][:3] == [1, 4, 1]


def test_an_interrupted_circuit_resumes_without_recomputing(tiny_model, reference, tmp_path, monkeypatch, capsys):
    model, path = tiny_model("llama"), tmp_path / "circuit_journal.json"
    bundled = ONE_PER_REQUEST.replace(traces_per_request=4)
    count_requests(monkeypatch, fail_after=2)
    with pytest.raises(RuntimeError, match="dropped"):
        edges(model, bundled.replace(journal=Journal.open(path, {"a": 1})))
    assert len(json.loads(path.read_text())["records"]) == 5  # strict JSON: the 1 + 4 finished chunks
    sent = count_requests(monkeypatch)
    capsys.readouterr()
    journal = Journal.open(path, {"a": 1})
    resumed = edges(model, bundled.replace(journal=journal))
    assert sum(len(group) for group in sent) == 3 and journal.resumed == 5
    assert "path patching: resumed 5 of 8 chunks" in capsys.readouterr().err
    assert_same_edges(resumed, reference)
    sent.clear()  # everything finished: a third run sends nothing
    assert edges(model, bundled.replace(journal=Journal.open(path, {"a": 1}))) == resumed
    assert sent == []


def circuit_args(tiny_dir, out, *extra):
    return [
        "circuit",
        *("--model", str(tiny_dir("llama")), "--low", "1", "--high", "128", "--batch", "2", "--seq-len", str(SEQ)),
        *("--targets", "L1H2", "--no-composition", "--exact-losses", "all", "--max-tokens", "52", "--out", str(out)),
        *extra,
    ]


def test_the_command_resumes_refuses_other_settings_and_starts_afresh(tiny_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    journal = out / "circuit_journal.json"

    def interrupted() -> int:
        """Chunks a run interrupted after its timing request left in the journal."""
        count_requests(monkeypatch, fail_after=1, error=KeyboardInterrupt)
        assert main(circuit_args(tiny_dir, out)) != 0
        return len(json.loads(journal.read_text())["records"])

    assert interrupted() == 1
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == [journal.name]  # no result file
    capsys.readouterr()
    assert main(circuit_args(tiny_dir, out, "--batch", "3")) == 2  # other settings: refused in one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch was 2 in the journal, now 3" in err[0] and "--no-resume" in err[0]
    sent = count_requests(monkeypatch)
    assert main(circuit_args(tiny_dir, out)) == 0
    resumed = [line for line in capsys.readouterr().err.splitlines() if "resumed" in line]
    assert resumed == [f"induction-nnsight: path patching: resumed 1 of 8 chunks from {journal}"]
    assert sum(len(group) for group in sent) == 7 and not journal.exists()
    first = json.loads((out / "circuit_results.json").read_text())
    assert interrupted() == 1
    sent = count_requests(monkeypatch)
    assert main(circuit_args(tiny_dir, out, "--no-resume")) == 0  # the journal ignored: every chunk again
    assert sum(len(group) for group in sent) == 8 and "resumed" not in capsys.readouterr().err
    again = json.loads((out / "circuit_results.json").read_text())
    assert len(first["edges"]) == len(again["edges"]) == 16
    for x, y in zip(first["edges"], again["edges"], strict=True):
        assert x.keys() == y.keys(), (x, y)
        for k in x:
            assert x[k] == (pytest.approx(y[k], abs=1e-5) if isinstance(y[k], float) else y[k]), (k, x, y)


def test_the_estimate_search_survives_the_remote_round_trip(tiny_model):
    """``--search estimate`` (probes, the loss gradients, the score estimates' trace, the verified runs) sent
    as requests through the dry run gives the local edges."""
    model = tiny_model("llama")
    measure = CircuitMeasure(targets=[(1, 2)], composition=False, search="estimate", verify=1)

    def run(execution):
        found = circuit(model, rows(), SEQ, measure=measure, execution=execution)
        return {(e.source, e.target, e.path): (e.effect, e.loss_effect, e.verified) for e in found.edges}

    local, sent = run(Execution(progress=False)), run(Execution(progress=False, remote="local"))
    assert local.keys() == sent.keys() and len(local) == 16
    for key, (effect, loss, verified) in local.items():
        assert sent[key][0] == pytest.approx(effect, abs=1e-6) and sent[key][1] == pytest.approx(loss, abs=1e-5)
        assert sent[key][2] == verified
