"""``induction-nnsight``: the command line. It parses, wires jobs together and prints.

Bad input ends with one line on stderr naming the fix and exit status 2; Ctrl-C ends
with one line, ``interrupted``, and exit status 130, leaving no partial file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ..errors import InductionError
from ..scores.registry import score_names
from .jobs import AttentionConfig, HeadsConfig, ScanConfig, run_attention, run_heads, run_scan
from ..models.loading import DEFAULT_MODEL
from .outputs import prepare_out_dir, write_files
from ..ndif.settings import DEFAULT_TIMEOUT
from .report import heads_table

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the fix (no usage block)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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
    group.add_argument("--remote", action="store_true",
                       help="run the traces on NDIF (host from NDIF_HOST or nnsight's config)")
    group.add_argument("--ndif-host", metavar="URL", default=None,
                       help="NDIF API URL, e.g. https://api.ndif.us (implies --remote)")
    group.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help=f"give up on an NDIF request after this long (default {DEFAULT_TIMEOUT:g})")


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
        sub.add_argument("--kinds", nargs="+", default=None, metavar="KIND",
                         help=f"which scores (default every registered one): {', '.join(score_names())}")
        sub.add_argument("--threshold", type=float, default=None,
                         help="detection threshold, within each score's range (default: each score's own, 0.4 "
                         "for the built-in ones)")
        sub.add_argument("--repeats", type=int, default=2, help="copies of the random block per row (default 2)")
        sub.add_argument("--top", type=_positive, default=5, help="heads listed per kind (default 5)")

    view = commands.add_parser("attention", help="one head's attention on a prompt (Plotly and ASCII views)")
    add_model_args(view)
    view.add_argument("--layer", type=int, required=True, help="layer index")
    view.add_argument("--head", type=int, required=True, help="head index")
    view.add_argument("--prompt", required=True, help="the text; it is repeated --repeat times")
    view.add_argument("--repeat", type=int, default=2, help="copies of the prompt (default 2)")
    view.add_argument("--no-bos", dest="bos", action="store_false", help="do not prepend the BOS token")
    add_causal_parsers(commands)
    cache = commands.add_parser("cache", help="what the model cache holds, where, and how large; --clear empties it")
    cache.add_argument("--clear", action="store_true", help="remove every cached model (waits for a running conversion)")
    return parser


def scan_config(args: argparse.Namespace) -> ScanConfig:
    """The :class:`ScanConfig` that parsed model and token arguments describe."""
    config = ScanConfig(
        model=args.model, batch=args.batch, seq_len=args.seq_len, seed=args.seed, low=args.low,
        high=args.high, bos=args.bos, top=getattr(args, "top", 10),
        attn_implementation=args.attn_implementation, **remote_args(args),
    )
    config.validate()
    return config


def guarded(job: Callable[[], int | None]) -> int:
    """Run ``job``; bad input becomes one line on stderr and exit status 2, Ctrl-C one line and 130."""
    try:
        return job() or 0
    except InductionError as error:
        print(f"induction-nnsight: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("induction-nnsight: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _write(out, files: dict[str, str]) -> None:
    for path in write_files(out, files):
        print(f"wrote {path}", file=sys.stderr)


def _scan_command(args: argparse.Namespace) -> int:
    config = scan_config(args)
    out = prepare_out_dir(args.out)
    results, files = run_scan(config)
    _write(out, files)
    print(f"model {config.model}: mean loss {results['mean_loss_first_half']:.2f} nats on the first half, "
          f"{results['mean_loss_repeated_half']:.2f} on the repeated half")
    print(heads_table(results["top_heads"]))
    return 0


def _heads_config(args: argparse.Namespace) -> HeadsConfig:
    config = HeadsConfig(**vars(scan_config(args)), kinds=tuple(args.kinds) if args.kinds else None,
                         threshold=args.threshold,
                         n_repeats=args.repeats)
    config.validate()
    return config


def _heads_command(args: argparse.Namespace) -> int:
    config = _heads_config(args)
    out = prepare_out_dir(args.out)
    _, files, report = run_heads(config)
    _write(out, files)
    print(report)
    return 0


def _report_command(args: argparse.Namespace) -> int:
    config = _heads_config(args)
    out = prepare_out_dir(args.out)
    _, _, report = run_heads(config)
    _write(out, {"report.txt": report + "\n"})
    print(report)
    return 0


def _attention_command(args: argparse.Namespace) -> int:
    config = AttentionConfig(model=args.model, layer=args.layer, head=args.head, prompt=args.prompt,
                             repeat=args.repeat, bos=args.bos, attn_implementation=args.attn_implementation,
                             **remote_args(args))
    out = prepare_out_dir(args.out)
    _, files, ascii_view = run_attention(config)
    _write(out, files)
    print(ascii_view)
    return 0


# --- causal validation: ablate, patch -------------------------------------------------


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
    ablate.add_argument("--method", choices=["zero", "mean"], default="zero",
                        help="zero the head outputs, or set them to their mean over a reference batch (default zero)")
    ablate.add_argument("--heads", help="also ablate this set of heads together, e.g. L18H6,L17H3")
    ablate.add_argument("--top-k", type=_positive, default=5, help="top induction heads in the curve (default 5)")
    ablate.add_argument("--draws", type=_positive, default=5, help="random head sets per k (default 5)")
    ablate.add_argument("--same-layers", action="store_true",
                        help="draw each random head from the layer of the matching top head")
    ablate.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the per-head sweep")
    ablate.add_argument("--layers", type=_int_list, help="sweep only these layers, e.g. 16,17,18")
    ablate.add_argument("--icl-early", type=_int_list,
                        help="loss positions averaged as 'early' in the ICL score (default: mid first copy)")
    ablate.add_argument("--icl-late", type=_int_list,
                        help="loss positions averaged as 'late' (default: the same token in the repeat)")
    ablate.add_argument("--max-tokens", type=_positive, default=4096, help="tokens per batched trace (default 4096)")

    patch = commands.add_parser(
        "patch", help="activation patching (head outputs, residual stream, q/k/v) and attribution patching"
    )
    add_model_args(patch)
    add_token_args(patch)
    patch.set_defaults(batch=2, seq_len=10)
    patch.add_argument("--pair", choices=["text", "repeated"], default="text",
                       help="text: --clean/--corrupted texts; repeated: random tokens whose first copy is "
                       "corrupted (uses --batch, --seq-len ...) (default text)")
    patch.add_argument("--clean", default="The cat sat on the mat. The cat sat on the", help="clean text")
    patch.add_argument("--corrupted", default="The cat sat on the rug. The cat sat on the",
                       help="corrupted text, as many tokens as the clean one")
    patch.add_argument("--correct", help="token the clean text should predict (default: the induction guess)")
    patch.add_argument("--wrong", help="token to compare with (default: the corrupted text's induction guess); "
                       "makes the metric the logit difference")
    patch.add_argument("--metric", choices=["logit_diff", "prob", "loss"],
                       help="text pairs: logit_diff (default with a wrong token), prob, or loss")
    patch.add_argument("--sites", type=lambda t: [s for s in t.replace(",", " ").split()],
                       default=["heads", "residual", "qkv"], help="any of heads,residual,qkv (default all)")
    patch.add_argument("--head", help="head whose queries/keys/values are patched (default: best head patched)")
    patch.add_argument("--layers", type=_int_list, help="only these layers (heads and residual grids)")
    patch.add_argument("--positions", type=_int_list, help="only these positions (residual and q/k/v grids)")
    patch.add_argument("--max-tokens", type=_positive, default=4096, help="tokens per batched trace (default 4096)")


def _ablate_command(args: argparse.Namespace) -> int:
    from .causal_jobs import AblateConfig, run_ablate

    config = AblateConfig(
        **vars(scan_config(args)), method=args.method, heads=args.heads, top_k=args.top_k, draws=args.draws,
        same_layers=args.same_layers, sweep=args.sweep, layers=args.layers, icl_early=args.icl_early,
        icl_late=args.icl_late, max_tokens=args.max_tokens,
    )
    config.validate()
    out = prepare_out_dir(args.out)
    results, files = run_ablate(config)
    _write(out, files)
    base, vs = results["baseline"], results["top_vs_random"]
    print(f"model {config.model}: repeated-half loss {base['repeated_half_loss']:.3f} nats, "
          f"ICL score {base['icl_score']:.3f}")
    print(f"{config.method}-ablating the top {vs['k']} induction heads: {vs['top']:.3f}; "
          f"{vs['k']} random heads: {vs['random_mean']:.3f} +- {vs['random_std']:.3f} over {config.draws} draws")
    if "ablated" in results:
        print(f"ablating {args.heads}: repeated-half loss {results['ablated']['repeated_half_loss']:.3f}")
    if "sweep" in results:
        rows = results["sweep"]["rows"][:5]
        print("largest single-head effects: " + ", ".join(f"L{r['layer']}H{r['head']} {r['delta']:+.3f}" for r in rows))
        print(f"attribution vs sweep: Pearson r = {results['attribution']['pearson_with_sweep']}")
    return 0


def _patch_command(args: argparse.Namespace) -> int:
    from .causal_jobs import PatchConfig, run_patch

    config = PatchConfig(
        **vars(scan_config(args)), pair=args.pair, clean=args.clean, corrupted=args.corrupted,
        correct=args.correct, wrong=args.wrong, metric=args.metric, sites=args.sites, head=args.head,
        layers=args.layers, positions=args.positions, max_tokens=args.max_tokens,
    )
    config.validate()
    out = prepare_out_dir(args.out)
    results, files = run_patch(config)
    _write(out, files)
    print(f"model {config.model}, pair {results['pair']}, metric {results['metric']}")
    for site in ("heads", "residual", "qkv"):
        if site in results:
            grid = results[site]
            print(f"{site}: clean {grid['clean']:.4f}, corrupted {grid['corrupted']:.4f}")
    if "heads" in results:
        layer, head = results["heads"]["best"]
        print(f"best head to patch: L{layer}H{head} (recovery {results['heads']['recovery'][layer][head]:.3f}); "
              f"attribution vs exhaustive: Pearson r = {results['attribution']['pearson_with_exhaustive']}")
    return 0


def _cache_command(args: argparse.Namespace) -> int:
    from ..models.cache import cache_dir, cache_entries, clear_cache

    root = cache_dir()
    entries = clear_cache(root) if args.clear else cache_entries(root)
    print(f"model cache {root} ($INDUCTION_NNSIGHT_CACHE): {len(entries)} item(s)"
          + (" removed" if args.clear else ""))
    for entry in entries:
        print(f"  {entry.name:<40} {entry.size_bytes / 2**20:>9.1f} MiB  {entry.status}")
    print(f"total {sum(e.size_bytes for e in entries) / 2**20:.1f} MiB")
    return 0


_COMMANDS = {
    "scan": _scan_command,
    "heads": _heads_command,
    "report": _report_command,
    "attention": _attention_command,
    "ablate": _ablate_command,
    "patch": _patch_command,
    "cache": _cache_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``induction-nnsight``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return guarded(lambda: _COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
