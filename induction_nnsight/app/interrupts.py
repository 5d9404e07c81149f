"""Ctrl-C, recorded: a SIGINT that some library swallows still ends the run.

:func:`~induction_nnsight.app.entry.main` installs :func:`on_sigint` as the SIGINT handler. Besides
raising ``KeyboardInterrupt`` it records the interrupt, so one raised where Python prints and drops
it (inside a finalizer) still stops the run before any result file is written
(:func:`check_interrupted`, called by :func:`~induction_nnsight.app.outputs.write_files`) and still
ends it with exit status 130.
"""

from __future__ import annotations

import threading

__all__ = ["EXIT_INTERRUPTED", "INTERRUPTED_LINE", "check_interrupted", "on_sigint", "reset"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
INTERRUPTED_LINE = "induction-nnsight: interrupted"

_received = threading.Event()


def on_sigint(signum, frame) -> None:
    """The SIGINT handler: record the interrupt, then raise ``KeyboardInterrupt`` as Python's own does."""
    _received.set()
    raise KeyboardInterrupt


def reset() -> None:
    """Forget an earlier run's interrupt (a new run starts)."""
    _received.clear()


def check_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived during this run, even one that was swallowed.

    Raises:
        KeyboardInterrupt: :func:`on_sigint` ran since the last :func:`reset`.
    """
    if _received.is_set():
        raise KeyboardInterrupt
