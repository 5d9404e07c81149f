"""Remote errors caught before or around a request, without a server: one line, no key."""

import pytest
import torch

from induction_nnsight import Execution, InductionError, load_model, repeated_tokens, scan
from induction_nnsight.app.cli import main
from induction_nnsight.ndif.backend import NdifBackend
from induction_nnsight.ndif.settings import RemoteSettings, as_settings, on_ndif, resolve_host
from tests.cli_args import tiny_cli
from tests.remote.conftest import API_KEY
from tests.remote.ndif_server import free_port


@pytest.fixture(scope="module")
def meta_gpt2(tiny_dir):
    return load_model(str(tiny_dir("gpt2")), remote=True, progress=False)


def tokens():
    return repeated_tokens(2, 4, seed=0, low=1, high=128, bos_token_id=0)


def closed_port_host():
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_remote_models_have_no_weights_and_sdpa(meta_gpt2):
    assert meta_gpt2._module.lm_head.weight.device == torch.device("meta")
    assert meta_gpt2.config._attn_implementation == "sdpa"


def test_remote_flag_forms():
    assert as_settings(False) is None and as_settings("local") == "local"
    assert as_settings("http://h:1").host == "http://h:1" and as_settings(True) == RemoteSettings()
    assert on_ndif(True) and on_ndif("http://h:1") and not on_ndif("local") and not on_ndif(False)
    with pytest.raises(InductionError, match="--ndif-host"):
        resolve_host("ftp://nowhere")


def test_no_api_key(meta_gpt2, monkeypatch):
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY")
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    with pytest.raises(InductionError, match="NDIF_API_KEY") as error:
        scan(meta_gpt2, tokens(), 4, execution=Execution(remote=closed_port_host()))
    assert len(str(error.value).splitlines()) == 1


def test_api_key_from_nnsight_config(meta_gpt2, monkeypatch):
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY")
    monkeypatch.setattr(CONFIG.API, "APIKEY", API_KEY)
    with pytest.raises(InductionError, match="cannot reach NDIF") as error:  # past the key check
        scan(meta_gpt2, tokens(), 4, execution=Execution(remote=closed_port_host()))
    assert API_KEY not in str(error.value)


def test_host_unreachable(meta_gpt2):
    host = closed_port_host()
    with pytest.raises(InductionError) as error:
        scan(meta_gpt2, tokens(), 4, execution=Execution(remote=host))
    message = str(error.value)
    assert message.startswith(f"cannot reach NDIF at {host}") and "--ndif-host" in message
    assert len(message.splitlines()) == 1 and API_KEY not in message
    assert error.value.__cause__ is None


def test_host_from_ndif_host_env(meta_gpt2, monkeypatch):
    host = closed_port_host()
    monkeypatch.setenv("NDIF_HOST", host)
    with pytest.raises(InductionError, match=f"cannot reach NDIF at {host}"):
        scan(meta_gpt2, tokens(), 4, execution=Execution(remote=True))


def test_a_server_message_quoting_the_key_is_redacted(monkeypatch):
    """Servers may echo the key ("Invalid API key format: '<key>'"); it must not reach the user."""
    from nnsight.intervention.backends.remote import RemoteBackend, RemoteError

    def reject(self, tracer=None):
        raise RemoteError(f"Failed to send request: Invalid API key format: '{API_KEY}'. Use a UUID.")

    monkeypatch.setattr(RemoteBackend, "__call__", reject)
    backend = NdifBackend("key", host="http://127.0.0.1:1", api_key=API_KEY, env={}, settings=RemoteSettings())
    with pytest.raises(InductionError) as error:
        backend(None)
    message = str(error.value)
    assert "rejected the request" in message and "***" in message and API_KEY not in message
    assert API_KEY not in repr(error.value) and error.value.__cause__ is None


def test_cli_unreachable_host_exits_2(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(tiny_cli("scan", tiny_dir("gpt2"), out, "--ndif-host", closed_port_host(), seq_len=4))
    captured = capsys.readouterr()
    assert status == 2 and "cannot reach NDIF" in captured.err and "Traceback" not in captured.err
    assert API_KEY not in captured.err + captured.out
    assert not out.exists() or not any(out.iterdir())


def test_cli_rejects_a_non_positive_timeout(tiny_dir, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["scan", "--model", str(tiny_dir("gpt2")), "--remote", "--timeout", "0", "--out", str(tmp_path)])
    assert exit_.value.code == 2
