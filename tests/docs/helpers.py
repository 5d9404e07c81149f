"""Shared by the docs tests: paths, the Sphinx build command, the doc-example extractor."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHARTS = ROOT / "charts"
SCREENSHOTS = DOCS / "_build" / "screenshots"


def sphinx_build(source: Path, out: Path, builder: str = "html") -> subprocess.CompletedProcess:
    """``python -m sphinx -W --keep-going -b html source out``, as CI runs it."""
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder, str(source), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def load_export_charts():
    """scripts/export_charts.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("export_charts", ROOT / "scripts" / "export_charts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Block:
    language: str  # "python" (run) or "pycon" (a doctest: >>> prompts and expected output)
    code: str
    line: int  # 1-based line of the first code line


_FENCE = re.compile(r"^```(python|pycon)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def example_blocks(text: str) -> list[Block]:
    """The ```python and ```pycon fenced blocks of a Markdown page, in order."""
    return [Block(m[1], m[2], text.count("\n", 0, m.start(2)) + 1) for m in _FENCE.finditer(text)]
