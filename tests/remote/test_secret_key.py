"""The NDIF API key never leaks: every remote failure path x every place text can go.

Paths: no key, closed port, bad host URL, a host that never answers (time-out), a
host that echoes the key back, a model not deployed on the loopback NDIF (skipped
when the service is not installed), a time-out on that server, and the CLI with
``--remote`` for every subcommand. Sinks: stdout and stderr (file-descriptor level),
log records at DEBUG, files under ``--out``, and the exception: ``str``, ``repr``,
its formatted traceback, and its ``__cause__`` / ``__context__`` chain, recursively.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
import traceback
from pathlib import Path

import pytest

from induction_nnsight import Execution, InductionError, load_model, repeated_tokens, scan
from induction_nnsight.app.cli import main
from induction_nnsight.ndif.backend import remote_backend
from induction_nnsight.ndif.settings import RemoteSettings
from induction_nnsight.ndif.status import model_key
from tests.cli_args import token_args
from tests.remote.conftest import API_KEY
from tests.remote.ndif_server import free_port

COMMANDS = {  # small, valid settings per subcommand (tiny GPT-2: vocabulary 128, 2 layers x 4 heads)
    "scan": [*token_args(seq_len=4), "--top", "2"],
    "heads": [*token_args(seq_len=4), "--top", "2"],
    "attention": ["--layer", "0", "--head", "0", "--prompt", "t1 t2 t3"],
    "ablate": [*token_args(seq_len=4), "--top-k", "2", "--draws", "2", "--no-sweep"],
    "patch": [*token_args(seq_len=4), "--pair", "repeated", "--sites", "heads"],
    "circuit": [*token_args(seq_len=4), "--targets", "L1H2", "--no-composition"],
}


# --- sinks --------------------------------------------------------------------------


def chain(error: BaseException | None, seen=None) -> list[BaseException]:
    """``error`` and every exception reachable through ``__cause__`` and ``__context__``."""
    seen = seen if seen is not None else []
    if error is None or any(error is e for e in seen):
        return seen
    seen.append(error)
    chain(error.__cause__, seen)
    chain(error.__context__, seen)
    return seen


def exception_texts(error: BaseException) -> dict[str, str]:
    texts = {"traceback": "".join(traceback.format_exception(error))}
    for i, e in enumerate(chain(error)):
        texts[f"chain[{i}] str"] = str(e)
        texts[f"chain[{i}] repr"] = repr(e)
        texts[f"chain[{i}] args"] = repr(e.args)
    return texts


def log_texts(caplog) -> dict[str, str]:
    texts = {}
    for i, record in enumerate(caplog.records):
        texts[f"log[{i}] {record.name}"] = record.getMessage()
        if record.exc_info:
            texts[f"log[{i}] exc_info"] = "".join(traceback.format_exception(*record.exc_info))
    return texts


def out_texts(out: Path) -> dict[str, str]:
    if not out.exists():
        return {}
    return {str(p): p.read_bytes().decode("utf-8", "replace") for p in sorted(out.rglob("*")) if p.is_file()}


def assert_no_key(texts: dict[str, str]) -> None:
    leaks = [where for where, text in texts.items() if API_KEY in text]
    assert not leaks, f"the API key appears in: {leaks}"


@pytest.fixture
def sinks(capfd, caplog):
    """``check(error=None, out=None)``: assert the key is in no sink, return ``(stdout, stderr)``."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "websocket", "nnsight", "urllib3", "induction_nnsight"):
        caplog.set_level(logging.DEBUG, logger=name)

    def check(error: BaseException | None = None, out: Path | None = None) -> tuple[str, str]:
        captured = capfd.readouterr()
        texts = {"stdout": captured.out, "stderr": captured.err, **log_texts(caplog)}
        if error is not None:
            texts.update(exception_texts(error))
        if out is not None:
            texts.update(out_texts(out))
        assert_no_key(texts)
        return captured.out, captured.err

    return check


# --- hosts that fail ------------------------------------------------------------------


def closed_port_host() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


