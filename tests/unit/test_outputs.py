"""Result files: strict JSON, the user's umask, one run id per set, whole sets under faults."""

import errno
import math
import multiprocessing
import os

import plotly.graph_objects as go
import pytest

from induction_nnsight.app.outputs import parse_strict, to_json, write_files
from induction_nnsight.errors import InductionError
from tests.run_ids import run_id_of


def figure_text(value: float) -> str:
    return go.Figure(go.Heatmap(z=[[value, float("nan")]])).to_json()


def test_nan_and_infinity_become_null():
    text = to_json({"a": float("nan"), "b": [1.5, float("inf"), -math.inf], "c": {"d": (float("nan"),)}})
    assert parse_strict(text) == {"a": None, "b": [1.5, None, None], "c": {"d": [None]}}
    assert parse_strict(figure_text(0.5))["data"][0]["z"] == [[0.5, None]]
    with pytest.raises(ValueError, match="NaN"):
        parse_strict('{"a": NaN}')


def test_files_get_the_umask_and_share_one_run_id(tmp_path):
    old = os.umask(0o022)
    try:
        paths = write_files(tmp_path, {"r.json": to_json({"x": 1}), "f.json": figure_text(1.0), "t.txt": "hi\n"})
    finally:
        os.umask(old)
    assert {p.stat().st_mode & 0o777 for p in paths} == {0o644}
    ids = {run_id_of(parse_strict(p.read_text())) for p in paths if p.suffix == ".json"}
    assert len(ids) == 1 and None not in ids
    assert (tmp_path / "t.txt").read_text() == "hi\n"
    again = write_files(tmp_path, {"r.json": to_json({"x": 2})})
    assert run_id_of(parse_strict(again[0].read_text())) not in ids


def test_a_non_strict_json_text_is_refused_before_any_file(tmp_path):
    with pytest.raises(ValueError):
        write_files(tmp_path, {"a.json": to_json({"x": 1}), "b.json": '{"x": NaN}'})
    assert list(tmp_path.iterdir()) == []


def test_a_write_failing_midway_leaves_the_previous_set(tmp_path, monkeypatch):
    write_files(tmp_path, {"a.json": to_json({"v": 1}), "b.json": to_json({"v": 1})})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_fdopen, calls = os.fdopen, []

    def full_disk(fd, *args, **kwargs):
        calls.append(fd)
        if len(calls) == 2:
            os.close(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", full_disk)
    with pytest.raises(InductionError, match="No space left on device"):
        write_files(tmp_path, {"a.json": to_json({"v": 2}), "b.json": to_json({"v": 2})})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def _writer(out: str, tag: int, start) -> None:
    import time
    from pathlib import Path

    replace = os.replace

    def slow_replace(src, dst):
        replace(src, dst)
        time.sleep(0.02 if tag == 1 else 0.005)

    # Writer 2 starts later and renames faster: unlocked, it would overtake writer 1 midway and leave a mix.
    os.replace = slow_replace  # in this forked child only
    start.wait(30)
    time.sleep(0.05 * (tag - 1))
    write_files(Path(out), {f"f{k}.json": to_json({"writer": tag, "k": k}) for k in range(8)})


def test_two_runs_into_one_out_leave_one_whole_set(tmp_path):
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    writers = [context.Process(target=_writer, args=(str(tmp_path), tag, start)) for tag in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
    assert [process.exitcode for process in writers] == [0, 0]
    values = [parse_strict(p.read_text()) for p in sorted(tmp_path.iterdir())]
    assert len(values) == 8  # no temporary file left behind
    assert len({(v["writer"], v["run_id"]) for v in values}) == 1
