"""The family matrix records the same file whatever route the tests take (issue 33).

The whole suite's run (``tests/conftest.py``) compares what it found with ``docs/families.json``; this
slow check runs the matrix module alone, in a fresh process with one worker and one thread, and compares
what that run found with the same committed file. Together: alone and inside the whole suite give one file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.families import MATRIX, RECORD_TO

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_matrix_alone_records_the_committed_file(tmp_path):
    record = tmp_path / "families.json"
    env = {**os.environ, RECORD_TO: str(record), "OMP_NUM_THREADS": "1"}
    env.pop("UPDATE_FAMILIES", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            "tests/integration/test_family_matrix.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert record.exists(), run.stdout[-2000:]  # the run was complete
    found, committed = json.loads(record.read_text()), json.loads(MATRIX.read_text())
    differ = [f["family"] for f, c in zip(found, committed) if f != c]
    assert found == committed, f"alone, the matrix differs for {differ}"
    assert run.returncode == 0, run.stdout[-2000:]
