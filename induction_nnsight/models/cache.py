"""The on-disk cache of fetched and converted weights, safe against crashes and races.

Layout of ``cache_dir()``:

* ``<entry>/``: a converted model directory, complete only when its
  completion marker (:data:`MARK`, JSON) lists every file's size and sha256;
* ``<name>.gguf``: a fetched GGUF file (its sha256 is checked by the fetcher);
* ``<entry>.partial-*``: work in progress, renamed into place when complete;
  one left behind by a killed process is removed on the next build;
* ``.locks/<entry>.lock``: ``flock`` files; an entry is built under its
  exclusive lock and checked under a shared one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from ..errors import InductionError
from . import embedded

MARK = "induction-nnsight-converted"
PARTIAL = ".partial-"
LOCKS = ".locks"
_FORMAT = 1


class CacheEntry(NamedTuple):
    """One item of the cache, as listed by :func:`cache_entries`."""

    name: str
    path: Path
    size_bytes: int
    status: str  # "ok", "damaged: <reason>", "incomplete: ..." or "unverified"


def cache_dir() -> Path:
    """Where fetched and converted weights live: ``$INDUCTION_NNSIGHT_CACHE``.

    Defaults to ``~/.cache/induction-nnsight``.
    """
    root = os.environ.get("INDUCTION_NNSIGHT_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "induction-nnsight"


def say(message: str, progress: bool = True) -> None:
    """One ``[induction-nnsight]`` line on stderr, when ``progress``."""
    if progress:
        print(f"[induction-nnsight] {message}", file=sys.stderr, flush=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks of ``chunk`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def report_damage(name: str, reason: str, action: str = "rebuilding it") -> None:
    """Say on one stderr line (always, even without progress) that an entry is damaged."""
    say(f"cache entry {name} is damaged ({reason}); {action}")


@contextmanager
def entry_lock(root: Path, name: str, *, shared: bool = False, progress: bool = True) -> Iterator[None]:
    """Hold the ``flock`` of cache entry ``name`` under ``root``.

    Args:
        root: The cache directory.
        name: The entry (directory or file name) the lock guards.
        shared: Take a shared lock (for checking) instead of an exclusive one (for building).
        progress: Say on stderr when another process holds the lock and this one waits.

    Raises:
        InductionError: When the cache directory cannot be written.
    """
    path = root / LOCKS / f"{name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise InductionError(
            f"cannot write to the cache {root} ({error.strerror}); set INDUCTION_NNSIGHT_CACHE to a writable directory"
        ) from error
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process converting or checking {name} ...", progress)
            fcntl.flock(handle, mode)
        yield
    finally:
        os.close(handle)  # releases the lock


def remove(path: Path) -> None:
    """Delete a file or a directory tree; a missing path is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_partials(root: Path, name: str) -> None:
    """Delete ``name``'s leftover ``.partial-*`` work; call under ``name``'s exclusive lock."""
    for leftover in root.glob(f"{name}{PARTIAL}*"):
        remove(leftover)


def write_manifest(directory: Path, source: str) -> None:
    """Write the completion marker: size (bytes) and sha256 of every file in ``directory``.

    Raises:
        InductionError: When ``directory`` holds no ``*.safetensors`` weights.
    """
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name != MARK)
    if not any(p.suffix == ".safetensors" for p in files):
        raise InductionError(f"converting {source} wrote no *.safetensors weights into {directory}")
    listed = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in files}
    manifest = {"format": _FORMAT, "source": source, "files": listed}
    (directory / MARK).write_text(json.dumps(manifest, indent=1) + "\n")


def _read_manifest(directory: Path) -> tuple[dict | None, str | None]:
    """The parsed completion marker, or None and why it is unusable."""
    try:
        manifest = json.loads((directory / MARK).read_text())
    except FileNotFoundError:
        return None, "completion marker missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None, "completion marker unreadable (not JSON: damaged or written by an older version)"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not any(str(name).endswith(".safetensors") for name in files):
        return None, "completion marker lists no weights files"
    return manifest, None


