"""Running traces on NDIF (the National Deep Inference Fabric), or a local dry run of it.

Trace functions take ``remote`` as a flag and hand it to :func:`remote_backend`,
which turns it into the nnsight backend of their ``model.trace`` (or
``model.session``) block:

- ``False``: run here (no backend).
- ``True``, a host URL, or :class:`RemoteSettings`: send the trace to NDIF. The
  API key comes from ``NDIF_API_KEY`` (or nnsight's config), the host from the
  URL, else ``NDIF_HOST``, else nnsight's configured host.
- ``"local"``: a dry run of a remote request (:class:`DryRunBackend`): the trace
  is serialized exactly as for NDIF, deserialized with this package hidden (NDIF
  does not have it), run, and its saved values go through the result's wire
  format, so what would break remotely breaks here.

Before a request is sent the API key is checked, the model is checked to be
running on the host (the error lists the models that are), and this package is
registered for pickling by value, so the functions a trace calls travel as
source. Failures become one-line :class:`~induction_nnsight.errors.InductionError`
messages that never contain the API key.

Several traces that belong together go in one request through a session::

    with model.session(backend=remote_backend(model, remote)):
        with model.trace(clean):
            clean_loss = nnsight.save(...)
        with model.trace(corrupted):
            corrupted_loss = nnsight.save(...)

(inner traces take no backend: the whole session block runs on the server).
"""

from __future__ import annotations

import importlib.abc
import io
import json
import linecache
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from nnsight.intervention.backends.remote import RemoteBackend, RemoteError

from ..errors import InductionError

LOCAL = "local"
DEFAULT_TIMEOUT = 600.0
STATUS_TIMEOUT = 10.0
_PACKAGE = __name__.split(".")[0]
_DEPLOYED_LEVELS = {"HOT", "WARM"}


@dataclass
class Transfer:
    """Bytes of one remote request: the serialized trace sent, the saved values received."""

    sent_bytes: int
    received_bytes: int
    seconds: float


@dataclass
class RemoteSettings:
    """Where and how to run traces on NDIF.

    The API key is deliberately not a field: it is read from ``NDIF_API_KEY`` or
    nnsight's config when a request is made, so settings can be logged and saved.

    Attributes:
        host: NDIF API URL; None means ``NDIF_HOST``, else nnsight's configured host.
        timeout: Seconds to wait for a request's result before giving up.
        check_hosted: Ask the host whether the model is running before sending.
        transfers: One :class:`Transfer` appended per request made with these settings.
    """

    host: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    check_hosted: bool = True
    transfers: list[Transfer] = field(default_factory=list, repr=False, compare=False)


Remote = Union[bool, str, RemoteSettings, None]


def as_settings(remote: Remote) -> RemoteSettings | str | None:
    """Normalize a ``remote`` flag: None (local), ``"local"`` (dry run) or :class:`RemoteSettings`."""
    if remote is None or remote is False:
        return None
    if remote is True:
        return RemoteSettings()
    if isinstance(remote, RemoteSettings):
        return remote
    if isinstance(remote, str):
        return LOCAL if remote == LOCAL else RemoteSettings(host=remote)
    raise InductionError(f"remote must be True, False, 'local', a host URL or RemoteSettings, not {remote!r}")


def on_ndif(remote: Remote) -> bool:
    """Whether ``remote`` sends traces to an NDIF host (not local, not a dry run)."""
    return isinstance(as_settings(remote), RemoteSettings)


def resolve_host(host: str | None = None) -> str:
    """The NDIF API URL: ``host``, else ``NDIF_HOST``, else nnsight's ``CONFIG.API.HOST``."""
    from nnsight import CONFIG

    import httpx

    url = (host or os.environ.get("NDIF_HOST") or CONFIG.API.HOST or "").strip().rstrip("/")
    try:
        valid = url.startswith(("http://", "https://")) and bool(httpx.URL(url).host)
    except httpx.InvalidURL:
        valid = False
    if not valid:
        # a key pasted where the host belongs must not be echoed back
        shown = redact(url, os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY)
        raise InductionError(f"NDIF host {shown!r} is not a URL: pass --ndif-host http(s)://HOST[:PORT]")
    return url


def resolve_api_key() -> str:
    """The NDIF API key: ``NDIF_API_KEY``, else nnsight's ``CONFIG.API.APIKEY``."""
    from nnsight import CONFIG

    key = os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY
    if not key:
        raise InductionError(
            "no NDIF API key: set NDIF_API_KEY (get a key at https://login.ndif.us) "
            "or save one with nnsight's CONFIG.set_default_api_key"
        )
    return key


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


def _one_line(text: str, last: bool = False) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if last else lines[0]


def ship_by_value() -> None:
    """Register this package for pickling by value in remote requests.

    NDIF does not have ``induction_nnsight`` installed, so the functions a trace
    calls (score reductions, attention recomputation) must travel as source.
    nnsight's own automatic registration covers only modules that are not
    installed; an installed (or editable) package must be registered by hand.
    """
    import nnsight

    nnsight.register(sys.modules[_PACKAGE])


