"""The one exception type that means "the user asked for something we cannot do", and how it quotes
the library error it replaces."""

from __future__ import annotations


class InductionError(ValueError):
    """Bad input or an unavailable resource, with a message that names the fix.

    The CLI prints the message on one line and exits with status 2; Python
    callers can catch it like any ``ValueError``.
    """


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name when it has none): what an
    :class:`InductionError` quotes of the library error it replaces.

    Example:
        >>> first_line(KeyError()), first_line(ValueError("bad shape\\nsecond line"))
        ('KeyError', 'bad shape')
    """
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
