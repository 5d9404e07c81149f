"""``induction-nnsight``'s entry point, light enough to answer before torch loads.

It imports nothing heavy itself (the package imports its names lazily), so ``--version`` answers at
once and Ctrl-C at any moment, the imports of torch and nnsight included, ends with one line and exit
status 130; its SIGINT handler records the interrupt so that one swallowed on the way is not lost
(:mod:`~induction_nnsight.app.interrupts`).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence

from ..version import VERSION_LINE
from .interrupts import EXIT_INTERRUPTED, INTERRUPTED_LINE, check_interrupted, on_sigint, reset

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``induction-nnsight`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        print(VERSION_LINE)
        return 0
    reset()
    previous = None
    # a process started with SIGINT ignored (nohup, a background job) keeps ignoring it
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        from .cli import main as cli_main

        status = cli_main(argv)  # prints the interrupted line itself when it catches Ctrl-C
        if status != EXIT_INTERRUPTED:
            check_interrupted()
    except KeyboardInterrupt:  # during the imports, or one swallowed before the run ended
        print(INTERRUPTED_LINE, file=sys.stderr)
        status = EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return status


if __name__ == "__main__":
    sys.exit(main())
