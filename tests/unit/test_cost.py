"""The cost arithmetic: pure functions of the model's shape and the run's size, checked by counting by hand."""

import json

import pytest

from induction_nnsight.causal.cost import (
    BACKWARD_FORWARDS,
    Cost,
    circuit_cost,
    estimate_cost,
    runs_cost,
    scale_table,
    sweep_cost,
)
from induction_nnsight.causal.paths.patching import all_earlier, path_variants, plan_runs


def test_a_sweep_counts_one_pass_per_row_per_variant():
    cost = sweep_cost(30, 9, rows=4, tokens_per_row=61)
    assert cost.forward_passes == 4 * (30 * 9 + 1) and cost.backward_passes == 0
    assert cost.tokens == 4 * 271 * 61
    assert sweep_cost(30, 9, 4, 61, variants=10).forward_passes == 44


def test_estimators_cost_what_they_run():
    assert estimate_cost("plain", 30, 4, 61) == Cost(4, 4, 8 * 61)
    assert estimate_cost("ig", 30, 4, 61, steps=8).forward_equivalents == 8 * 4 * (1 + BACKWARD_FORWARDS)
    assert estimate_cost("graddrop", 30, 4, 61).backward_passes == 30 * 4
    with pytest.raises(ValueError):
        estimate_cost("exact", 30, 4, 61)


def test_costs_add_and_serialise_as_strict_json():
    total = Cost(1.5, 2.0, 10) + Cost(0.5, 0.0, 5)
    assert total == Cost(2.0, 2.0, 15) and total.scaled(2) == Cost(4.0, 4.0, 30)
    text = json.dumps(total.as_dict(), allow_nan=False)
    assert json.loads(text)["forward_equivalents"] == 2.0 + 2.0 * BACKWARD_FORWARDS


@pytest.mark.parametrize("targets", [[(18, 6), (17, 3)], [(1, 0)], [(5, 2), (5, 3), (9, 0)]])
def test_the_circuit_arithmetic_equals_the_runs_path_patching_plans(targets):
    """circuit_cost (pure, for a planner) against the runs plan_runs actually builds, counted by runs_cost."""
    n_layers, n_heads, rows, n_pos = 30, 9, 2, 41
    variants = path_variants(targets, ["k", "q", "v", "total"], {t: all_earlier(t, n_heads) for t in targets})
    runs, _ = plan_runs(variants)
    counted = runs_cost(runs, n_layers, (rows, n_pos)).forward_passes + rows  # + the clean pass
    planned = circuit_cost(n_layers, n_heads, rows, n_pos, [t[0] for t in targets]).forward_passes
    assert planned == pytest.approx(counted)


def test_scale_table_for_llama_70b_and_405b():
    table = scale_table({"70B": (80, 64), "405B": (126, 128)}, rows=4, tokens_per_row=61, steps=8)
    assert [row["heads"] for row in table] == [5120, 16128]
    for row in table:
        assert row["sweep"] == 4 * (row["heads"] + 1)
        assert row["plain"] == 4 * (1 + BACKWARD_FORWARDS)
        assert row["ig_fraction"] == pytest.approx(8 * 4 * 3 / row["sweep"], abs=1e-4)
        assert row["graddrop"] == 4 * row["n_layers"] * (1 + BACKWARD_FORWARDS)
