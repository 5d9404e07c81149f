"""The command line's arguments: one parser per subcommand, derived from the job configs.

Each subcommand's options are its config's fields (declared with
:func:`~induction_nnsight.app.options.option`) plus the few that are not settings (``--out`` of
the chart-writing commands, ``cache --clear``): :func:`command_options` lists them, in the order
``--help`` and the docs' ``{options}`` tables show them. :func:`build_parser` is what
``induction-nnsight`` parses with; :mod:`~induction_nnsight.app.cli` builds the configs from the
parsed arguments (:func:`~induction_nnsight.app.options.config_from`) and runs them.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..causal.cost import RENAMED_ESTIMATORS
from ..version import VERSION_LINE
from .ablate_job import AblateConfig
from .attention_job import AttentionConfig
from .circuit_job import CircuitConfig
from .dual_route_job import DualRouteConfig
from .dynamics_job import DynamicsConfig
from .explain_job import ExplainConfig
from .heads_job import HeadsConfig
from .icl_job import IclConfig
from .jobs import ScanConfig, preflight
from .options import Option, add_options, config_from, config_options, exact_losses_arg
from .outputs import DEFAULT_OUT
from .patch_job import PatchConfig
from .run_context import RunContext
from .train_job import TrainConfig

__all__ = [
    "COMMANDS",
    "EXIT_BAD_INPUT",
    "TRACED",
    "Command",
    "add_model_args",
    "add_token_args",
    "build_parser",
    "checked_config",
    "checked_run",
    "close_match",
    "command_options",
    "exact_losses_arg",
    "run_context",
]

EXIT_BAD_INPUT = 2

OUT = Option(
    "directory for charts and results",
    flag="--out",
    dest="out",
    default=None,
    default_text=f"{DEFAULT_OUT}/<command>",
    type_name="str",
)
"""``--out`` of the commands that write charts (not a setting: the files' place, not their content)."""

TRACED = tuple(config_options(RunContext))
"""The options of every command that loads a model and traces, besides its config's: the
:class:`~induction_nnsight.app.run_context.RunContext` fields (``--device``, ``--plan``, the request
budgets), none of them a setting (:func:`run_context` builds the context back)."""

MODEL_OPTIONS = ("model", "attn_implementation", "remote", "ndif_host", "timeout")
TOKEN_OPTIONS = ("batch", "seq_len", "seed", "low", "high", "bos")


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, its config (None: no settings) and its options that are not settings."""

    help: str
    config: type | None = None
    extra: tuple[Option, ...] = ()


COMMANDS = {
    "scan": Command(
        "loss by position and every head's induction score on repeated random tokens", ScanConfig, (OUT, *TRACED)
    ),
    "heads": Command(
        "score every head for every kind in one forward pass: table, JSON and charts", HeadsConfig, (OUT, *TRACED)
    ),
    "report": Command(
        "a text report: model facts, top heads of each kind, loss on both halves", HeadsConfig, (OUT, *TRACED)
    ),
    "attention": Command(
        "heads' attention on a prompt (Plotly, ASCII and interactive HTML views)", AttentionConfig, (OUT, *TRACED)
    ),
    "ablate": Command(
        "ablate heads: per-head sweep, top-k induction heads vs random heads, attribution", AblateConfig, (OUT, *TRACED)
    ),
    "patch": Command(
        "activation patching (head outputs, residual stream, q/k/v) and attribution patching",
        PatchConfig,
        (OUT, *TRACED),
    ),
    "cache": Command(
        "what the model cache holds, where, and how large; --clear empties it",
        extra=(
            Option(
                "remove every cached model (waits for a running conversion)",
                flag="--clear",
                dest="clear",
                default=False,
                type_name="bool",
            ),
        ),
    ),
    "circuit": Command(
        "which earlier heads feed each induction head: path patching (k, q, v, total) and composition scores, "
        "with a circuit graph",
        CircuitConfig,
        (OUT, *TRACED),
    ),
    "train": Command(
        "train a small transformer from scratch on repeated random spans, with log-spaced checkpoints (resumable)",
        TrainConfig,
    ),
    "dynamics": Command(
        "score a series of checkpoints (a training run, or Hub revisions): "
        "loss halves, ICL score, head scores by step, the phase change",
        DynamicsConfig,
        TRACED,
    ),
    "dual-route": Command(
        "token and concept induction heads: attention and copying scores per head, the dissociation test",
        DualRouteConfig,
        (OUT, *TRACED),
    ),
    "icl": Command(
        "in-context learning on natural text: loss by token index and Olsson's ICL score", IclConfig, (OUT, *TRACED)
    ),
    "explain": Command(
        "the whole analysis on one model, as one HTML report whose every sentence states a measured result",
        ExplainConfig,
        (OUT, *TRACED),
    ),
}
"""Every subcommand by name, in ``--help``'s order."""


def run_context(args: argparse.Namespace) -> RunContext:
    """The :class:`~induction_nnsight.app.run_context.RunContext` that parsed arguments describe: its
    fields the command has (:data:`TRACED`), the others their defaults; ``--device`` resolved (a device
    this machine lacks is refused in one line, before any load), ``--plan`` an empty plan to fill."""
    return config_from(RunContext, args)


def checked_config(config_class: type, args: argparse.Namespace):
    """The ``config_class`` that parsed arguments describe, checked before any model is loaded (where
    the config has a ``validate``; the others check themselves when they run). How it runs is not on
    the config: :func:`run_context`."""
    config = config_from(config_class, args)
    if hasattr(config, "validate"):
        config.validate()
    if not getattr(args, "plan", False):  # a plan's job runs these checks on the weightless model it plans on
        preflight(config)  # against the model's architecture, before its weights load
    return config


def checked_run(config_class: type, args: argparse.Namespace) -> tuple[object, RunContext]:
    """``(config, context)``: the checked ``config_class`` and the
    :class:`~induction_nnsight.app.run_context.RunContext` that parsed arguments describe (its
    ``--device`` checked first, as before any other check)."""
    context = run_context(args)
    return checked_config(config_class, args), context


def command_options(name: str) -> list[Option]:
    """Every option of subcommand ``name``: its config's options, then the others (resolved).

    Raises:
        KeyError: For an unknown subcommand.
    """
    command = COMMANDS[name]
    return [*(config_options(command.config) if command.config else ()), *command.extra]


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def close_match(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to a mistyped ``word`` (``scna`` -> ``scan``), or None when none is close.

    >>> close_match("scna", ["scan", "heads"]), close_match("--bacth", ["--batch", "--seed"])
    ('scan', '--batch')
    >>> close_match("x", ["scan"]) is None
    True
    """
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _hint(word: str, candidates: Iterable[str]) -> str:
    if word in RENAMED_ESTIMATORS:  # a renamed value: its new name, not the closest match
        return f"; {word} is now called {RENAMED_ESTIMATORS[word]}"
    match = close_match(word, candidates)
    return f"; did you mean {match}?" if match else ""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the fix (no usage block), with the
    closest command or option for a mistyped one."""

    def error(self, message: str):
        choice = _INVALID_CHOICE.search(message)
        if choice:
            message += _hint(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """Parse as argparse does; an unknown option is named with the closest option of its command."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = self._commands.get(getattr(parsed, "command", None)) if hasattr(self, "_commands") else None
            flags = [f for a in (command or self)._actions for f in a.option_strings]
            word = next((u.split("=", 1)[0] for u in unknown if u.startswith("-")), "")
            prog = command.prog if command is not None else self.prog
            self.exit(
                EXIT_BAD_INPUT,
                f"{prog}: error: unrecognized arguments: {' '.join(unknown)}{_hint(word, flags) if word else ''} "
                f"(see {prog} --help)\n",
            )
        return parsed


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""

    parser = _Parser(
        prog="induction-nnsight", description="Find induction heads in transformer language models with nnsight."
    )
    parser.add_argument("--version", "-V", action="version", version=VERSION_LINE)
    commands = parser.add_subparsers(dest="command", required=True)
    parser._commands = {}
    for name, command in COMMANDS.items():
        # no abbreviations: `--plan` writes plan.json only when `--out` itself was typed (app/plan_job.py)
        sub = commands.add_parser(name, help=command.help, allow_abbrev=False)
        add_options(sub, command_options(name))
        parser._commands[name] = sub
    return parser


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--attn-implementation``, the NDIF options and ``--out``, as ``scan`` has them (for scripts)."""
    add_options(parser, [o for o in command_options("scan") if o.dest in (*MODEL_OPTIONS, "out")])


def add_token_args(parser: argparse.ArgumentParser) -> None:
    """``--batch``, ``--seq-len``, ``--seed``, ``--low``, ``--high`` and ``--no-bos``, as ``scan`` has them."""
    add_options(parser, ScanConfig, only=TOKEN_OPTIONS)
