"""A job's journal: each finished chunk's small result, on disk, so a killed job resumes.

A long job (a per-head sweep, a patching grid) runs its traces in chunks; after each request
the :func:`~induction_nnsight.ndif.sessions.run_chunks` loop writes the chunks it finished to
the journal, a strict-JSON file in the output directory (``<command>_journal.json``). The file
is rewritten atomically (a temporary file in the same directory, flushed, then renamed), so it
is always the previous or the next complete state: never a partial record.

Re-running the same command with the same settings opens the journal again, reads finished
chunks back instead of recomputing them and reports how many it resumed; different settings
are refused in one line naming the first difference; ``resume=False`` (``--no-resume``) starts
afresh. Each chunk is keyed by its call (the n-th chunked loop of the job, with its label and a
digest of its tokens) and its variant range, so a resumed chunk is the same computation.

>>> import tempfile, torch
>>> path = Path(tempfile.mkdtemp()) / "demo_journal.json"
>>> journal = Journal.open(path, {"seed": 0})
>>> call = journal.call("sweep", torch.arange(6))
>>> journal.record({call.key(0, 2): torch.tensor([1.5, 2.0])})
>>> again = Journal.open(path, {"seed": 0})
>>> again.get(again.call("sweep", torch.arange(6)).key(0, 2))
tensor([1.5000, 2.0000])
>>> Journal.open(path, {"seed": 1})
Traceback (most recent call last):
...
induction_nnsight.errors.InductionError: ...seed was 0 in the journal, now 1...
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InductionError

__all__ = ["JOURNAL_FORMAT", "Journal", "JournalCall", "journal_path", "refuse_other_settings", "write_atomic"]

JOURNAL_FORMAT = 1
"""Version of the journal's layout; a journal of another version is refused."""


def journal_path(out_dir: str | Path, command: str) -> Path:
    """Where ``command``'s journal lives in ``out_dir``: ``<out_dir>/<command>_journal.json``."""
    return Path(out_dir) / f"{command}_journal.json"


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same directory, flushed to disk,
    then renamed, so ``path`` always holds the previous or the new complete text (never a part)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def _encode(tensor: torch.Tensor) -> dict:
    tensor = tensor.detach().cpu()
    return {
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "shape": list(tensor.shape),
        "values": _strict(tensor.reshape(-1).tolist()),
    }


def _decode(record: dict) -> torch.Tensor:
    values = [float("nan") if v is None else v for v in record["values"]]
    dtype = getattr(torch, record["dtype"])
    return torch.tensor(values, dtype=dtype).reshape(record["shape"])


def _digest(tensor: torch.Tensor | None) -> str:
    if tensor is None:
        return ""
    data = tensor.detach().cpu().contiguous()
    return hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode() + data.numpy().tobytes()).hexdigest()[:16]


def refuse_other_settings(path: str | Path, old: dict, new: dict) -> None:
    """Refuse to resume from ``path``, written with settings ``old``, for a job with settings ``new`` (both as
    JSON reads them back) unless they are equal: the one line names the first difference.

    Raises:
        InductionError: ``... (batch was 4 in the journal, now 5): rerun with the journal's settings, or pass
            --no-resume``.
    """
    # a setting both runs recorded first (the one the user changed), then one only one of them has
    both = sorted(set(old) & set(new))
    for name in both + sorted((set(old) | set(new)) - set(both)):
        if old.get(name) != new.get(name):
            raise InductionError(
                f"{path} was written with other settings ({name} was {old.get(name)!r} in the journal, "
                f"now {new.get(name)!r}): rerun with the journal's settings, or pass --no-resume"
            )


@dataclass(frozen=True)
class JournalCall:
    """One chunked loop of a job: its keys are ``"<index>:<label>:<digest>:<start>-<stop>"``."""

    index: int
    label: str
    digest: str

    def key(self, start: int, stop: int) -> str:
        """The journal key of this call's chunk of variants ``[start, stop)``."""
        return f"{self.index}:{self.label}:{self.digest}:{start}-{stop}"


@dataclass
class Journal:
    """Finished chunks of one job, backed by a strict-JSON file rewritten atomically.

    Attributes:
        path: The journal file.
        settings: The job's settings (JSON values); a journal of other settings is refused.
        records: Key -> encoded result of every finished chunk.
        resumed: Chunks read back from an earlier run and used again in this one.
        calls: Chunked loops started so far in this run (each :meth:`call` numbers the next).
    """

    path: Path
    settings: dict
    records: dict = field(default_factory=dict)
    resumed: int = 0
    calls: int = 0

    @classmethod
    def open(cls, path: str | Path, settings: dict, resume: bool = True) -> Journal:
        """The journal at ``path`` for a job with ``settings``: an earlier run's when ``resume``.

        Raises:
            InductionError: The file is not a journal, or was written with other settings.
        """
        path = Path(path)
        settings = json.loads(json.dumps(settings, default=str))  # as JSON will read it back
        journal = cls(path, settings)
        if not resume or not path.exists():
            return journal
        try:
            saved = json.loads(path.read_text())
            records, old = saved["records"], saved["settings"]
            if saved.get("format") != JOURNAL_FORMAT or not isinstance(records, dict):
                raise ValueError
        except (OSError, ValueError, KeyError, TypeError):
            raise InductionError(
                f"{path} is not a journal this version can read: delete it or pass --no-resume"
            ) from None
        refuse_other_settings(path, old, settings)
        journal.records = records
        return journal

    def call(self, label: str, tokens: torch.Tensor | None = None, extra: torch.Tensor | None = None) -> JournalCall:
        """Start the next chunked loop of this run (``label``, over ``tokens`` and ``extra`` rows)."""
        self.calls += 1
        return JournalCall(self.calls, label, (_digest(tokens) + _digest(extra))[:16] or "-")

    def get(self, key: str) -> torch.Tensor | None:
        """A finished chunk's result, or None; counts it in :attr:`resumed`."""
        record = self.records.get(key)
        if record is None:
            return None
        self.resumed += 1
        return _decode(record)

    def record(self, results: dict[str, torch.Tensor]) -> None:
        """Add finished chunks (key -> result) and rewrite the file atomically."""
        self.records.update({key: _encode(value) for key, value in results.items()})
        text = json.dumps(
            {"format": JOURNAL_FORMAT, "settings": self.settings, "records": self.records},
            allow_nan=False,
            separators=(",", ":"),
        )
        write_atomic(self.path, text)

    def remove(self) -> None:
        """Delete the file (the job's results are written: nothing is left to resume)."""
        self.path.unlink(missing_ok=True)
