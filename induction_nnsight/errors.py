"""The one exception type that means "the user asked for something we cannot do"."""

from __future__ import annotations


class InductionError(ValueError):
    """Bad input or an unavailable resource, with a message that names the fix.

    The CLI prints the message on one line and exits with status 2; Python
    callers can catch it like any ``ValueError``.
    """
