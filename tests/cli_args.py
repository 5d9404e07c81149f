"""Command lines for the CLI tests: a subcommand on a tiny model (vocabulary 128) with small, valid
token settings, so each test states only what it is about."""

from __future__ import annotations


def token_args(batch: int = 2, seq_len: int = 6) -> list[str]:
    """``--low 1 --high 128 --batch B --seq-len T``: random tokens inside a tiny model's vocabulary."""
    return ["--low", "1", "--high", "128", "--batch", str(batch), "--seq-len", str(seq_len)]


def tiny_cli(command: str, model_dir, out=None, *extra: str, batch: int = 2, seq_len: int = 6) -> list[str]:
    """``COMMAND --model DIR <token_args> [--out OUT] EXTRA...``."""
    where = ["--out", str(out)] if out is not None else []
    return [command, "--model", str(model_dir), *token_args(batch, seq_len), *where, *extra]
