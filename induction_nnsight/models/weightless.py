"""A model's architecture with no weights: what ``--plan`` traces (on the ``meta`` device).

:func:`weightless_model` builds the same nnsight ``TransformersModel`` as
:func:`~induction_nnsight.models.loading.load_model`, from a config alone, with every parameter on
the ``meta`` device (shapes and dtypes, no storage) and marked dispatched, so a trace runs the
real module tree on meta tensors instead of loading weights. The config comes from

- the configs shipped in this package (:data:`SHIPPED_CONFIGS`: NDIF's hosted Llama-3.1 models
  and the embedded default), so the models people plan for most work offline;
- a local model directory holding ``config.json`` (its tokenizer too, when it has one);
- the Hugging Face cache, or the Hub when it answers.

A model with none of these is refused in one line naming ``--model`` with a local config directory.
Models without a tokenizer at hand get the stand-in of
:mod:`~induction_nnsight.models.id_tokenizer` (the probes are token ids).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from ..errors import InductionError
from .embedded import SMOLLM2
from .hub import cached_on_hub, hub_reachable
from .id_tokenizer import has_tokenizer, id_tokenizer

__all__ = ["SHIPPED_CONFIGS", "load_weightless", "shipped_config", "weightless_config", "weightless_model"]

SHIPPED_CONFIGS = {
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b.json",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b.json",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b.json",
    "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b.json",
    "meta-llama/Llama-3.1-405B": "llama-3.1-405b.json",
    "meta-llama/Llama-3.1-405B-Instruct": "llama-3.1-405b.json",
    SMOLLM2: "smollm2-135m.json",
}
"""Model name -> config file in ``induction_nnsight/models/configs`` (the architecture only: an
Instruct model shares its base model's file, whose end-of-sequence id it does not use)."""


def shipped_config(name: str):
    """The transformers config shipped for ``name`` (a key of :data:`SHIPPED_CONFIGS`), read offline."""
    from transformers import AutoConfig

    text = resources.files(__package__).joinpath("configs", SHIPPED_CONFIGS[name]).read_text()
    values = json.loads(text)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    config.name_or_path = name  # the model facts' name, as a config read from the Hub has it
    return config


def weightless_config(name: str):
    """``(config, directory)``: the transformers config of ``name`` and the local directory it came
    from (None for a shipped or Hub config).

    Raises:
        InductionError: No config for ``name`` here and the Hub unreachable (one line naming
            ``--model`` with a local config directory).
    """
    from transformers import AutoConfig

    if name in SHIPPED_CONFIGS:
        return shipped_config(name), None
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InductionError(f"{path} has no config.json: pass --model with a directory holding the config.json")
        return AutoConfig.from_pretrained(str(path)), path
    if path.suffix != ".gguf" and (cached_on_hub(name) or hub_reachable()):
        try:
            return AutoConfig.from_pretrained(name), None
        except Exception:  # a missing repo, no network after all ...: the one line below
            pass
    raise InductionError(
        f"no config for {name!r} here (shipped: {', '.join(sorted(SHIPPED_CONFIGS))}) and the Hub cannot give one: "
        "pass --model with a local directory holding its config.json"
    )


def _tokenizer(config, directory: Path | None):
    """The directory's tokenizer when it has one, else the id stand-in sized by ``config``."""
    if directory is not None and has_tokenizer(directory):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(directory))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return id_tokenizer(text.vocab_size, getattr(text, "bos_token_id", None))


def weightless_model(name: str, attn_implementation: str | None = None):
    """``name``'s architecture as an nnsight ``TransformersModel`` on the ``meta`` device, ready to trace.

    Args:
        name: A shipped model name (:data:`SHIPPED_CONFIGS`), a local model directory, or a Hub id
            whose config is cached (or fetchable).
        attn_implementation: ``"sdpa"`` (NDIF's, the default), ``"eager"``, ...

    Returns:
        A ``TransformersModel`` whose parameters are meta tensors in the config's dtype (float32
        when it names none); traces run on it without loading anything.

    Raises:
        InductionError: No config can be found (see :func:`weightless_config`).
    """
    from nnsight import TransformersModel

    config, directory = weightless_config(name)
    dtype = getattr(config, "dtype", None) or torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    model = TransformersModel(
        str(directory) if directory is not None else name,
        config=config,
        task="text-generation",
        tokenizer=_tokenizer(config, directory),
        dispatch=False,
        attn_implementation=attn_implementation or "sdpa",
        dtype=dtype,
    )
    model.dispatched = True  # run the meta module itself: there are no weights to load
    return model


def load_weightless(path, attn_implementation: str | None = None, **_):
    """:func:`weightless_model` with :func:`~induction_nnsight.models.loading.load_model`'s signature
    (its other arguments ignored), for code that takes a ``load`` function (the dynamics sweep)."""
    return weightless_model(str(path), attn_implementation)
