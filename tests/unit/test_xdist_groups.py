"""The suite leans on ``--dist loadgroup`` (pyproject.toml): the loopback NDIF tests share one service,
the family matrix one process, a slow module its fixtures, the icl chart check and e2e test one run.
pytest 9.2 silently broke it (pytest-dev/pytest-xdist#1386: the group suffix no longer reaches the
scheduler, so grouped tests spread over workers), hence the pin ``pytest<9.2``; this test fails if
grouping stops taking effect again."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("loadgroup-check")
def test_grouped_tests_carry_their_group(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not a --dist loadgroup worker (-n 0)")
    assert request.node.nodeid.endswith("@loadgroup-check"), request.node.nodeid
