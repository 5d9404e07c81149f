"""Retries without a server: transient failures retried with backoff, permanent ones stop at once."""

import random

import httpx
import pytest
from nnsight.intervention.backends.remote import RemoteBackend, RemoteError

from induction_nnsight import InductionError
from induction_nnsight.ndif import retry
from induction_nnsight.ndif.backend import NdifBackend
from induction_nnsight.ndif.retry import RetryPolicy, Transient, classify, retrying
from induction_nnsight.ndif.settings import RemoteSettings
from induction_nnsight.ndif.transfers import Transfer
from tests.remote.conftest import API_KEY


def http_error(status: int, detail: str) -> RemoteError:
    """A RemoteError as nnsight raises it for an HTTP answer ``status``, the httpx error as its cause."""
    request = httpx.Request("POST", "http://h/request")
    response = httpx.Response(status, request=request, json={"detail": detail})
    try:
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as error:
            raise RemoteError(f"Failed to send request: {detail}") from error
    except RemoteError as error:
        return error


@pytest.mark.parametrize(
    ("error", "reached", "kind"),
    [
        (http_error(503, "Service Unavailable"), False, "transient"),
        (http_error(502, "Bad Gateway"), True, "transient"),
        (http_error(401, f"Invalid API key '{API_KEY}'"), True, "permanent"),
        (http_error(413, "Request Entity Too Large"), True, "permanent"),
        (http_error(400, "Client nnsight version 0.8.1 is below the minimum supported 99.0"), True, "mismatch"),
        (RemoteError("UnpicklingError: invalid load key"), True, "mismatch"),
        (RemoteError("Failed to send request: [Errno 111] Connection refused"), True, "transient"),
        (RemoteError("Failed to send request: [Errno 111] Connection refused"), False, "permanent"),
        (ConnectionResetError("reset by peer"), True, "transient"),
        (ConnectionResetError("reset by peer"), False, "permanent"),  # first contact: a wrong host
        (RemoteError("Failed to send request: timed out"), True, "transient"),
        (TimeoutError(), True, "permanent"),  # the client's own --timeout: its message names the fix
        (RemoteError("IndexError: index 10000 is out of bounds"), True, "permanent"),
    ],
)
def test_classify(error, reached, kind):
    assert classify(error, reached=reached) == kind


def test_backoff_bounds_and_jitter():
    policy = RetryPolicy(tries=5, base=2.0, cap=30.0)
    assert [policy.bound(n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    draws = [policy.delay(3, random.Random(seed)) for seed in range(200)]
    assert all(0.0 <= d <= 8.0 for d in draws) and max(draws) - min(draws) > 4.0  # jittered over the bound


def backend(tries=4):
    settings = RemoteSettings(host="http://127.0.0.1:1", retry=RetryPolicy(tries=tries, base=0.5, cap=1.0))
    settings.transfers.append(Transfer(1, 1, 0.0))  # the host answered earlier in this job
    return NdifBackend("key", host=settings.host, api_key=API_KEY, env={}, settings=settings)


@pytest.fixture
def waits(monkeypatch):
    slept = []
    monkeypatch.setattr(retry, "_sleep", slept.append)
    return slept


def failing(monkeypatch, errors):
    """Make nnsight's RemoteBackend raise ``errors`` in turn, then return a result."""
    calls = []

    def call(self, tracer=None):
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return {"ok": 1}

    monkeypatch.setattr(RemoteBackend, "__call__", call)
    return calls


def test_transient_failures_are_retried_with_one_line_each(monkeypatch, waits, capsys):
    calls = failing(monkeypatch, [http_error(503, f"down, key {API_KEY}"), ConnectionResetError("reset by peer")])
    assert backend()(None) == {"ok": 1}
    assert len(calls) == 3 and len(waits) == 2 and all(0 <= w <= 1.0 for w in waits)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "retry 1 of 3" in lines[0] and "retry 2 of 3" in lines[1]
    assert API_KEY not in "\n".join(lines) and "***" in lines[0]


def test_retries_run_out_in_one_line(monkeypatch, waits, capsys):
    failing(monkeypatch, [http_error(503, "Service Unavailable")] * 5)
    with pytest.raises(Transient) as error:
        backend(tries=3)(None)
    message = str(error.value)
    assert "gave up after 3 attempts" in message and len(message.splitlines()) == 1 and len(waits) == 2


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (http_error(401, f"Invalid API key '{API_KEY}'"), "rejected the request"),
        (http_error(400, "Client nnsight version 0.8.1 is below the minimum supported 99.0"), "nnsight version"),
        (http_error(413, "Request Entity Too Large"), "Too Large"),
        (RemoteError("IndexError: index out of range"), "NDIF failed to run the trace"),
    ],
)
def test_permanent_failures_stop_at_once(monkeypatch, waits, capsys, error, expected):
    calls = failing(monkeypatch, [error] * 3)
    with pytest.raises(InductionError) as raised:
        backend()(None)
    message = str(raised.value)
    assert not isinstance(raised.value, Transient) and expected in message
    assert len(calls) == 1 and waits == [] and capsys.readouterr().err == ""
    assert len(message.splitlines()) == 1 and API_KEY not in message and raised.value.__cause__ is None


def test_retrying_passes_other_errors_through(waits):
    with pytest.raises(ZeroDivisionError):
        retrying(lambda: 1 / 0, RetryPolicy(tries=3))
    assert waits == []
