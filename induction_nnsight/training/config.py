"""Training settings, the small model's transformers config and the log-spaced checkpoint steps."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..errors import InductionError

BOS_ID = 0
"""The BOS token of a trained model; corpus tokens are drawn from ``[1, vocab_size)``."""


@dataclass
class TrainSettings:
    """Everything that determines a training run (same settings, same weights).

    ``arch="gpt2"`` (default) is GPT-2 shaped (learned absolute positions, LayerNorm);
    ``"llama"`` is Llama shaped (rotary positions, RMSNorm, no biases). With ``mlp=False``
    (default) the MLPs output exactly zero: Llama's have width 0; GPT-2's cannot (its ``Conv1D``
    refuses an empty input), so they have width 1 with every weight and bias zero and never
    trained. Either way an attention-only transformer, as in Olsson et al.'s small models.
    ``mlp=True`` gives MLPs of width ``4 d_model``.
    """

    seed: int = 0
    arch: str = "gpt2"
    steps: int = 2500
    batch: int = 32
    seq_len: int = 64
    vocab_size: int = 64
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp: bool = False
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    min_span: int = 4
    max_span: int = 31  # (seq_len - 1) // 2: the probe's block fits the context and the training distances
    n_checkpoints: int = 20
    dense: str = "auto"  # auto[:N]: N (20) checkpoints through the steepest rise of a coarse pass; or START:STOP:EVERY
    log_every: int = 10
    tokenizer: bool = True
    repeats: bool = True  # False: a control corpus with no repeated spans (no induction heads form)

    def validate(self) -> None:
        """Check the settings before anything is built.

        Raises:
            InductionError: Naming the option to fix.
        """
        positive = ("steps", "batch", "d_model", "n_layers", "n_heads", "n_checkpoints", "log_every", "min_span")
        for name in positive:
            if getattr(self, name) < 1:
                raise InductionError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise InductionError(f"--d-model {self.d_model} is not a multiple of --n-heads {self.n_heads}")
        if self.arch not in ("gpt2", "llama"):
            raise InductionError(f"--arch {self.arch!r} is unknown: pass gpt2 or llama")
        if self.arch == "llama" and (self.d_model // self.n_heads) % 2:
            raise InductionError(
                f"heads of width {self.d_model // self.n_heads} cannot use rotary positions: "
                "pass --d-model and --n-heads with an even d_model / n_heads"
            )
        if self.vocab_size < 3:
            raise InductionError(f"--vocab-size must be at least 3 (BOS and two tokens), got {self.vocab_size}")
        if self.seq_len < 3:
            raise InductionError(f"--seq-len must be at least 3, got {self.seq_len}")
        if self.max_span < self.min_span:
            raise InductionError(f"--max-span {self.max_span} is below --min-span {self.min_span}")
        if not self.lr > 0 or self.warmup < 0 or self.weight_decay < 0:
            raise InductionError("--lr must be positive, --warmup and --weight-decay at least 0")
        dense_steps(self.dense)


DENSE_AUTO = 20
"""Checkpoints ``--dense auto`` places through the rise the coarse pass finds."""


def dense_auto(text: str) -> int | None:
    """``--dense auto[:N]``: how many checkpoints to place from the coarse pass (``auto``: :data:`DENSE_AUTO`);
    None for an explicit ``START:STOP:EVERY`` or none.

    Example:
        >>> dense_auto("auto"), dense_auto("auto:8"), dense_auto("500:700:50")
        (20, 8, None)

    Raises:
        InductionError: For ``auto:N`` with ``N`` not a whole number of at least 1.
    """
    head, _, count = text.strip().lower().partition(":")
    if head != "auto":
        return None
    if not count:
        return DENSE_AUTO
    if not count.strip().isdigit() or int(count) < 1:
        raise InductionError(f"--dense {text!r}: pass auto, auto:N with N >= 1, START:STOP:EVERY or none")
    return int(count)


def dense_steps(text: str) -> list[int]:
    """``--dense START:STOP:EVERY``: the steps ``START, START + EVERY, ... <= STOP`` ("" or "none": none;
    ``auto[:N]``: none fixed in advance, they are placed from the coarse pass, see :func:`dense_auto`).

    Example:
        >>> dense_steps("500:700:50"), dense_steps(""), dense_steps("auto")
        ([500, 550, 600, 650, 700], [], [])

    Raises:
        InductionError: For anything but three whole numbers with ``0 <= START <= STOP`` and ``EVERY >= 1``,
            ``auto[:N]`` or none.
    """
    if not text or text.strip().lower() == "none" or dense_auto(text) is not None:
        return []
    parts = text.split(":")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise InductionError(f"--dense {text!r} is not auto, auto:N, START:STOP:EVERY (e.g. 500:1500:50) or none")
    start, stop, every = (int(p) for p in parts)
    if start > stop or every < 1:
        raise InductionError(f"--dense {text!r}: pass START <= STOP and EVERY >= 1 (e.g. 500:1500:50)")
    return list(range(start, stop + 1, every))


def model_config(settings: TrainSettings):
    """The ``GPT2Config`` or ``LlamaConfig`` of the model ``settings`` describe (context = the training row length)."""
    from transformers import GPT2Config, LlamaConfig

    # Two calls alike in shape: each family names the same sizes its own way.
    if settings.arch == "gpt2":
        return GPT2Config(
            vocab_size=settings.vocab_size,
            n_embd=settings.d_model,
            n_layer=settings.n_layers,
            n_head=settings.n_heads,
            n_inner=4 * settings.d_model if settings.mlp else 1,
            n_positions=settings.seq_len,
            bos_token_id=BOS_ID,
            eos_token_id=BOS_ID,
            tie_word_embeddings=False,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    return LlamaConfig(
        vocab_size=settings.vocab_size,
        hidden_size=settings.d_model,
        num_hidden_layers=settings.n_layers,
        num_attention_heads=settings.n_heads,
        num_key_value_heads=settings.n_heads,
        intermediate_size=4 * settings.d_model if settings.mlp else 0,
        max_position_embeddings=settings.seq_len,
        bos_token_id=BOS_ID,
        eos_token_id=BOS_ID,
        tie_word_embeddings=False,
        attention_dropout=0.0,
    )


def new_model(settings: TrainSettings):
    """A freshly initialised model (the same weights for the same seed; the global RNG is left alone)."""
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")  # width-0 MLPs
        torch.manual_seed(settings.seed)
        model = AutoModelForCausalLM.from_config(model_config(settings))
    if not settings.mlp:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if ".mlp." in name:
                    parameter.zero_()  # GPT-2's width-1 MLP: zero in, zero out (Llama's width 0 holds nothing)
    return model


def trained_parameters(model, settings: TrainSettings) -> list[torch.nn.Parameter]:
    """The parameters the optimizer updates: all but the zero MLPs' (attention-only)."""
    frozen = not settings.mlp
    return [p for name, p in model.named_parameters() if not (frozen and ".mlp." in name)]


def checkpoint_steps(steps: int, n_checkpoints: int, dense: str = "") -> list[int]:
    """Step 0, then about ``n_checkpoints - 1`` steps spaced evenly in log from 10 to ``steps``, and the
    ``dense`` steps (``START:STOP:EVERY``, those up to ``steps``).

    Example:
        >>> checkpoint_steps(1000, 5), checkpoint_steps(1000, 5, "300:500:100")
        ([0, 10, 46, 215, 1000], [0, 10, 46, 215, 300, 400, 500, 1000])
    """
    extra = {s for s in dense_steps(dense) if s <= steps}
    if steps <= 10 or n_checkpoints < 2:
        return sorted({0, *range(1, steps + 1, max(1, steps // max(n_checkpoints, 1))), steps, *extra})
    logs = torch.linspace(1.0, float(torch.log10(torch.tensor(float(steps)))), n_checkpoints - 1, dtype=torch.float64)
    return sorted({0, *(int(round(10 ** float(v))) for v in logs), steps, *extra})
