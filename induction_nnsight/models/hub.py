"""The Hugging Face Hub, seen from the loader: whether it answers, whether a model is in its local cache,
and whether a failed load failed for want of it.
"""

from __future__ import annotations

import os


def unreachable(error: BaseException) -> bool:
    """Whether a load failed because the Hub could not be reached (not a missing repo)."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)):
            return True
        text = str(seen).lower()
        if "offline" in text or "couldn't connect" in text or "connection" in text or "resolve" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection (no request is sent)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def cached_on_hub(name: str) -> bool:
    """Whether ``name``'s config is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id that is not a valid repo name
        return False
