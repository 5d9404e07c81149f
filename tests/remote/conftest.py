"""Fixtures for remote execution: the NDIF API service on loopback and meta models for it.

The server tests skip when the service is not installed (run
``scripts/install_ndif_test_server.sh``), unless ``INDUCTION_NNSIGHT_REQUIRE_NDIF=1``
(set by CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.remote.ndif_server import NdifTestServer, installed, site_dir

API_KEY = "sk-test-0123456789abcdef-never-print-me"


def smollm2_cached() -> bool:
    from induction_nnsight.models.cache import MARK, cache_dir
    from induction_nnsight.models.embedded import SMOLLM2

    return (cache_dir() / SMOLLM2 / MARK).exists()


@dataclass
class Served:
    """A running test server and the client-side (meta) models it serves."""

    server: NdifTestServer
    models: dict  # name -> meta model built with load_model(name, remote=True)

    @property
    def host(self) -> str:
        return self.server.host


@pytest.fixture(scope="session")
def ndif(tiny_dir):
    """NDIF on 127.0.0.1 serving the tiny GPT-2 and Llama (and SmolLM2 when cached)."""
    if not installed():
        message = f"NDIF test server not installed in {site_dir()}: run scripts/install_ndif_test_server.sh"
        if os.environ.get("INDUCTION_NNSIGHT_REQUIRE_NDIF") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from induction_nnsight import load_model
    from induction_nnsight.models.loading import SMOLLM2
    from induction_nnsight.ndif.status import model_key

    names = {"gpt2": str(tiny_dir("gpt2")), "llama": str(tiny_dir("llama"))}
    if smollm2_cached():
        names["smollm2"] = SMOLLM2
    models = {label: load_model(name, remote=True, progress=False) for label, name in names.items()}
    server = NdifTestServer([model_key(m) for m in models.values()]).start()
    try:
        yield Served(server, models)
    finally:
        server.cleanup()


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    """A fake API key (the local server has auth off) and no host from the environment."""
    monkeypatch.setenv("NDIF_API_KEY", API_KEY)
    monkeypatch.delenv("NDIF_HOST", raising=False)
