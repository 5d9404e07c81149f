"""The committed ``explain`` report on SmolLM2: ``charts/explain.html`` and ``charts/explain_results.json``.

    python scripts/explain_report.py      # the default ``induction-nnsight explain`` (a few minutes on 2 cores)

The same run as ``induction-nnsight explain --out charts`` with the defaults; the docs' "Explaining a
model" page and the gallery link the page, and quote its cost (seconds per stage, the default run's
time) from the results file. Its files start with ``explain`` (:data:`export_charts.OTHER_PRODUCERS`):
the slow tier's chart check, which reruns every producer of ``scripts/export_charts.py``, leaves them
out to keep CI within its time.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from induction_nnsight.app.explain_job import ExplainConfig, run_explain  # noqa: E402
from induction_nnsight.app.outputs import write_files  # noqa: E402


def main() -> int:
    explanation, files = run_explain(ExplainConfig())
    write_files(ROOT / "charts", files)
    print(f"wrote {', '.join(sorted(files))} to charts/", file=sys.stderr)
    return 0 if explanation is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
