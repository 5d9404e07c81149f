"""``explain --remote`` against the NDIF API service on loopback: every stage reaches the host, and the
report's numbers equal a local run's (the tiny Llama under sdpa both ways, as the host runs it)."""

from __future__ import annotations

import pytest

from induction_nnsight.app.cli import main
from induction_nnsight.strict_json import parse_strict
from tests.integration.test_explain import TINY
from tests.remote.conftest import API_KEY

STAGES = ("heads", "ablate", "circuit", "attention", "icl")
"""The stages explain runs on the tiny model (too small for the dual route: its entities do not split)."""


def _numbers(value, path=""):
    """``path -> number`` of every number in a JSON value (what the report states)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_numbers(item, f"{path}.{key}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(_numbers(item, f"{path}[{i}]"))
        return out
    return {path: value} if isinstance(value, (int, float)) and not isinstance(value, bool) else {}


VARIES = ("seconds", "run_id", "ndif", "bytes", "requests", "cost", "timeout")
"""Path words of what a remote run records differently (timings, transfers, the host): not results."""


def test_explain_remote_equals_local(ndif, tiny_dir, tmp_path, capsys):
    model = str(tiny_dir("llama"))
    common = ["explain", "--model", model, "--attn-implementation", "sdpa", *TINY]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    remote_args = ["--remote", "--ndif-host", ndif.host, "--timeout", "120"]
    assert main([*common, *remote_args, "--out", str(tmp_path / "remote")]) == 0
    local = parse_strict((tmp_path / "local" / "explain_results.json").read_text())
    remote = parse_strict((tmp_path / "remote" / "explain_results.json").read_text())
    assert set(STAGES) <= set(remote["cost"]["stages"]), sorted(remote["cost"]["stages"])
    assert remote["settings"]["remote"] is True and local["settings"]["remote"] is False
    a, b = _numbers(local), _numbers(remote)
    # a remote run reports no composition scores
    kept = [p for p in a if p in b and not any(word in p for word in VARIES)]
    for key in ("heads", "ablation", "circuit", "attention", "icl"):
        assert any(p.startswith(f".{key}.") for p in kept), key
    for path in kept:
        assert b[path] == pytest.approx(a[path], rel=1e-4, abs=1e-5), path
    written = "".join(p.read_text() for p in (tmp_path / "remote").iterdir() if p.is_file())
    assert API_KEY not in written + "".join(capsys.readouterr())
