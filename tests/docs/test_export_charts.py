"""scripts/export_charts.py: its comparison tolerates float noise and catches drift;
on SmolLM2 (slow) the committed charts/ match what the code produces now."""

import json

import pytest

from tests.docs.helpers import CHARTS, load_export_charts

export_charts = load_export_charts()


def test_float_noise_passes_and_drift_is_named():
    committed = {"data": [{"z": [[0.901798, 0.1]], "text": [["L0H0: 0.902", "L0H1: 0.100"]]}], "title": "scan"}
    noisy = {"data": [{"z": [[0.901801, 0.1000004]], "text": [["L0H0: 0.901", "L0H1: 0.100"]]}], "title": "scan"}
    assert list(export_charts.differences(committed, noisy)) == []
    drifted = json.loads(json.dumps(committed))
    drifted["data"][0]["z"][0][0] = 0.85
    drifted["data"][0]["text"][0][1] = "L0H1: 0.200"
    drifted["title"] = "scan 2"
    found = list(export_charts.differences(committed, drifted))
    assert any(line.startswith(".data[0].z[0][0]: 0.901798 vs now 0.85") for line in found)
    assert any(".data[0].text[0][1]" in line for line in found)
    assert any(".title" in line for line in found)
    assert list(export_charts.differences([1, 2], [1, 2, 3])) == ["(root): 2 items vs now 3"]


def test_timings_are_not_results():
    committed = {"sweep": {"seconds": 136.6, "rows": [1.0]}}
    assert list(export_charts.differences(committed, {"sweep": {"seconds": 60.1, "rows": [1.0]}})) == []
    assert list(export_charts.differences(committed, {"sweep": {"seconds": 60.1, "rows": [2.0]}}))


def test_check_names_missing_extra_and_drifted_files(tmp_path):
    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    committed.mkdir(), fresh.mkdir()
    (committed / "a.json").write_text('{"y": [1.0, 2.0]}')
    (fresh / "a.json").write_text('{"y": [1.0, 2.5]}')
    (committed / "old.json").write_text("{}")
    (fresh / "new.json").write_text("{}")
    problems = "\n".join(export_charts.check(committed, fresh))
    assert "a.json drifted at 1 place(s)" in problems and ".y[1]: 2.0 vs now 2.5" in problems
    assert "new.json: produced by the code but not committed" in problems
    assert "old.json: committed" in problems


def test_every_committed_chart_has_one_producer():
    """What lets the slow check below run one producer at a time (in parallel): every committed chart
    belongs to exactly one producer's :data:`OUTPUTS`."""
    assert set(export_charts.OUTPUTS) == set(export_charts.PRODUCERS)
    names = [p.name for p in CHARTS.iterdir() if p.suffix in (".json", ".html")]
    owned = {name: export_charts.owners(name) for name in names if not name.startswith(export_charts.OTHER_PRODUCERS)}
    assert owned and all(len(found) == 1 for found in owned.values()), owned
    assert export_charts.owners("circuit_k.json") == ["circuit"] and export_charts.owners("nobody.json") == []


SHARED_RUNS = {"icl": "default_icl"}
"""Producers whose run a slow e2e test reads too: the session fixture that makes it once (its call is
the producer's); the fixture's name is also the xdist group that keeps the two tests in one process."""


@pytest.mark.slow
@pytest.mark.parametrize(
    "producer",
    [
        pytest.param(name, marks=pytest.mark.xdist_group(SHARED_RUNS[name])) if name in SHARED_RUNS else name
        for name in export_charts.PRODUCERS
    ],
)
def test_committed_charts_match_the_code(smollm2, tmp_path, producer, request):
    from induction_nnsight.app.outputs import write_files

    if producer in SHARED_RUNS:
        produced = request.getfixturevalue(SHARED_RUNS[producer])[1]
    else:
        produced = export_charts.produce(model=smollm2, only=[producer])
    write_files(tmp_path, produced)
    problems = export_charts.check(CHARTS, tmp_path, only=[producer])
    assert not problems, (
        "the committed charts no longer match the code; run `python scripts/export_charts.py` and commit charts/:\n"
        + "\n".join(problems)
    )


def test_rankings_tolerate_near_ties_and_catch_real_changes():
    """Two heads 2e-6 apart may swap between machines; a head whose value drifts, or that enters a
    top list far from its cut-off, is a real change."""
    committed = {
        "rows": [
            {"layer": 13, "head": 3, "delta": 0.024255},
            {"layer": 12, "head": 2, "delta": 0.024253},
            {"layer": 0, "head": 1, "delta": 0.01},
        ]
    }
    swapped = {"rows": [committed["rows"][1], committed["rows"][0], committed["rows"][2]]}
    assert list(export_charts.differences(committed, swapped)) == []
    drifted = json.loads(json.dumps(swapped))
    drifted["rows"][2]["delta"] = 0.02
    assert list(export_charts.differences(committed, drifted)) == [".rows[L0H1].delta: 0.01 vs now 0.02"]
    top = [{"layer": 1, "head": 0, "score": 0.9}, {"layer": 2, "head": 0, "score": 0.5}]
    at_cut_off = [top[0], {"layer": 3, "head": 1, "score": 0.5000004}]
    assert list(export_charts.differences(top, at_cut_off)) == []
    newcomer = [{"layer": 4, "head": 4, "score": 0.95}, top[0]]
    assert any("L4H4]: new now" in line for line in export_charts.differences(top, newcomer))
    assert any("L2H0]: gone now" in line for line in export_charts.differences(top, newcomer))


def test_bar_charts_of_heads_compare_as_rankings():
    def bars(labels, ys):
        return {"data": [{"type": "bar", "x": labels, "y": ys, "error_y": {"array": [0.1] * len(ys)}}]}

    committed = bars(["L1H0", "L2H0"], [0.5, 0.5000001])
    assert (
        list(
            export_charts.differences(
                export_charts.canonical(committed), export_charts.canonical(bars(["L2H0", "L1H0"], [0.5000001, 0.5]))
            )
        )
        == []
    )
    assert list(
        export_charts.differences(
            export_charts.canonical(committed), export_charts.canonical(bars(["L1H0", "L2H0"], [0.5, 0.6]))
        )
    )


def test_run_ids_are_not_results():
    assert (
        list(
            export_charts.differences(
                {"run_id": "a", "layout": {"meta": {"run_id": "a"}}},
                {"run_id": "b", "layout": {"meta": {"run_id": "b"}}},
            )
        )
        == []
    )
