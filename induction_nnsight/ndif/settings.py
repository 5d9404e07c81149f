"""Where and how traces run: the ``remote`` flag, the NDIF host and API key, and safe messages.

A trace function's ``remote`` argument (:data:`Remote`) is ``False`` (run here),
``True``, a host URL, a :class:`RemoteSettings` (run on NDIF), or ``"local"``
(:data:`LOCAL`, a dry run of a remote request). :func:`as_settings` normalizes it,
:func:`on_ndif` says whether it goes to a host. The host comes from the settings,
else ``NDIF_HOST``, else nnsight's ``CONFIG.API.HOST`` (:func:`resolve_host`); the
API key from ``NDIF_API_KEY``, else nnsight's ``CONFIG.API.APIKEY``
(:func:`resolve_api_key`). The key is never a field and never in a message:
:func:`redact` blanks it, :func:`one_line` keeps errors to one line.

Uses only nnsight's public ``CONFIG``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InductionError
from .retry import DEFAULT_RETRY, RetryPolicy
from .transfers import Transfer

if TYPE_CHECKING:
    from .plan import JobPlan

LOCAL = "local"
DEFAULT_TIMEOUT = 600.0
STATUS_TIMEOUT = 10.0


@dataclass
class RemoteSettings:
    """Where and how to run traces on NDIF.

    The API key is deliberately not a field: it is read from ``NDIF_API_KEY`` or
    nnsight's config when a request is made, so settings can be logged and saved.

    Attributes:
        host: NDIF API URL; None means ``NDIF_HOST``, else nnsight's configured host.
        timeout: Seconds to wait for a request's result before giving up.
        check_hosted: Ask the host whether the model is running before sending.
        retry: How transient failures are retried (:class:`~induction_nnsight.ndif.retry.RetryPolicy`).
        transfers: One :class:`~induction_nnsight.ndif.transfers.Transfer` appended
            per request made with these settings.
        plan: A :class:`~induction_nnsight.ndif.plan.JobPlan` to fill instead of sending anything
            (``--plan``): every request is planned on the meta model, none leaves this machine.
    """

    host: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    check_hosted: bool = True
    retry: RetryPolicy = DEFAULT_RETRY
    transfers: list[Transfer] = field(default_factory=list, repr=False, compare=False)
    plan: JobPlan | None = field(default=None, repr=False, compare=False)


Remote = bool | str | RemoteSettings | None


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
    import httpx
    from nnsight import CONFIG

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


def one_line(text, last: bool = False) -> str:
    """The first (or ``last``) non-blank line of ``str(text)``, stripped; ``""`` if none."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if last else lines[0]
