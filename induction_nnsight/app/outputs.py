"""Writing results: strict JSON, one run id per result set, all files of a run or none.

Every JSON file the tool writes parses with a strict parser: a value that is
missing or undefined (NaN, an infinite ratio) is written as ``null``. Every file of
one run carries the same run id (``"run_id"`` in a results file,
``layout.meta.run_id`` in a Plotly chart), so a reader can tell one run's set
from a mix. Files get the user's umask (0644 by default), and a run's files are
renamed into place together under a lock on the output directory, so two runs
into one ``--out`` leave one run's whole set.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InductionError
from ..strict_json import parse_strict, rounded, strict, to_json
from .interrupts import check_interrupted


def prepare_out_dir(out: str | Path) -> Path:
    """Create ``out`` if needed and check that files can be written in it.

    Raises:
        InductionError: When the directory cannot be created or written.
    """
    path = Path(out).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise InductionError(
            f"cannot write to output directory {path} ({error.strerror or error}): pass --out with a writable directory"
        ) from error
    return path


DEFAULT_OUT = "induction-nnsight-out"
"""Where a command writes by default: ``induction-nnsight-out/<command>/`` under the working directory,
never the repository's own ``charts/`` (``scripts/export_charts.py`` writes those, by name)."""


def default_out(command: str) -> str:
    """``induction-nnsight-out/<command>``: every command's default output directory (one rule for all)."""
    return f"{DEFAULT_OUT}/{command}"


def first_missing(path: str | Path) -> Path | None:
    """The outermost directory of ``path`` (itself or a parent) that does not exist yet; None when it exists."""
    path = Path(path).expanduser().absolute()
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


def remove_created(path: str | Path, created: Path | None) -> None:
    """Remove ``path`` and its parents up to ``created`` (from :func:`first_missing`) while they are empty:
    a failed run leaves no directory it made, but keeps one holding a journal to resume from."""
    if created is None:
        return
    path = Path(path).expanduser().absolute()
    while True:
        try:
            path.rmdir()
        except OSError:  # not empty (a journal, checkpoints), or already gone
            if path.exists():
                return
        if path == created or path.parent == path:
            return
        path = path.parent


def table(values) -> list | float | None:
    """A tensor as nested lists of :func:`rounded` numbers (``[n_layers][n_heads]`` for a head table)."""
    return [table(v) for v in values] if values.dim() else rounded(values)


def cost_line(cost: dict) -> str:
    """The line a summary prints for a result's ``cost`` (passes counted once per row).

    >>> cost_line({"forward_passes": 8.0, "backward_passes": 0.0, "tokens": 1040})
    'cost: forward passes 8.0, backward passes 0.0, tokens 1,040'
    """
    return "cost: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in cost.items())


def new_run_id() -> str:
    """A run id: UTC time and 6 random hex digits, e.g. ``20261125T201500Z-3fa2c1``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def stamp(text: str, run_id: str) -> str:
    """JSON ``text`` with ``run_id`` added: ``layout.meta.run_id`` in a Plotly figure, else top-level ``run_id``.

    Raises:
        ValueError: When ``text`` is not a strict JSON object.
    """
    value = parse_strict(text)
    if not isinstance(value, dict):
        raise ValueError("a result file must hold a JSON object")
    if "data" in value and "layout" in value:  # a Plotly figure
        meta = value["layout"].get("meta")
        value["layout"]["meta"] = {**(meta if isinstance(meta, dict) else {}), "run_id": run_id}
        return json.dumps(strict(value), allow_nan=False)
    return to_json({"run_id": run_id, **{k: v for k, v in value.items() if k != "run_id"}})


def _file_mode() -> int:
    """``0o666`` less the process umask (0644 under the usual umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` itself (no lock file is left behind)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C while the renames run, so an interrupt cannot leave half a set in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def write_files(out_dir: Path, files: dict[str, str], run_id: str | None = None) -> list[Path]:
    """Write every ``name -> text`` into ``out_dir`` atomically as one run's set.

    JSON texts (names ending in ``.json``) are checked to be strict JSON and
    stamped with the run id. Each text goes to a temporary file first; only
    when all are written are they renamed into place, under a lock on
    ``out_dir`` and with Ctrl-C held back, so a failure or an interrupt leaves
    no partial or empty file and the previous set intact.

    Args:
        out_dir: An existing, writable directory.
        files: File name -> text.
        run_id: The set's id (a new one from :func:`new_run_id` when None).

    Returns:
        The paths written.

    Raises:
        InductionError: When a file cannot be written (the directory is left as it was).
    """
    run_id = run_id or new_run_id()
    texts = {name: stamp(text, run_id) if name.endswith(".json") else text for name, text in files.items()}
    mode = _file_mode()
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in texts.items():
            handle, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
            staged.append((name, Path(tmp)))
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            os.chmod(tmp, mode)
        with _locked(out_dir), _no_interrupt():
            check_interrupted()  # a Ctrl-C some library swallowed still stops the set here
            for name, tmp in staged:
                os.replace(tmp, out_dir / name)
        return [out_dir / name for name, _ in staged]
    except OSError as error:
        raise InductionError(
            f"cannot write results into {out_dir} ({error.strerror or error}): "
            "free some space or pass --out with a writable directory"
        ) from error
    finally:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
