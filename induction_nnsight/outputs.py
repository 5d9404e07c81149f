"""Writing results: all files of a run appear together, or none do."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import InductionError


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


def to_json(value: Any) -> str:
    """Compact, deterministic JSON text."""
    return json.dumps(value, indent=1, sort_keys=False)


def write_files(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """Write every ``name -> text`` into ``out_dir`` atomically as a set.

    Each text goes to a temporary file first; only when all are written are
    they renamed into place, so a failure leaves no partial or empty file.

    Returns:
        The paths written.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in files.items():
            handle, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            staged.append((name, Path(tmp)))
        written = []
        for name, tmp in staged:
            target = out_dir / name
            os.replace(tmp, target)
            written.append(target)
        return written
    except OSError as error:
        raise InductionError(f"cannot write results into {out_dir} ({error}): pass --out with a writable directory") from error
    finally:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
