"""What a training run adds to its scored checkpoints: the loss on fresh tokens around the phase change
(from the run's ``loss_log.jsonl``), several seeds' runs and the spread of their phase-change steps.

A run directory is the one ``induction-nnsight train`` writes (``loss_log.jsonl`` beside
``checkpoint-STEP/``); ``train --seeds N`` writes one per seed, ``OUT/seed-S/``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

LOSS_LOG = "loss_log.jsonl"
"""The loss log a training run writes (one JSON object a line: ``step``, ``loss``, ``loss_fresh``, ...)."""
Z95 = 1.959964
"""The two-sided 95% normal quantile."""

_SEED_DIR = re.compile(r"seed-(\d+)$")


def seed_runs(path: str | Path) -> list[tuple[int, Path]]:
    """``(seed, run directory)`` of the ``seed-S/`` runs inside ``path``, by seed; empty when there are none."""
    path = Path(path)
    if not path.is_dir():
        return []
    found = [(int(m[1]), p) for p in path.iterdir() if p.is_dir() and (m := _SEED_DIR.search(p.name))]
    return sorted(found)


def read_loss_log(run: str | Path) -> list[dict]:
    """The lines of ``run/loss_log.jsonl`` (empty when there is none or it cannot be read)."""
    path = Path(run) / LOSS_LOG
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError):
        return []


def _window(log: list[dict], first: int, last: int, key: str) -> torch.Tensor:
    """``[n]`` the finite values of ``key`` on the log lines with ``first <= step <= last``."""
    values = [line.get(key) for line in log if first <= line["step"] <= last]
    return torch.tensor([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=torch.float64)


def _described(values: torch.Tensor, first: int, last: int) -> dict:
    return {
        "steps": [first, last],
        "lines": len(values),
        "mean": round(float(values.mean()), 4),
        "sd": round(float(values.std()), 4),
    }


def fresh_loss_bump(log: list[dict], change: dict | None, key: str = "loss_fresh") -> dict | None:
    """The training loss on fresh tokens just after the phase change against just before it.

    With ``w`` the extent of the whole rise (``change["end"] - change["start"]``), the window before
    is ``[before - w, before]`` and the window after ``[step, step + w]`` (``before`` and ``step``: the
    checkpoints around the fitted centre of the rise). The difference of the means gets a 95% interval from the
    two windows' spreads (each log line is the mean over an independent batch; the spread includes
    any trend), and the bump is ``present`` when its interval lies above 0.

    Args:
        log: The run's loss log (:func:`read_loss_log`).
        change: The phase change (:func:`~induction_nnsight.dynamics.phase.phase_change`); None: no bump.
        key: The log's column.

    Returns:
        A dict with ``before`` and ``after`` (each with ``steps``, ``lines``, ``mean`` and ``sd``),
        ``rise``, ``ci_low``, ``ci_high`` and ``present``; None without a change, or with under 3
        log lines in a window.

    Example:
        >>> log = [{"step": s, "loss_fresh": 2.8 + 0.1 * (s >= 100) + 0.01 * (s % 20 == 0)} for s in range(0, 200, 10)]
        >>> fresh_loss_bump(log, {"before": 90, "step": 100, "start": 50, "end": 150})["present"]
        True
    """
    if change is None:
        return None
    first, last = int(change["before"]), int(change["step"])
    width = max(int(change["end"]) - int(change["start"]), 1)
    before = _window(log, first - width, first, key)
    after = _window(log, last, last + width, key)
    if len(after) < 3 or len(before) < 3:
        return None
    rise = float(after.mean() - before.mean())
    half = Z95 * math.sqrt(float(after.var()) / len(after) + float(before.var()) / len(before))
    return {
        "before": _described(before, max(first - width, 0), first),
        "after": _described(after, last, last + width),
        "rise": round(rise, 4),
        "ci_low": round(rise - half, 4),
        "ci_high": round(rise + half, 4),
        "present": rise - half > 0,
    }


def phase_spread(tests: list[tuple[int, dict]]) -> dict:
    """The spread of the phase-change step over seeds.

    Args:
        tests: ``(seed, phase-change test)`` per seed (:func:`~induction_nnsight.dynamics.phase.phase_test`'s
            dict: ``change`` None where it found none, ``amplitude`` the fitted sigmoid's rise).

    Returns:
        ``{"seeds", "found", "steps", "amplitudes", "min", "max", "median"}``: per seed its change's step
        (None without one) and its sigmoid's rise (None where no test ran), and the statistics of the
        steps of the seeds with a change (None where no seed has one).

    Example:
        >>> tests = [(0, {"change": {"step": 900}, "amplitude": 0.6}), (1, {"change": None, "amplitude": 0.03})]
        >>> spread = phase_spread(tests)
        >>> spread["median"], spread["amplitudes"]
        (900.0, [0.6, 0.03])
    """
    found = [None if test.get("change") is None else int(test["change"]["step"]) for _, test in tests]
    steps = [step for step in found if step is not None]
    values = torch.tensor(steps, dtype=torch.float64)
    return {
        "seeds": [seed for seed, _ in tests],
        "found": len(steps),
        "steps": found,
        "amplitudes": [test.get("amplitude") for _, test in tests],
        "min": min(steps) if steps else None,
        "max": max(steps) if steps else None,
        "median": float(values.quantile(0.5)) if steps else None,
    }
