"""The committed plans (results/ndif_plans.json, from scripts/ndif_plans.py, quoted by docs/ndif_scale.md) are
whole jobs: no plan stops at a request the job could not send, but the circuit's, which docs/ndif_scale.md
states (path patching ships the clean run's activations in its requests). A 405B dual-route plan once stopped
at its first copying sweep, a 72 MB request, and its totals priced only the requests before it."""

from __future__ import annotations

import json
from pathlib import Path

PLANS = Path(__file__).resolve().parents[2] / "results" / "ndif_plans.json"
KNOWN = ("circuit_estimate", "default_circuit")
"""The jobs whose stop docs/ndif_scale.md states ("What does not fit: the circuit on 70B and 405B")."""


def test_no_committed_plan_stops_but_the_circuits_stated_one():
    models = json.loads(PLANS.read_text())["models"]
    plans = {(m, job): plan for m, jobs in models.items() for job, plan in jobs.items() if isinstance(plan, dict)}
    plans = {key: plan for key, plan in plans.items() if "requests" in plan}
    assert len(plans) >= 20  # both models' jobs are there: the check can fail
    stopped = {key: plan["stopped"] for key, plan in plans.items() if plan["stopped"]}
    assert {job for _, job in stopped} <= set(KNOWN), stopped
    assert all("over the 50,000,000-byte budget" in why for why in stopped.values()), stopped
