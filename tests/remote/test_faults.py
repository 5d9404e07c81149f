"""Faults on the loopback NDIF service mid-sweep: a restarted API, one killed for good, an error answer,
a request over the size budget, a version mismatch (issue 23).

Every result is checked against the same sweep run locally (sdpa, as the worker runs it) with one
trace per request.
"""

import subprocess
import sys
import threading
import time

import httpx
import pytest
import torch
from nnsight.intervention.backends.remote import RemoteBackend, RemoteError

from induction_nnsight import InductionError
from induction_nnsight.ndif import sessions
from induction_nnsight.ndif.journal import Journal
from induction_nnsight.ndif.retry import RetryPolicy
from induction_nnsight.ndif.settings import RemoteSettings
from induction_nnsight.ndif.transfers import RequestTooLarge
from tests.integration.test_sessions_journal import ONE_PER_REQUEST, ablation_sweep, count_requests, rows
from tests.remote.conftest import API_KEY
from tests.remote.ndif_server import _http_ok

# about a minute of restarts and backoffs: the slow tier, which .ci/run runs once
pytestmark = pytest.mark.slow

PATIENT = RetryPolicy(tries=40, base=0.5, cap=2.0)  # ~75 s in all, every 2 s: the API takes 5-20 s to start


def remote(ndif, policy=PATIENT, **changes):
    settings = RemoteSettings(ndif.host, timeout=120, retry=policy)
    return ONE_PER_REQUEST.replace(remote=settings, **changes), settings


@pytest.fixture(scope="module")
def reference(tiny_model):
    return ablation_sweep(tiny_model("llama", "sdpa"), rows(), ONE_PER_REQUEST)


def api_process(server) -> subprocess.Popen:
    port = server.host.rsplit(":", 1)[1]
    return next(p for p in server.procs if "uvicorn" in p.args and port in p.args and p.poll() is None)


def kill_api(server) -> None:
    proc = api_process(server)
    proc.kill()
    proc.wait(timeout=10)
    server.procs.remove(proc)  # the server's readiness checks fail on an exited process


def start_api(server) -> None:
    port = int(server.host.rsplit(":", 1)[1])
    server._spawn("api", server._api_command(port), server.env)
    server._wait(lambda: _http_ok(f"{server.host}/status"), "restarted NDIF API", 60)


def after_requests(monkeypatch, n: int, action) -> list:
    """Run ``action()`` once, right after the ``n``-th request of the sweep finished."""
    sent, send = [], sessions._send

    def send_then_act(model, group, trace_chunk, execution, keys=None):
        values = send(model, group, trace_chunk, execution, keys)
        sent.append(list(group))
        if len(sent) == n:
            action()
        return values

    monkeypatch.setattr(sessions, "_send", send_then_act)
    return sent


def test_api_restarted_mid_sweep_the_job_completes_after_retries(ndif, reference, monkeypatch, capsys):
    restart = threading.Thread(target=lambda: (time.sleep(3), start_api(ndif.server)), daemon=True)

    def restart_later():
        kill_api(ndif.server)
        restart.start()

    sent = after_requests(monkeypatch, 2, restart_later)
    execution, settings = remote(ndif)
    try:
        values = ablation_sweep(ndif.models["llama"], rows(), execution)
    finally:
        restart.join(timeout=120)
    torch.testing.assert_close(values, reference, rtol=1e-5, atol=1e-5)
    err = capsys.readouterr().err
    retries = [line for line in err.splitlines() if "retry " in line]
    assert retries and all("cannot reach NDIF" in line or "rejected" in line for line in retries), err[-2000:]
    assert sum(len(g) for g in sent) == 8 and API_KEY not in err


