"""The nnsight backend of a trace under a ``remote`` flag, and NDIF's client with our guarantees.

Trace functions hand their ``remote`` flag to :func:`remote_backend`, which turns
it into the ``backend`` of their ``model.trace`` (or ``model.session``) block:
None (run here), a :class:`~induction_nnsight.ndif.dry_run.DryRunBackend`
(``"local"``), or an :class:`NdifBackend`. Before a request is built the package
is registered for pickling by value (:func:`ship_by_value`), the API key and host
are resolved, and the model is checked to be running on the host.

:class:`NdifBackend` is nnsight's public blocking ``RemoteBackend`` with a
time-out on the whole request, no spinner, byte counts, and one-line
:class:`~induction_nnsight.errors.InductionError` messages that never contain the
API key. It overrides only public methods (``request``, ``finalize``, ``__call__``)
and builds the payload with nnsight's public ``pull_env`` and
``RequestModel.serialize``.
"""

from __future__ import annotations

import json
import sys
import time

from nnsight.intervention.backends.remote import RemoteBackend, RemoteError

from ..errors import InductionError
from .dry_run import PACKAGE, DryRunBackend
from .internals import request_env
from .plan import PlanBackend
from .retry import RetryPolicy, Transient, classify, retrying
from .settings import (
    LOCAL,
    STATUS_TIMEOUT,
    Remote,
    RemoteSettings,
    as_settings,
    one_line,
    redact,
    resolve_api_key,
    resolve_host,
)
from .status import check_hosted, model_key
from .transfers import Transfer, check_size


def ship_by_value() -> None:
    """Register this package for pickling by value in remote requests.

    NDIF does not have ``induction_nnsight`` installed, so the functions a trace
    calls (score reductions, attention recomputation) must travel as source.
    nnsight's own automatic registration covers only modules that are not
    installed; an installed (or editable) package must be registered by hand.
    """
    import nnsight

    nnsight.register(sys.modules[PACKAGE])


def remote_backend(model, remote: Remote):
    """The nnsight backend for a trace or session of ``model`` under ``remote``.

    Args:
        model: The nnsight model (for NDIF, built with ``load_model(name, remote=True)``).
        remote: ``False``, ``True``, ``"local"``, a host URL, or
            :class:`~induction_nnsight.ndif.settings.RemoteSettings`.

    Returns:
        None (run locally), a :class:`~induction_nnsight.ndif.dry_run.DryRunBackend`,
        a :class:`~induction_nnsight.ndif.plan.PlanBackend` (settings with a ``plan``),
        or an :class:`NdifBackend`.

    Raises:
        InductionError: No API key, bad host, host unreachable, model not hosted.
    """
    settings = as_settings(remote)
    if settings is None:
        return None
    ship_by_value()
    if settings == LOCAL:
        return DryRunBackend(model)
    if settings.plan is not None:  # --plan: measured here, nothing sent
        return PlanBackend(model, settings.plan)
    api_key = resolve_api_key()
    host = resolve_host(settings.host)
    key = model_key(model)
    if settings.check_hosted:
        # a host that answered earlier in this job and stops answering is restarting: retry
        policy = settings.retry if settings.transfers else RetryPolicy(tries=1)
        retrying(lambda: check_hosted(model, key, host, min(STATUS_TIMEOUT, settings.timeout)), policy)
    return NdifBackend(key, host=host, api_key=api_key, env=request_env(model), settings=settings)


class NdifBackend(RemoteBackend):
    """nnsight's blocking ``RemoteBackend`` with a time-out, byte counts and one-line errors."""

    def __init__(self, model_key: str, *, host: str, api_key: str, env: dict, settings: RemoteSettings) -> None:
        super().__init__(model_key, host=host, api_key=api_key, env=env)
        self.display.enabled = False  # no spinner on stdout; progress is the caller's
        self.settings = settings
        self.sent_bytes = 0
        self.received_bytes = 0
        self.max_bytes: int | None = None  # set by the session loop: a larger request is refused before sending

    def serialize(self, tracer) -> bytes:
        """The request payload, as nnsight's remote path builds it; counts its bytes."""
        from nnsight.ndif import pull_env
        from nnsight.schema.request import RequestModel

        pull_env()  # local (non-installed) modules ship by value, as nnsight does
        blob = RequestModel.serialize(tracer, self.compress)
        self.sent_bytes = len(blob)
        check_size(len(blob), self.max_bytes)
        return blob

    def finalize(self, content: bytes):
        self.received_bytes = len(content)
        return super().finalize(content)

    def request(self, request, tracer):
        """Subscribe, post, and wait for the result for at most ``settings.timeout`` seconds."""
        import websocket
        from nnsight.schema.response import Status

        blob = self.serialize(tracer)
        deadline = time.monotonic() + self.settings.timeout
        connection = websocket.create_connection(
            f"{self.ws_host}/subscribe",
            header={"ndif-api-key": self.api_key},
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
        """Send the request; retry a transient failure (``settings.retry``), stop at a permanent one."""
        return retrying(lambda: self.attempt(tracer), self.settings.retry)

    def attempt(self, tracer):
        """One attempt: the result, or a one-line :class:`Transient` or ``InductionError``."""
        start = time.monotonic()
        try:
            result = super().__call__(tracer)
        except InductionError:
            raise
        except Exception as error:  # every failure is classified, then reported in one line
            kind = classify(error, reached=bool(self.settings.transfers))
            error_class = Transient if kind == "transient" else InductionError
            raise error_class(redact(self.describe_failure(error, kind), self.api_key)) from None
        self.settings.transfers.append(Transfer(self.sent_bytes, self.received_bytes, time.monotonic() - start))
        return result

    def describe_failure(self, error: BaseException, kind: str) -> str:
        """One line saying what failed and, for a permanent failure, the fix."""
        import nnsight

        if kind == "mismatch":
            text = str(error)
            said = one_line(text.split(":", 1)[-1] if text.startswith("Failed to send request") else text, last=True)
            return (
                f"NDIF at {self.host} rejected the request: {said}; this client's nnsight "
                f"({nnsight.__version__}) and the server's differ: install the nnsight version the server runs"
            )
        if isinstance(error, TimeoutError):
            return f"NDIF at {self.host} sent no result within {self.settings.timeout:g} s; pass a longer --timeout"
        if isinstance(error, RemoteError):
            text = str(error)
            if text.startswith("Failed to send request"):
                return f"NDIF at {self.host} rejected the request: {one_line(text.split(':', 1)[-1])}"
            return f"NDIF failed to run the trace: {one_line(text, last=True)}"
        if isinstance(error, OSError | ConnectionError):
            return (
                f"cannot reach NDIF at {self.host} ({one_line(error) or type(error).__name__}); "
                "check --ndif-host / NDIF_HOST and the network"
            )
        return f"NDIF request to {self.host} failed: {type(error).__name__}: {one_line(error)}"
