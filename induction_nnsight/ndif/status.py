"""What NDIF runs and what it calls our model: model keys, ``/status``, the hosted check.

:func:`model_key` names a model as NDIF does (nnsight's public ``to_model_key``;
a local directory, served by a self-hosted NDIF, keys as its path).
:func:`hosted_models` reads a host's ``/status``; :func:`check_hosted` raises a
one-line error listing the running models unless ours is one of them. It follows
nnsight's ``is_model_running`` rules, but against the host being used (nnsight's
reads only its configured host) and with our own time-out and messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InductionError
from .internals import pin_repo_id
from .retry import Transient
from .settings import STATUS_TIMEOUT, one_line

_DEPLOYED_LEVELS = {"HOT", "WARM"}


def model_key(model) -> str:
    """The key NDIF knows ``model`` by (class, repo id, revision, task).

    nnsight canonicalizes the repo id through the Hugging Face Hub; a local
    directory (served by a self-hosted NDIF) has no Hub id, so it keys as its path.
    """
    repo = getattr(model, "repo_id", None)
    if repo and Path(str(repo)).is_dir():
        pin_repo_id(repo)
    try:
        return model.to_model_key()
    except Exception as error:
        raise InductionError(
            f"cannot name {repo!r} for NDIF: the Hugging Face Hub did not resolve it "
            f"({one_line(error) or type(error).__name__}); pass a Hub id NDIF hosts"
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
        raise (Transient if error.response.status_code >= 500 else InductionError)(
            f"NDIF at {host} answered /status with HTTP {error.response.status_code}"
            f"{_detail(error.response)}; try again later or check --ndif-host"
        ) from None
    except (httpx.HTTPError, OSError, ValueError) as error:
        raise Transient(
            f"cannot reach NDIF at {host} ({one_line(error) or type(error).__name__}); "
            "check --ndif-host / NDIF_HOST and the network"
        ) from None
    running = []
    for name, value in (status.get("deployments") or {}).items():
        if value.get("deployment_level") in _DEPLOYED_LEVELS and value.get("application_state") == "RUNNING":
            running.append(
                Deployment(str(value.get("repo_id", name)), value.get("revision") or "main", value.get("model_key"))
            )
    return running


def _detail(response) -> str:
    try:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else body
    except ValueError:
        detail = response.text
    return f" ({one_line(detail)})" if detail else ""


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
