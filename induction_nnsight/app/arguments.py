"""The command line's arguments: one parser per subcommand, shared option groups, one-line usage errors.

:func:`build_parser` is what ``induction-nnsight`` parses with; :mod:`~induction_nnsight.app.cli`
turns the parsed arguments into job configs and runs them.
"""

from __future__ import annotations

import argparse

from ..models.loading import DEFAULT_MODEL
from ..ndif.settings import DEFAULT_TIMEOUT
from ..scores.registry import score_names

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the fix (no usage block)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def exact_losses_arg(text: str) -> int | None:
    """``--exact-losses``: ``all`` (None: every loss effect exact) or a count of at least 0."""
    if text == "all":
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 'all' or at least 0, got {value}")
    return value


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"Hub id (openai-community/gpt2), local model directory, .gguf file, or {DEFAULT_MODEL} "
        "(the offline default)",
    )
    parser.add_argument(
        "--attn-implementation", default=None, help="eager, sdpa, ... (the model's default when omitted)"
    )
    add_remote_args(parser)
    parser.add_argument("--out", default="charts", help="directory for charts and results (default: charts)")


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def add_remote_args(parser: argparse.ArgumentParser) -> None:
    """``--remote``, ``--ndif-host URL`` and ``--timeout SECONDS`` (read them with :func:`remote_args`)."""
    group = parser.add_argument_group("NDIF", "run the traces on NDIF; the API key comes from NDIF_API_KEY")
    group.add_argument(
        "--remote", action="store_true", help="run the traces on NDIF (host from NDIF_HOST or nnsight's config)"
    )
    group.add_argument(
        "--ndif-host", metavar="URL", default=None, help="NDIF API URL, e.g. https://api.ndif.us (implies --remote)"
    )
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on an NDIF request after this long (default {DEFAULT_TIMEOUT:g})",
    )


def remote_args(args: argparse.Namespace) -> dict:
    """``{"remote", "ndif_host", "timeout"}`` from :func:`add_remote_args`' options, for a job config."""
    return {"remote": bool(args.remote or args.ndif_host), "ndif_host": args.ndif_host, "timeout": args.timeout}