def damage(directory: Path, deep: bool = True) -> str | None:
    """Why a converted entry cannot be trusted, or None when it is intact.

    Args:
        directory: The entry's directory (it must exist).
        deep: Also compare sha256s (about 0.5 s for 540 MB), not only sizes.
    """
    manifest, reason = _read_manifest(directory)
    if manifest is None:
        return reason
    for name, facts in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            return f"{name} missing"
        size = path.stat().st_size
        if size != facts.get("size"):
            return f"{name} has {size} bytes, expected {facts.get('size')}"
        if deep and sha256_file(path) != facts.get("sha256"):
            return f"{name} sha256 mismatch"
    return None


def ensure_entry(root: Path, name: str, build: Callable[[Path], None], source: str, progress: bool = True) -> Path:
    """The intact cache entry ``root / name``, built by ``build`` when missing or damaged.

    Checking runs under a shared lock, so readers do not queue behind each other;
    building runs under the exclusive lock, into a ``.partial-*`` directory that
    is renamed into place only once its completion marker is written.

    Args:
        root: The cache directory.
        name: The entry's directory name.
        build: Writes the entry's files into the empty directory it is given.
        source: What the entry is made from (recorded in the completion marker).
        progress: Say on stderr when waiting for another process.

    Returns:
        ``root / name``, verified.
    """
    target = root / name
    with entry_lock(root, name, shared=True, progress=progress):
        if target.is_dir() and damage(target) is None:
            return target
    with entry_lock(root, name, progress=progress):
        remove_partials(root, name)
        if target.exists():
            reason = damage(target) if target.is_dir() else "not a directory"
            if reason is None:  # another process built it while this one waited
                return target
            report_damage(name, reason)
            remove(target)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=name + PARTIAL))
        try:
            build(tmp)
            write_manifest(tmp, source)
            os.replace(tmp, target)
        finally:
            remove(tmp)
    say(f"cached {target}", progress)
    return target


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() and not path.is_symlink() else 0
    except FileNotFoundError:  # removed by a concurrent build meanwhile
        return 0


def _size(path: Path) -> int:
    """Bytes under ``path`` (a file or a directory tree)."""
    if path.is_file():
        return _file_size(path)
    return sum(_file_size(p) for p in path.rglob("*"))


def _status(path: Path, verify: bool) -> str:
    if PARTIAL in path.name:
        return "incomplete: a conversion in progress or interrupted (removed on the next build)"
    if path.is_dir() and (path / MARK).exists():
        reason = damage(path, deep=verify)
        return "ok" if reason is None else f"damaged: {reason}"
    if path.name == embedded.GGUF_NAME and verify:
        return "ok" if sha256_file(path) == embedded.GGUF_SHA256 else "damaged: sha256 mismatch"
    if path.is_dir() and (path.name.startswith("gguf-") or path.name == embedded.SMOLLM2):
        return "damaged: completion marker missing"
    return "unverified"


def cache_entries(root: Path | None = None, verify: bool = True) -> list[CacheEntry]:
    """What the cache holds, sorted by name, lock files left out.

    Args:
        root: The cache directory; ``cache_dir()`` when None.
        verify: Check sha256s too (about 0.5 s per 540 MB), not only sizes.

    Returns:
        One :class:`CacheEntry` ``(name, path, size_bytes, status)`` per top-level
        item; an empty list when the cache does not exist.
    """
    root = root or cache_dir()
    if not root.is_dir():
        return []
    items = sorted(p for p in root.iterdir() if p.name != LOCKS)
    return [CacheEntry(p.name, p, _size(p), _status(p, verify)) for p in items]


def clear_cache(root: Path | None = None, progress: bool = True) -> list[CacheEntry]:
    """Delete every cache entry, each under its exclusive lock.

    A process converting an entry finishes first (this waits for it). The empty
    lock files in ``.locks/`` stay, so that processes waiting on them stay safe.

    Args:
        root: The cache directory; ``cache_dir()`` when None.
        progress: Say on stderr when waiting for another process.

    Returns:
        The entries removed (status ``"removed"``), with their sizes in bytes.
    """
    root = root or cache_dir()
    removed = []
    for entry in cache_entries(root, verify=False):
        with entry_lock(root, entry.name.split(PARTIAL)[0], progress=progress):
            remove(entry.path)
        removed.append(entry._replace(status="removed"))
    return removed
