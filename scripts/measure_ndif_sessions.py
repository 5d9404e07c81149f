"""Measure sessions, the size split and a restart on the loopback NDIF service; write results/ndif_sessions.json.

Contributors' tool (it uses the test server of tests/remote; run
``scripts/install_ndif_test_server.sh`` first). A zero-ablation sweep of the tiny random Llama of
the test suite (2 layers x 4 heads, 3 rows of 13 tokens, one ablation per trace) is sent

- one trace per request (``traces_per_request=1``),
- in sessions (the default: a timing request of one trace, then the rest in one session),
- in sessions under a request-size budget between one trace's and seven traces' request,
- in sessions with the API service killed after the second request and restarted 3 s later,

and the requests, bytes, seconds, retries and the largest difference from the first route are
recorded. docs/ndif_scale.md quotes the file.

    PYTHONPATH=$PWD python scripts/measure_ndif_sessions.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("NDIF_API_KEY", "loopback-test-key")  # the test server has auth off
sys.path.insert(0, str(REPO))

from induction_nnsight import Execution, load_model, repeated_tokens  # noqa: E402
from induction_nnsight.causal.ablation.sweep import ablation_metrics, repeated_half_metric  # noqa: E402
from induction_nnsight.ndif import sessions  # noqa: E402
from induction_nnsight.ndif.retry import RetryPolicy  # noqa: E402
from induction_nnsight.ndif.settings import RemoteSettings  # noqa: E402
from induction_nnsight.ndif.status import model_key  # noqa: E402
from tests.conftest import save_tiny_model  # noqa: E402
from tests.remote.ndif_server import NdifTestServer  # noqa: E402
from tests.remote.test_faults import kill_api, start_api  # noqa: E402

SEQ = 6
SETS = [[(layer, head)] for layer in range(2) for head in range(4)]


def sweep(model, execution):
    tokens = repeated_tokens(3, SEQ, seed=0, low=1, high=128, bos_token_id=0)
    return ablation_metrics(model, tokens, SETS, repeated_half_metric(SEQ, True), execution=execution)


def route(model, host, label, reference=None, **changes):
    settings = RemoteSettings(host, timeout=120, retry=RetryPolicy(tries=12, base=1.0, cap=8.0))
    execution = Execution(progress=False, max_tokens=3 * (2 * SEQ + 1), remote=settings, **changes)
    err = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stderr(err):
        values = sweep(model, execution)
    seconds = time.monotonic() - start
    row = {
        "route": label,
        "traces": len(SETS),
        "requests": len(settings.transfers),
        "bytes_up": sum(t.sent_bytes for t in settings.transfers),
        "bytes_down": sum(t.received_bytes for t in settings.transfers),
        "largest_request_bytes": max(t.sent_bytes for t in settings.transfers),
        "seconds": round(seconds, 2),
        "retries": sum("retry " in line for line in err.getvalue().splitlines()),
        "max_abs_difference": None if reference is None else float((values - reference).abs().max()),
    }
    print(row, file=sys.stderr)
    return values, row


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ndif-sessions-"))
    model_dir = save_tiny_model("llama", work / "tiny-llama")
    model = load_model(str(model_dir), remote=True, progress=False)
    server = NdifTestServer([model_key(model)]).start()
    try:
        reference, one = route(model, server.host, "one trace per request", traces_per_request=1)
        _, bundled = route(model, server.host, "sessions (default budgets)", reference)
        budget = (one["largest_request_bytes"] + bundled["largest_request_bytes"]) // 2
        _, split = route(
            model, server.host, f"sessions, request budget {budget} bytes", reference, request_bytes=budget
        )
        send, sent = sessions._send, []

        def send_then_restart(*args):
            values = send(*args)
            sent.append(1)
            if len(sent) == 2:
                kill_api(server)
                threading.Thread(target=lambda: (time.sleep(3), start_api(server)), daemon=True).start()
            return values

        sessions._send = send_then_restart
        try:
            _, restarted = route(
                model,
                server.host,
                "one trace per request, API restarted after request 2",
                reference,
                traces_per_request=1,
            )
        finally:
            sessions._send = send
    finally:
        server.cleanup()
    out = REPO / "results" / "ndif_sessions.json"
    out.parent.mkdir(exist_ok=True)
    results = {
        "what": "zero-ablation sweep of the tiny random Llama (2 layers x 4 heads), 3 rows of 13 tokens, "
        "one ablation per trace, on the loopback NDIF API service (tests/remote) with its CPU worker",
        "routes": {"one_per_request": one, "sessions": bundled, "split": split, "restarted": restarted},
        "request_budget_bytes": budget,
    }
    out.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