def model_key(model) -> str:
    """The key NDIF knows ``model`` by (class, repo id, revision, task).

    nnsight canonicalizes the repo id through the Hugging Face Hub; a local
    directory (served by a self-hosted NDIF) has no Hub id, so it keys as its path.
    """
    import nnsight.modeling.huggingface as nhf

    repo = getattr(model, "repo_id", None)
    if repo and Path(str(repo)).is_dir():
        nhf._ID_CACHE.setdefault(repo, repo)
    try:
        return model.to_model_key()
    except Exception as error:
        raise InductionError(
            f"cannot name {repo!r} for NDIF: the Hugging Face Hub did not resolve it "
            f"({_one_line(error) or type(error).__name__}); pass a Hub id NDIF hosts"
        ) from None


@dataclass(frozen=True)
class Deployment:
    """A model running on an NDIF host."""

    repo_id: str
    revision: str
    model_key: str | None


def hosted_models(host: str, timeout: float = STATUS_TIMEOUT) -> list[Deployment]:
    """The models running on ``host`` (HOT or WARM, RUNNING), from its ``/status``.

    Raises:
        InductionError: When the host cannot be reached or does not answer.
    """
    import httpx

    try:
        response = httpx.get(f"{host}/status", timeout=httpx.Timeout(timeout))
        response.raise_for_status()
        status = response.json()
    except httpx.HTTPStatusError as error:
        raise InductionError(
            f"NDIF at {host} answered /status with HTTP {error.response.status_code}"
            f"{_detail(error.response)}; try again later or check --ndif-host"
        ) from None
    except (httpx.HTTPError, OSError, ValueError) as error:
        raise InductionError(
            f"cannot reach NDIF at {host} ({_one_line(error) or type(error).__name__}); "
            "check --ndif-host / NDIF_HOST and the network"
        ) from None
    running = []
    for name, value in (status.get("deployments") or {}).items():
        if value.get("deployment_level") in _DEPLOYED_LEVELS and value.get("application_state") == "RUNNING":
            running.append(Deployment(str(value.get("repo_id", name)), value.get("revision") or "main",
                                      value.get("model_key")))
    return running


def _detail(response) -> str:
    try:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else body
    except ValueError:
        detail = response.text
    return f" ({_one_line(detail)})" if detail else ""


def check_hosted(model, key: str, host: str, timeout: float = STATUS_TIMEOUT) -> None:
    """Raise unless ``model`` (known to NDIF as ``key``) is running on ``host``.

    A deployment matches on its model key when it reports one, else on repo id
    and revision (nnsight's ``is_model_running`` rules).
    """
    deployments = hosted_models(host, timeout)
    info = json.loads(key.split(":", 1)[1]) if ":" in key else {}
    repo, revision = info.get("repo_id", getattr(model, "repo_id", key)), info.get("revision") or "main"
    for d in deployments:
        if d.model_key == key or (d.model_key is None and d.repo_id == repo and d.revision == revision):
            return
    names = sorted({d.repo_id for d in deployments})
    listing = ", ".join(names) if names else "none"
    raise InductionError(f"{repo} is not running on NDIF at {host}; running models: {listing}")


def remote_backend(model, remote: Remote):
    """The nnsight backend for a trace or session of ``model`` under ``remote``.

    Args:
        model: The nnsight model (for NDIF, built with ``load_model(name, remote=True)``).
        remote: ``False``, ``True``, ``"local"``, a host URL, or :class:`RemoteSettings`.

    Returns:
        None (run locally), a :class:`DryRunBackend`, or an :class:`NdifBackend`.

    Raises:
        InductionError: No API key, bad host, host unreachable, model not hosted.
    """
    settings = as_settings(remote)
    if settings is None:
        return None
    ship_by_value()
    if settings == LOCAL:
        return DryRunBackend(model)
    api_key = resolve_api_key()
    host = resolve_host(settings.host)
    key = model_key(model)
    if settings.check_hosted:
        check_hosted(model, key, host, min(STATUS_TIMEOUT, settings.timeout))
    return NdifBackend(key, host=host, api_key=api_key, env=model._remoteable_get_env(), settings=settings)