@pytest.fixture
def silent_host():
    """A host that accepts connections and never answers (requests time out)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def echo_host(meta_gpt2):
    """A host whose /status lists the tiny GPT-2 as running, and which refuses every
    other request (the websocket handshake, a POST) with the client's API key quoted
    back in a header and in the body, as a careless server might."""
    key = model_key(meta_gpt2)
    status = json.dumps(
        {
            "deployments": {
                key: {
                    "repo_id": meta_gpt2.repo_id,
                    "revision": "main",
                    "model_key": key,
                    "deployment_level": "HOT",
                    "application_state": "RUNNING",
                }
            }
        }
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            if self.path.rstrip("/").endswith("/status"):
                code, body, echo = 200, status, ""
            else:
                echo = self.headers.get("ndif-api-key", "")
                code, body = 401, f"Invalid API key: {echo!r}".encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json" if code == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if echo:
                self.send_header("X-Rejected-Key", echo)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):  # keep the server quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def meta_gpt2(tiny_dir):
    return load_model(str(tiny_dir("gpt2")), remote=True, progress=False)


def tokens():
    return repeated_tokens(2, 4, seed=0, low=1, high=128, bos_token_id=0)


def run_remote_scan(model, remote) -> InductionError:
    with pytest.raises(InductionError) as error:
        scan(model, tokens(), 4, execution=Execution(remote=remote))
    return error.value


# --- library paths ----------------------------------------------------------------------


def test_no_api_key(meta_gpt2, monkeypatch, sinks):
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY")
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    error = run_remote_scan(meta_gpt2, closed_port_host())
    assert "NDIF_API_KEY" in str(error)
    sinks(error)


@pytest.mark.parametrize("check_hosted", [True, False], ids=["status", "websocket"])
def test_closed_port(meta_gpt2, sinks, check_hosted):
    """Refused at /status, or (not checking) at the websocket that carries the key in its header."""
    error = run_remote_scan(meta_gpt2, RemoteSettings(closed_port_host(), timeout=5, check_hosted=check_hosted))
    assert "cannot reach NDIF" in str(error)
    sinks(error)


@pytest.mark.parametrize("host", ["ftp://nowhere", "not a url", "127.0.0.1:5001", "http://", "http://[::1"])
def test_bad_host_url(meta_gpt2, sinks, host):
    with pytest.raises(Exception) as error:
        scan(meta_gpt2, tokens(), 4, execution=Execution(remote=RemoteSettings(host, timeout=2)))
    sinks(error.value)
    assert isinstance(error.value, InductionError), f"{type(error.value).__name__}: {error.value}"
    assert "--ndif-host" in str(error.value)


def test_api_key_as_host(meta_gpt2, sinks):
    """A key pasted where the host goes is not echoed back."""
    error = run_remote_scan(meta_gpt2, RemoteSettings(API_KEY, timeout=2))
    assert "--ndif-host" in str(error)
    sinks(error)


@pytest.mark.parametrize("check_hosted", [True, False], ids=["status", "websocket"])
def test_host_that_never_answers_times_out(meta_gpt2, sinks, silent_host, check_hosted):
    start = time.monotonic()
    error = run_remote_scan(meta_gpt2, RemoteSettings(silent_host, timeout=0.5, check_hosted=check_hosted))
    assert time.monotonic() - start < 10
    sinks(error)


def test_host_that_echoes_the_key(meta_gpt2, sinks, echo_host):
    error = run_remote_scan(meta_gpt2, RemoteSettings(echo_host, timeout=5))
    assert echo_host in str(error)
    sinks(error)


def test_key_from_nnsight_config_only(meta_gpt2, monkeypatch, sinks, echo_host):
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY")
    monkeypatch.setattr(CONFIG.API, "APIKEY", API_KEY)
    error = run_remote_scan(meta_gpt2, RemoteSettings(echo_host, timeout=5))
    sinks(error)


def test_backend_and_settings_do_not_show_the_key(meta_gpt2, echo_host):
    backend = remote_backend(meta_gpt2, RemoteSettings(echo_host, timeout=5))
    assert API_KEY not in repr(backend.settings) and API_KEY not in str(backend.settings)
    assert API_KEY not in repr(backend)


# --- on the loopback NDIF (skipped when it is not installed) ------------------------------


def test_model_not_deployed(ndif, tmp_path, sinks):
    from tests.conftest import _tiny_config, _tiny_tokenizer

    cls, config = _tiny_config("gpt2")
    cls(config).save_pretrained(tmp_path / "other")
    _tiny_tokenizer().save_pretrained(tmp_path / "other")
    other = load_model(str(tmp_path / "other"), remote=True, progress=False)
    error = run_remote_scan(other, ndif.host)
    assert "is not running on NDIF" in str(error)
    sinks(error)


def test_timeout_on_the_server(ndif, sinks):
    import nnsight

    model = ndif.models["gpt2"]
    with pytest.raises(InductionError, match="no result within") as error:
        with model.trace(tokens(), backend=remote_backend(model, RemoteSettings(ndif.host, timeout=1.0))):
            time.sleep(2.5)
            total = nnsight.save(model.output.logits.sum())  # noqa: F841
    sinks(error.value)


def test_a_failure_on_the_server(ndif, sinks):
    import nnsight

    model = ndif.models["gpt2"]
    with pytest.raises(InductionError) as error, model.trace(tokens(), backend=remote_backend(model, ndif.host)):
        bad = nnsight.save(model.output.logits[0, 0, 10_000])  # noqa: F841 - vocab is 128
    sinks(error.value)


# --- the CLI with --remote ------------------------------------------------------------------


def cli(command: str, model: str, out: Path, *remote: str) -> int:
    try:
        return main([command, "--model", model, *COMMANDS[command], "--out", str(out), *remote])
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("host", ["closed", "silent", "echo", "no-key", "env-host"])
def test_cli_remote_failure(command, host, tiny_dir, tmp_path, monkeypatch, sinks, request):
    from nnsight import CONFIG

    out = tmp_path / "out"
    if host == "closed":
        remote = ["--ndif-host", closed_port_host()]
    elif host == "silent":
        remote = ["--ndif-host", request.getfixturevalue("silent_host"), "--timeout", "0.5"]
    elif host == "echo":
        request.getfixturevalue("meta_gpt2")
        remote = ["--ndif-host", request.getfixturevalue("echo_host"), "--timeout", "5"]
    elif host == "no-key":
        monkeypatch.delenv("NDIF_API_KEY")
        monkeypatch.setattr(CONFIG.API, "APIKEY", None)
        remote = ["--ndif-host", closed_port_host()]
    else:  # the host from NDIF_HOST, --remote alone
        monkeypatch.setenv("NDIF_HOST", closed_port_host())
        remote = ["--remote"]
    error = None
    try:
        status = cli(command, str(tiny_dir("gpt2")), out, *remote)
    except Exception as raised:  # reported below, after the sinks are checked
        error, status = raised, None
    _, err = sinks(error, out)
    assert error is None, f"{type(error).__name__} escaped main: {error}"
    assert status == 2 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("command", list(COMMANDS))
def test_cli_remote_model_not_deployed(command, ndif, tmp_path, sinks):
    out = tmp_path / "out"
    from tests.conftest import _tiny_config, _tiny_tokenizer

    cls, config = _tiny_config("gpt2")
    cls(config).save_pretrained(tmp_path / "other")
    _tiny_tokenizer().save_pretrained(tmp_path / "other")
    status = cli(command, str(tmp_path / "other"), out, "--ndif-host", ndif.host, "--timeout", "60")
    _, err = sinks(None, out)
    assert status == 2 and "is not running on NDIF" in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("command", list(COMMANDS))
def test_cli_remote_success_writes_no_key(command, ndif, tiny_dir, tmp_path, sinks):
    out = tmp_path / "out"
    status = cli(command, str(tiny_dir("gpt2")), out, "--ndif-host", ndif.host, "--timeout", "120")
    _, err = sinks(None, out)
    assert status == 0, err
    assert any(out.iterdir())
