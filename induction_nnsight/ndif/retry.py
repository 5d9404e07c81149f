"""Retries of NDIF requests: transient failures again with backoff, permanent ones at once.

A request can fail because the network or the service hiccuped (connection dropped or
refused, HTTP 5xx, the service restarted, no answer in time): :func:`classify` calls those
*transient*, and :class:`~induction_nnsight.ndif.backend.NdifBackend` sends the request again
after :meth:`RetryPolicy.delay` (exponential backoff with full jitter), up to
:attr:`RetryPolicy.tries` attempts in all, printing one line per retry. Everything else is
*permanent* (a bad API key, a model the host does not run, a client/server nnsight version
mismatch, a request too large, an error raised by the trace itself) and stops at once.

>>> policy = RetryPolicy(tries=4, base=2.0, cap=30.0)
>>> [policy.bound(n) for n in (1, 2, 3, 4, 5)]
[2.0, 4.0, 8.0, 16.0, 30.0]
>>> 0.0 <= policy.delay(3) <= 8.0
True
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import InductionError

__all__ = ["DEFAULT_RETRY", "RetryPolicy", "Transient", "classify", "retrying"]

T = TypeVar("T")


class Transient(InductionError):
    """A one-line failure worth retrying (the network or the service, not the request)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    Attributes:
        tries: Attempts in all (1: never retry).
        base: Seconds of the first backoff bound; each retry doubles it.
        cap: The largest bound, in seconds.
    """

    tries: int = 5
    base: float = 2.0
    cap: float = 30.0

    def bound(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (1-based): ``min(cap, base * 2**(retry-1))``."""
        return min(self.cap, self.base * 2 ** (retry - 1))

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry``: uniform in ``[0, bound(retry)]`` (full jitter)."""
        return (rng or random).uniform(0.0, self.bound(retry))


DEFAULT_RETRY = RetryPolicy()
"""5 attempts, waits drawn up to 2, 4, 8 and 16 s (capped at 30 s): about a minute, NDIF's
ping time-out, for a restarted service to come back."""

_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_TRANSIENT_WORDS = ("restart", "temporarily", "unavailable", "reset by peer", "timed out", "closed", "disconnect")
_UNREACHABLE_WORDS = ("connection refused", "connect call failed", "name or service", "connection error")
_MISMATCH_WORDS = ("nnsight version", "version mismatch", "unpickl", "deserializ", "magic number")


def http_status(error: BaseException) -> int | None:
    """The HTTP status an error carries (itself or its cause), or None."""
    for candidate in (error, error.__cause__, error.__context__):
        for status in (
            getattr(candidate, "status_code", None),
            getattr(getattr(candidate, "response", None), "status_code", None),
        ):
            if isinstance(status, int):
                return status
    return None


def classify(error: BaseException, reached: bool = True) -> str:
    """``"transient"``, ``"mismatch"`` (client and server nnsight differ) or ``"permanent"``.

    Transient: HTTP 408/425/429/5xx; and network failures (connection refused, reset or closed,
    network time-outs, messages that say the service restarted or is unavailable) once the host
    has answered earlier in this job (``reached``: a restart or a dropped connection); at first
    contact those mean a wrong ``--ndif-host``, which waiting does not fix. The
    client's own ``--timeout`` is permanent (its message names the option). A version mismatch
    shows as a (de)serialization error on the server. Anything else is permanent.
    """
    text = str(error).lower()
    status = http_status(error)
    if any(word in text for word in _MISMATCH_WORDS):
        return "mismatch"
    if status is not None:
        return "transient" if status in _TRANSIENT_STATUS else "permanent"
    if isinstance(error, TimeoutError):
        return "permanent"
    name = type(error).__name__
    network = (
        isinstance(error, ConnectionError | OSError)
        or any(word in text for word in _UNREACHABLE_WORDS)
        or ("WebSocket" in name and any(word in name for word in ("Closed", "Timeout", "BadStatus", "Connection")))
        or (text.startswith("failed to send request") and any(word in text for word in _TRANSIENT_WORDS))
    )
    if network:
        return "transient" if reached else "permanent"
    return "permanent"


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def retrying(call: Callable[[], T], policy: RetryPolicy, rng: random.Random | None = None) -> T:
    """``call()``, retried after a :class:`Transient` failure as ``policy`` says.

    Each retry prints one line on stderr (the failure, the retry's number, the wait). The last
    failure is raised with the number of attempts; any other error is raised at once.
    """
    for attempt in range(1, policy.tries + 1):
        try:
            return call()
        except Transient as error:
            if attempt == policy.tries:
                if attempt == 1:
                    raise
                raise Transient(f"{error} (gave up after {attempt} attempts)") from None
            wait = policy.delay(attempt, rng)
            print(
                f"induction-nnsight: {error}; retry {attempt} of {policy.tries - 1} in {wait:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            _sleep(wait)
    raise AssertionError("policy.tries must be at least 1")
