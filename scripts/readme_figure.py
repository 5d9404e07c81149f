"""Draw the README's picture, the induction heatmap, from the committed scan (charts/scan_results.json).

python scripts/readme_figure.py            # rewrite docs/_static/induction_heatmap.svg
python scripts/readme_figure.py --check    # fail when the committed picture no longer matches the scan
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from induction_nnsight.figures.svg import heatmap_svg

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT / "charts" / "scan_results.json"
PICTURE = ROOT / "docs" / "_static" / "induction_heatmap.svg"


def picture() -> str:
    """The SVG text the committed scan draws."""
    scan = json.loads(SCAN.read_text())
    settings = scan["settings"]
    title = f"Induction score of every head\n{scan['model']}, {settings['batch']} x 2 x {settings['seq_len']} tokens"
    return heatmap_svg(scan["induction_scores"], title)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed picture instead")
    if parser.parse_args().check:
        if PICTURE.read_text() != picture():
            print(f"{PICTURE.relative_to(ROOT)} is stale: run python scripts/readme_figure.py", file=sys.stderr)
            return 1
        return 0
    PICTURE.write_text(picture())
    print(f"wrote {PICTURE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
