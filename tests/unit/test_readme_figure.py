"""The README's picture is what the committed scan draws (scripts/readme_figure.py), and the SVG
builder puts each score's colour where its head is."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from induction_nnsight.figures.svg import heatmap_svg

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_picture_matches_the_committed_scan():
    done = subprocess.run([sys.executable, "scripts/readme_figure.py", "--check"], cwd=ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert "docs/_static/induction_heatmap.svg" in (ROOT / "README.md").read_text()


def test_the_strongest_head_gets_the_top_colour_at_its_place():
    scores = json.loads((ROOT / "charts" / "scan_results.json").read_text())["induction_scores"]
    svg = heatmap_svg([[0.0, 0.0], [0.0, 1.0]], "t", cell=10)
    cells = re.findall(r'<rect x="(\d+)" y="(\d+)" width="10" height="10" fill="(#\w+)"/>', svg)
    assert len(cells) == 4 and cells[3][2] == "#fde725" and {c[2] for c in cells[:3]} == {"#440154"}
    assert int(cells[3][0]) > int(cells[2][0]) and int(cells[3][1]) > int(cells[0][1])  # head across, layer down
    assert svg.count("<rect") - 1 - 20 == 4  # background and 20 colour-bar steps besides the cells
    assert len(heatmap_svg(scores, "x").split('width="14" height="14"')) - 1 == len(scores) * len(scores[0])
