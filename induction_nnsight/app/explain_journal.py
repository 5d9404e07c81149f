"""What lets an interrupted ``explain`` resume: each finished stage's record, and each stage's chunk journal.

``explain`` runs six stages (:data:`~induction_nnsight.app.explain_job.STAGES`) on one model. Its journal is a
directory, ``OUT/explain_journal/``:

- ``<stage>.json``: a finished stage's record (its results, its files and its cost), written atomically when
  the stage ends. A rerun reads it back instead of running the stage again.
- ``<stage>_journal.json``: the stage's own :class:`~induction_nnsight.ndif.journal.Journal` of finished
  chunks, kept while the stage runs. A rerun of a stage that was interrupted reads its finished chunks back
  (one line on stderr says how many) and computes only the rest.

Every file holds the run's settings (those that change a result: not where the traces ran, nor
``--no-resume``); a rerun with other settings is refused in one line naming the first difference, as the
journals of ``ablate``, ``patch`` and ``circuit`` are; ``--no-resume`` empties the directory and starts afresh.
The directory is removed once ``explain.html`` and ``explain_results.json`` are written.

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> journal = ExplainJournal.open(out, {"seed": 0})
>>> journal.finished("heads") is None
True
>>> journal.record("heads", {"results": {"loss": 1.5}, "files": {}, "cost": {}})["results"]
{'loss': 1.5}
>>> ExplainJournal.open(out, {"seed": 0}).finished("heads")["results"]
{'loss': 1.5}
>>> ExplainJournal.open(out, {"seed": 1})
Traceback (most recent call last):
...
induction_nnsight.errors.InductionError: ...seed was 0 in the journal, now 1...
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import InductionError
from ..ndif.journal import Journal, refuse_other_settings, write_atomic
from ..strict_json import json_line, parse_strict

__all__ = ["JOURNAL_DIR", "RECORD_FORMAT", "ExplainJournal"]

JOURNAL_DIR = "explain_journal"
"""The directory in ``OUT`` holding the stages' records and chunk journals."""
RECORD_FORMAT = 1
"""Version of a stage record's layout; a record of another version is refused."""


@dataclass
class ExplainJournal:
    """The finished stages and the chunk journals of one ``explain`` run, in ``folder``.

    Attributes:
        folder: ``OUT/explain_journal``.
        settings: The run's settings (as JSON reads them back), in every file.
    """

    folder: Path
    settings: dict

    @classmethod
    def open(cls, out_dir: str | Path, settings: dict, resume: bool = True) -> ExplainJournal:
        """The journal in ``out_dir`` for a run with ``settings``: an earlier run's when ``resume``, else an
        empty one (what an earlier run left is removed).

        Raises:
            InductionError: A file of the directory was written with other settings, or is not one this
                version reads (named in the message).
        """
        folder = Path(out_dir) / JOURNAL_DIR
        journal = cls(folder, json.loads(json.dumps(settings, default=str)))
        if not resume:
            journal.remove()
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            refuse_other_settings(path, journal._read(path)["settings"], journal.settings)
        return journal

    def _read(self, path: Path) -> dict:
        try:
            saved = parse_strict(path.read_text())
            if not isinstance(saved, dict) or not isinstance(saved.get("settings"), dict):
                raise ValueError
        except (OSError, ValueError):
            raise InductionError(
                f"{path} is not a journal this version can read: delete it or pass --no-resume"
            ) from None
        if "record" in saved and saved.get("format") != RECORD_FORMAT:
            raise InductionError(f"{path} is not a journal this version can read: delete it or pass --no-resume")
        return saved

    def _path(self, stage: str) -> Path:
        return self.folder / f"{stage}.json"

    def finished(self, stage: str) -> dict | None:
        """The record of ``stage`` when an earlier run finished it (``{"results", "files", "cost"}``), else None."""
        path = self._path(stage)
        return self._read(path)["record"] if path.is_file() else None

    def chunks(self, stage: str) -> Journal:
        """The chunk journal of ``stage`` (``<stage>_journal.json``): an interrupted run's chunks read back."""
        return Journal.open(self.folder / f"{stage}_journal.json", self.settings)

    def record(self, stage: str, record: dict) -> dict:
        """Write ``stage``'s finished ``record`` atomically, drop its chunk journal, and return the record as a
        rerun reads it back (strict JSON), so a run and its resumed rerun build the report from the same data."""
        text = json_line({"format": RECORD_FORMAT, "settings": self.settings, "record": record})
        write_atomic(self._path(stage), text)
        (self.folder / f"{stage}_journal.json").unlink(missing_ok=True)
        return parse_strict(text)["record"]

    def remove(self) -> None:
        """Delete the directory (the report is written: nothing is left to resume)."""
        shutil.rmtree(self.folder, ignore_errors=True)