def test_api_killed_for_good_the_rerun_resumes_from_the_journal(ndif, reference, monkeypatch, tmp_path, capsys):
    path = tmp_path / "ablate_journal.json"
    send = sessions._send
    after_requests(monkeypatch, 3, lambda: kill_api(ndif.server))
    execution, _ = remote(ndif, RetryPolicy(tries=2, base=0.2, cap=0.5), journal=Journal.open(path, {"s": 1}))
    try:
        with pytest.raises(InductionError) as error:
            ablation_sweep(ndif.models["llama"], rows(), execution)
    finally:
        start_api(ndif.server)
    message = str(error.value)
    assert "cannot reach NDIF" in message and "gave up after 2 attempts" in message
    assert len(message.splitlines()) == 1 and API_KEY not in message
    monkeypatch.setattr(sessions, "_send", send)
    sent = count_requests(monkeypatch)
    journal = Journal.open(path, {"s": 1})
    execution, _ = remote(ndif, journal=journal)
    values = ablation_sweep(ndif.models["llama"], rows(), execution)
    assert journal.resumed == 3 and sum(len(g) for g in sent) == 5  # the 3 finished chunks are not recomputed
    torch.testing.assert_close(values, reference, rtol=1e-5, atol=1e-5)
    assert "resumed 3 of 8 chunks" in capsys.readouterr().err


def test_one_request_answered_with_an_error_is_retried(ndif, reference, monkeypatch, capsys):
    post, failed = RemoteBackend._post, []

    def post_once_failing(self, request, blob):
        if not failed:
            failed.append(1)
            response = httpx.Response(503, request=httpx.Request("POST", f"{self.host}/request"))
            try:
                response.raise_for_status()
            except httpx.HTTPStatusError as cause:
                raise RemoteError("Failed to send request: Service Unavailable") from cause
        return post(self, request, blob)

    monkeypatch.setattr(RemoteBackend, "_post", post_once_failing)
    execution, _ = remote(ndif, RetryPolicy(tries=3, base=0.1, cap=0.2))
    values = ablation_sweep(ndif.models["llama"], rows(), execution)
    torch.testing.assert_close(values, reference, rtol=1e-5, atol=1e-5)
    assert sum("retry 1 of 2" in line for line in capsys.readouterr().err.splitlines()) == 1


def test_a_request_over_the_size_budget_is_split(ndif, reference, monkeypatch):
    refused, send = [], sessions._send

    def sized(model, group, trace_chunk, execution, keys=None):
        try:
            return send(model, group, trace_chunk, execution, keys)
        except RequestTooLarge as error:
            refused.append((len(group), error.size))
            raise

    monkeypatch.setattr(sessions, "_send", sized)
    execution, settings = remote(ndif, traces_per_request=16)
    ablation_sweep(ndif.models["llama"], rows(), execution)
    one, seven = (t.sent_bytes for t in settings.transfers)  # a timing request, then one session of 7
    execution, settings = remote(ndif, traces_per_request=16, request_bytes=(one + seven) // 2)
    values = ablation_sweep(ndif.models["llama"], rows(), execution)
    torch.testing.assert_close(values, reference, rtol=1e-5, atol=1e-5)
    assert refused and refused[0][0] == 7 and refused[0][1] > (one + seven) // 2
    assert len(settings.transfers) > 2 and all(t.sent_bytes <= (one + seven) // 2 for t in settings.transfers)


def test_a_version_mismatch_is_one_line(ndif, monkeypatch):
    strict = ndif.server.second_api(NDIF_MIN_NNSIGHT_VERSION="99.0")
    execution = ONE_PER_REQUEST.replace(remote=RemoteSettings(strict, timeout=60, retry=PATIENT))
    start = time.monotonic()
    with pytest.raises(InductionError) as error:
        ablation_sweep(ndif.models["llama"], rows(), execution)
    message = str(error.value)
    assert "nnsight" in message and "install the nnsight version the server runs" in message
    assert len(message.splitlines()) == 1 and API_KEY not in message and time.monotonic() - start < 30


if sys.platform == "win32":  # pragma: no cover - process control differs
    pytestmark = pytest.mark.skip("POSIX only")