def add_token_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=_positive, default=10, help="rows of random tokens (default 10)")
    parser.add_argument("--seq-len", type=_positive, default=50, help="length of the repeated block (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the token generator (default 0)")
    parser.add_argument("--low", type=int, default=1000, help="smallest token id drawn (default 1000)")
    parser.add_argument("--high", type=int, default=10000, help="token ids drawn below this (default 10000)")
    parser.add_argument("--no-bos", dest="bos", action="store_false", help="do not prepend the BOS token")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(
        prog="induction-nnsight", description="Find induction heads in transformer language models with nnsight."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    scan_parser = commands.add_parser(
        "scan", help="loss by position and every head's induction score on repeated random tokens"
    )
    add_model_args(scan_parser)
    add_token_args(scan_parser)
    scan_parser.add_argument("--top", type=_positive, default=10, help="heads in the printed table (default 10)")

    for name, help_text in (
        ("heads", "score every head for every kind in one forward pass: table, JSON and charts"),
        ("report", "a text report: model facts, top heads of each kind, loss on both halves"),
    ):
        sub = commands.add_parser(name, help=help_text)
        add_model_args(sub)
        add_token_args(sub)
        sub.add_argument(
            "--kinds",
            nargs="+",
            default=None,
            metavar="KIND",
            help=f"which scores (default every registered one): {', '.join(score_names())}",
        )
        sub.add_argument(
            "--threshold",
            type=float,
            default=None,
            help="detection threshold, within each score's range (default: each score's own, 0.4 "
            "for the built-in ones)",
        )
        sub.add_argument("--repeats", type=int, default=2, help="copies of the random block per row (default 2)")
        sub.add_argument("--top", type=_positive, default=5, help="heads listed per kind (default 5)")

    view = commands.add_parser(
        "attention", help="heads' attention on a prompt (Plotly, ASCII and interactive HTML views)"
    )
    add_model_args(view)
    view.add_argument("--layer", type=int, default=None, help="layer index (with --head; or pass --heads)")
    view.add_argument("--head", type=int, default=None, help="head index (with --layer; or pass --heads)")
    view.add_argument(
        "--heads", default=None, metavar="HEADS", help="several heads instead of --layer/--head, e.g. L18H6,L16H0"
    )
    view.add_argument(
        "--html",
        action="store_true",
        help="also write attention_view.html: hover a token to see where each head looks from it",
    )
    view.add_argument("--prompt", required=True, help="the text; it is repeated --repeat times")
    view.add_argument("--repeat", type=int, default=2, help="copies of the prompt (default 2)")
    view.add_argument("--no-bos", dest="bos", action="store_false", help="do not prepend the BOS token")
    add_causal_parsers(commands)
    add_circuit_parser(commands)
    add_train_parser(commands)
    add_dynamics_parser(commands)
    cache = commands.add_parser("cache", help="what the model cache holds, where, and how large; --clear empties it")
    cache.add_argument(
        "--clear", action="store_true", help="remove every cached model (waits for a running conversion)"
    )
    return parser


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error


def add_causal_parsers(commands) -> None:
    """The ``ablate`` and ``patch`` subcommands."""
    ablate = commands.add_parser(
        "ablate", help="ablate heads: per-head sweep, top-k induction heads vs random heads, attribution"
    )
    add_model_args(ablate)
    add_token_args(ablate)
    ablate.set_defaults(batch=4, seq_len=30)
    ablate.add_argument(
        "--method",
        choices=["zero", "mean"],
        default="zero",
        help="zero the head outputs, or set them to their mean over a second batch of source rows (default zero)",
    )
    ablate.add_argument("--heads", help="also ablate this set of heads together, e.g. L18H6,L17H3")
    ablate.add_argument("--top-k", type=_positive, default=5, help="top induction heads in the curve (default 5)")
    ablate.add_argument("--draws", type=_positive, default=5, help="random head sets per k (default 5)")
    ablate.add_argument(
        "--same-layers", action="store_true", help="draw each random head from the layer of the matching top head"
    )
    ablate.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the per-head sweep")
    ablate.add_argument("--layers", type=_int_list, help="sweep only these layers, e.g. 16,17,18")
    ablate.add_argument(
        "--icl-early",
        type=_int_list,
        help="loss positions averaged as 'early' in the ICL score (default: mid first copy)",
    )
    ablate.add_argument(
        "--icl-late", type=_int_list, help="loss positions averaged as 'late' (default: the same token in the repeat)"
    )
    ablate.add_argument("--max-tokens", type=_positive, default=4096, help="tokens per batched trace (default 4096)")

    patch = commands.add_parser(
        "patch", help="activation patching (head outputs, residual stream, q/k/v) and attribution patching"
    )
    add_model_args(patch)
    add_token_args(patch)
    patch.set_defaults(batch=2, seq_len=10)
    patch.add_argument(
        "--pair",
        choices=["text", "repeated"],
        default="text",
        help="text: --clean/--corrupted texts; repeated: random tokens whose first copy is "
        "corrupted (uses --batch, --seq-len ...) (default text)",
    )
    patch.add_argument("--clean", default="The cat sat on the mat. The cat sat on the", help="clean text")
    patch.add_argument(
        "--corrupted",
        default="The cat sat on the rug. The cat sat on the",
        help="corrupted text, as many tokens as the clean one",
    )
    patch.add_argument("--correct", help="token the clean text should predict (default: the induction guess)")
    patch.add_argument(
        "--wrong",
        help="token to compare with (default: the corrupted text's induction guess); "
        "makes the metric the logit difference",
    )
    patch.add_argument(
        "--metric",
        choices=["logit_diff", "prob", "loss"],
        help="text pairs: logit_diff (default with a wrong token), prob, or loss",
    )
    patch.add_argument(
        "--sites",
        type=lambda t: list(t.replace(",", " ").split()),
        default=["heads", "residual", "qkv"],
        help="any of heads,residual,qkv (default all)",
    )
    patch.add_argument("--head", help="head whose queries/keys/values are patched (default: best head patched)")
    patch.add_argument("--layers", type=_int_list, help="only these layers (heads and residual grids)")
    patch.add_argument("--positions", type=_int_list, help="only these positions (residual and q/k/v grids)")
    patch.add_argument("--max-tokens", type=_positive, default=4096, help="tokens per batched trace (default 4096)")


def add_circuit_parser(commands) -> None:
    """The ``circuit`` subcommand."""
    from ..causal.path_patching import DEFAULT_EXACT_LOSSES, METHODS, PATHS
    from ..ndif.execution import DEFAULT_MAX_TOKENS

    parser = commands.add_parser(
        "circuit",
        help="which earlier heads feed each induction head: path patching "
        "(k, q, v, total) and composition scores, with a circuit graph",
    )
    add_model_args(parser)
    add_token_args(parser)
    parser.set_defaults(batch=2, seq_len=20)
    parser.add_argument("--top", type=_positive, default=5, help="top induction heads to explain (default 5)")
    parser.add_argument("--targets", help="explain these heads instead, e.g. L18H6,L17H3")
    parser.add_argument(
        "--method",
        choices=list(METHODS),
        default="zero",
        help="remove a source's output by zeroing it or by its mean over a second batch (default zero)",
    )
    parser.add_argument(
        "--paths",
        type=lambda t: tuple(p for p in t.replace(",", " ").split()),
        default=PATHS,
        help="any of k,q,v,total (default all)",
    )
    parser.add_argument(
        "--no-composition",
        dest="composition",
        action="store_false",
        help="skip the composition scores from the weights",
    )
    parser.add_argument(
        "--max-tokens",
        type=_positive,
        default=DEFAULT_MAX_TOKENS,
        help=f"tokens per batched trace (default {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument(
        "--exact-losses",
        type=exact_losses_arg,
        default=DEFAULT_EXACT_LOSSES,
        metavar="N|all",
        help="loss effects computed exactly for the N strongest k/q/v edges per target and path, "
        f"estimated for the rest (scores and total edges always exact; default {DEFAULT_EXACT_LOSSES}); "
        "'all': every loss effect exact (about 4x slower)",
    )


def add_train_parser(commands) -> argparse.ArgumentParser:
    """The ``train`` subcommand (one option per :class:`TrainSettings` field)."""
    sub = commands.add_parser(
        "train",
        help="train a small transformer from scratch on repeated random spans, with log-spaced checkpoints (resumable)",
    )
    from ..training.config import TrainSettings

    d = TrainSettings()
    sub.add_argument("--out", default="runs/tiny", help="run directory (default runs/tiny); a second call resumes it")
    sub.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    sub.add_argument("--batch", type=int, default=d.batch, help=f"rows per step (default {d.batch})")
    sub.add_argument(
        "--seq-len",
        type=int,
        default=d.seq_len,
        help=f"tokens per row, BOS included; also the model's context (default {d.seq_len})",
    )
    sub.add_argument(
        "--vocab-size", type=int, default=d.vocab_size, help=f"vocabulary, BOS = 0 (default {d.vocab_size})"
    )
    sub.add_argument("--d-model", type=int, default=d.d_model, help=f"residual width (default {d.d_model})")
    sub.add_argument("--n-layers", type=int, default=d.n_layers, help=f"layers (default {d.n_layers})")
    sub.add_argument("--n-heads", type=int, default=d.n_heads, help=f"heads per layer (default {d.n_heads})")
    sub.add_argument("--mlp", action="store_true", help="give the layers MLPs (default: attention-only)")
    sub.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr:g})")
    sub.add_argument("--warmup", type=int, default=d.warmup, help=f"warm-up steps (default {d.warmup})")
    sub.add_argument(
        "--weight-decay", type=float, default=d.weight_decay, help=f"AdamW decay (default {d.weight_decay:g})"
    )
    sub.add_argument("--min-span", type=int, default=d.min_span, help=f"shortest repeated span (default {d.min_span})")
    sub.add_argument("--max-span", type=int, default=d.max_span, help=f"longest repeated span (default {d.max_span})")
    sub.add_argument(
        "--checkpoints",
        dest="n_checkpoints",
        type=int,
        default=d.n_checkpoints,
        help=f"checkpoints, log-spaced, step 0 included (default {d.n_checkpoints})",
    )
    sub.add_argument(
        "--log-every", type=int, default=d.log_every, help=f"steps between loss-log lines (default {d.log_every})"
    )
    sub.add_argument("--seed", type=int, default=d.seed, help=f"seed of the weights and the corpus (default {d.seed})")
    sub.add_argument(
        "--no-tokenizer",
        dest="tokenizer",
        action="store_false",
        help="save the checkpoints without the id tokenizer (they still load: ids are the words)",
    )
    sub.add_argument("--quiet", action="store_true", help="no progress bar")
    return sub