class NdifBackend(RemoteBackend):
    """nnsight's blocking ``RemoteBackend`` with a time-out, byte counts and one-line errors."""

    def __init__(self, model_key: str, *, host: str, api_key: str, env: dict, settings: RemoteSettings) -> None:
        super().__init__(model_key, host=host, api_key=api_key, env=env)
        self.display.enabled = False  # no spinner on stdout; progress is the caller's
        self.settings = settings
        self.sent_bytes = 0
        self.received_bytes = 0

    def _serialize(self, tracer) -> bytes:
        blob = super()._serialize(tracer)
        self.sent_bytes = len(blob)
        return blob

    def finalize(self, content: bytes):
        self.received_bytes = len(content)
        return super().finalize(content)

    def request(self, request, tracer):
        """Subscribe, post, and wait for the result for at most ``settings.timeout`` seconds."""
        import websocket
        from nnsight.schema.response import Status

        blob = self._serialize(tracer)
        deadline = time.monotonic() + self.settings.timeout
        connection = websocket.create_connection(
            f"{self.ws_host}/subscribe", header={"ndif-api-key": self.api_key},
            timeout=min(self.settings.timeout, STATUS_TIMEOUT),
        )
        try:
            request.session_id = json.loads(connection.recv())["session_id"]
            self.send(request, blob)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                connection.settimeout(remaining)
                try:
                    message = connection.recv()
                except websocket.WebSocketTimeoutException:
                    raise TimeoutError from None
                response = self.parse(message)
                result = self.handle(response)
                if response.status == Status.COMPLETED:
                    return result
        finally:
            connection.close()

    def __call__(self, tracer=None):
        start = time.monotonic()
        try:
            result = super().__call__(tracer)
        except TimeoutError:
            message = (f"NDIF at {self.host} sent no result within {self.settings.timeout:g} s; "
                       "pass a longer --timeout or try again later")
        except RemoteError as error:
            text = str(error)
            if text.startswith("Failed to send request"):
                message = f"NDIF at {self.host} rejected the request: {_one_line(text.split(':', 1)[-1])}"
            else:
                message = f"NDIF failed to run the trace: {_one_line(text, last=True)}"
        except (OSError, ConnectionError) as error:
            message = (f"cannot reach NDIF at {self.host} ({_one_line(error) or type(error).__name__}); "
                       "check --ndif-host / NDIF_HOST and the network")
        except Exception as error:  # websocket protocol errors and the like
            if isinstance(error, InductionError):
                raise
            message = f"NDIF request to {self.host} failed: {type(error).__name__}: {_one_line(error)}"
        else:
            self.settings.transfers.append(Transfer(self.sent_bytes, self.received_bytes, time.monotonic() - start))
            return result
        raise InductionError(redact(message, self.api_key)) from None


class _HidePackage(importlib.abc.MetaPathFinder):
    """Import hook that makes a package unimportable, as on a server that lacks it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name or fullname.startswith(self.name + "."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden: NDIF does not have it)", name=fullname)
        return None


@contextmanager
def hidden_package(name: str = _PACKAGE):
    """Within the block, ``import name`` (and its submodules) fails as on NDIF."""
    finder = _HidePackage(name)
    modules = {m: sys.modules.pop(m) for m in list(sys.modules) if m == name or m.startswith(name + ".")}
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        sys.modules.update(modules)


class DryRunBackend:
    """A remote request run here: serialize, deserialize without this package, run, ship the saves back.

    The steps are those of NDIF's model actor: the trace is serialized by
    nnsight's remote path (zstd-compressed), rebuilt with ``induction_nnsight``
    unimportable, executed against the model, and the values it saved are
    ``torch.save``\\ d and loaded back. An unsaved value, an unpicklable closure or
    a function that was not shipped by value fails here as it would on NDIF.
    ``transfer`` holds the bytes each way.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.transfer: Transfer | None = None

    def __call__(self, tracer) -> None:
        import torch
        import zstandard
        from nnsight.schema.request import RequestModel
        from nnsight.tracing.tracer import _saves
        from nnsight.tracing.tracer import save as mark_saved
        from nnsight.tracing.util import push

        start = time.monotonic()
        blob = RequestModel.serialize(tracer, compress=True)
        persistent = self.model._remoteable_persistent_objects()
        snapshot = dict(linecache.cache)
        try:
            with hidden_package():
                restored = RequestModel.deserialize(blob, persistent, compress=True)
                restored.execute(restored.info.code)
                saved = {name: value for name, value in restored.info.frame.f_locals.items()
                         if id(value) in _saves()}
                buffer = io.BytesIO()
                torch.save(saved, buffer)
        finally:
            linecache.cache.clear()
            linecache.cache.update(snapshot)
        result = zstandard.ZstdCompressor(level=3).compress(buffer.getvalue())
        self.transfer = Transfer(len(blob), len(result), time.monotonic() - start)
        values = torch.load(io.BytesIO(zstandard.ZstdDecompressor().decompress(result)), weights_only=False)
        for value in values.values():
            mark_saved(value)
        if tracer.info is not None and tracer.info.frame is not None:
            push(tracer.info.frame, values)


def describe_transfers(transfers: list[Transfer]) -> dict[str, Any]:
    """Totals of a run's requests: ``{"requests", "sent_bytes", "received_bytes", "seconds"}``."""
    return {
        "requests": len(transfers),
        "sent_bytes": sum(t.sent_bytes for t in transfers),
        "received_bytes": sum(t.received_bytes for t in transfers),
        "seconds": round(sum(t.seconds for t in transfers), 3),
    }
