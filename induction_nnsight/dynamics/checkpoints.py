"""Checkpoints of one training run, sorted by step: local directories or Hub revisions."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InductionError

_STEP = re.compile(r"(?:checkpoint|step|global_step|ckpt)[-_]?(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint: its training step, what ``load_model`` loads (a directory or a Hub id) and
    the Hub revision (None for a local directory)."""

    step: int
    path: str
    revision: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path}@{self.revision}" if self.revision else self.path


def checkpoint_step(directory: Path) -> int | None:
    """The step of a checkpoint directory: from its name (``checkpoint-1000``, ``step1000``) or,
    failing that, from its ``trainer_state.json`` (``step`` or ``global_step``).

    Example:
        >>> checkpoint_step(Path("runs/tiny/checkpoint-250")), checkpoint_step(Path("pythia/step1000"))
        (250, 1000)
    """
    found = _STEP.search(directory.name)
    if found:
        return int(found[1])
    state = directory / "trainer_state.json"
    if state.is_file():
        try:
            values = json.loads(state.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        for key in ("step", "global_step"):
            if isinstance(values.get(key), int):
                return values[key]
    return None


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def find_checkpoints(paths: list[str | Path]) -> list[Checkpoint]:
    """The checkpoints named by ``paths``, sorted by step.

    Args:
        paths: Checkpoint directories (each with a ``config.json``), or run directories holding
            ``checkpoint-STEP/`` subdirectories, in any order and mix.

    Returns:
        One :class:`Checkpoint` per directory, ordered by step.

    Raises:
        InductionError: For a missing path, a directory that is neither a model nor a run, a
            checkpoint whose step cannot be read, or two checkpoints of the same step.
    """
    if not paths:
        raise InductionError("no checkpoints given: pass checkpoint or run directories, or --model ID --revisions ...")
    found: dict[int, Checkpoint] = {}
    for given in paths:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise InductionError(f"no directory at {path}: pass checkpoint directories or a training run's directory")
        inside = [p for p in sorted(path.iterdir()) if p.is_dir() and _is_model_dir(p) and _STEP.search(p.name)]
        candidates = [path] if _is_model_dir(path) else inside
        if not candidates:
            raise InductionError(
                f"{path} holds no config.json and no checkpoint-STEP/ directories: "
                "pass a model checkpoint directory or a run directory from `induction-nnsight train`"
            )
        for directory in candidates:
            step = checkpoint_step(directory)
            if step is None:
                raise InductionError(
                    f"cannot tell the training step of {directory}: name it checkpoint-STEP "
                    "(or give it a trainer_state.json with a step)"
                )
            if step in found and Path(found[step].path) != directory:
                raise InductionError(f"two checkpoints of step {step}: {found[step].path} and {directory}; pass one")
            found[step] = Checkpoint(step, str(directory))
    return [found[step] for step in sorted(found)]


def hub_checkpoints(model: str | None, revisions: list[str]) -> list[Checkpoint]:
    """Checkpoints that are revisions of one Hub model (``step1000`` ...), sorted by step.

    Raises:
        InductionError: Without ``--model``, or for a revision with no step number in its name.
    """
    if not model:
        raise InductionError("--revisions needs --model HUB_ID (e.g. --model EleutherAI/pythia-70m)")
    found = {}
    for revision in revisions:
        digits = re.search(r"(\d+)$", revision)
        if not digits:
            raise InductionError(f"revision {revision!r} has no step number: pass revisions like step0,step1000")
        found[int(digits[1])] = Checkpoint(int(digits[1]), model, revision)
    return [found[step] for step in sorted(found)]


def check_hub(checkpoints: list[Checkpoint]) -> None:
    """Refuse, in one line, Hub revisions that are neither in the local Hugging Face cache nor reachable.

    Raises:
        InductionError: Naming what to do instead (connect, or score local checkpoint directories).
    """
    from huggingface_hub import try_to_load_from_cache

    from ..models.hub import hub_reachable

    def cached(checkpoint: Checkpoint) -> bool:
        try:
            found = try_to_load_from_cache(checkpoint.path, "config.json", revision=checkpoint.revision)
        except Exception:  # an id that is not a valid repo name
            return False
        return isinstance(found, str)

    missing = [c for c in checkpoints if c.revision and not cached(c)]
    if missing and not hub_reachable():
        offline = " and unset HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise InductionError(
            f"--revisions needs the Hugging Face Hub, which is unreachable (revision {missing[0].revision} of "
            f"{missing[0].path} is not cached): connect to the Hub{offline}, or score local "
            "checkpoint directories, e.g. a run from `induction-nnsight train`"
        )
