"""Counting what the session loop sends: one wrapper of ``sessions._send`` for every test that checks
how traces were bundled into requests (or makes one request fail)."""

from __future__ import annotations

from induction_nnsight.ndif import sessions

SEND = sessions._send  # unwrapped, whatever a test patched before


def count_requests(monkeypatch, fail_after: int | None = None, error=RuntimeError) -> list[list]:
    """Wrap ``sessions._send``: the chunk groups each request carried; request ``fail_after + 1`` raises
    ``error`` instead of being sent."""
    sent = []

    def counted(model, group, trace_chunk, execution, keys=None):
        if fail_after is not None and len(sent) == fail_after:
            raise error("the connection dropped")
        sent.append(list(group))
        return SEND(model, group, trace_chunk, execution, keys)

    monkeypatch.setattr(sessions, "_send", counted)
    return sent