def _revisions(text: str) -> list[str]:
    values = [part for part in text.replace(",", " ").split() if part]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated revisions, e.g. step0,step1000")
    return values


def add_dynamics_parser(commands) -> argparse.ArgumentParser:
    """The ``dynamics`` subcommand."""
    sub = commands.add_parser(
        "dynamics",
        help="score a series of checkpoints (a training run, or Hub revisions): "
        "loss halves, ICL score, head scores by step, the phase change",
    )
    sub.add_argument(
        "checkpoints",
        nargs="*",
        metavar="CHECKPOINT_OR_RUN_DIR",
        help="checkpoint directories, or run directories holding checkpoint-STEP/ (sorted by step)",
    )
    sub.add_argument("--model", default=None, help="Hub id whose --revisions to score (e.g. EleutherAI/pythia-70m)")
    sub.add_argument(
        "--revisions", type=_revisions, default=None, help="comma-separated revisions, e.g. step0,step1000"
    )
    sub.add_argument("--attn-implementation", default=None, help="eager, sdpa, ... (the model's default when omitted)")
    add_token_args(sub)
    sub.set_defaults(low=None, high=None, seq_len=None)
    for action in sub._actions:
        if action.dest == "seq_len":
            action.help = "length of the repeated block (default 50, or the longest whose two copies fit the context)"
        if action.dest in ("low", "high"):
            action.help = (
                f"{'smallest token id drawn' if action.dest == 'low' else 'token ids drawn below this'} "
                "(default: [1000, 10000) when the vocabulary holds it, else [1, vocab size))"
            )
    sub.add_argument("--top", type=int, default=3, help="heads highlighted in the chart (default 3)")
    sub.add_argument(
        "--no-circuit",
        dest="circuit",
        action="store_false",
        help="skip path patching the best induction head's keys at every checkpoint",
    )
    add_remote_args(sub)
    sub.add_argument("--out", default="charts", help="directory for results, charts and the cache (default: charts)")
    sub.add_argument("--quiet", action="store_true", help="no line per checkpoint")
    return sub
