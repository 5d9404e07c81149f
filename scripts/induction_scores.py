"""Every head's induction score on repeated random tokens, as a Plotly heatmap.

python scripts/induction_scores.py [--model smollm2-135m] [--out charts] [--remote]
"""

import argparse
import sys

from induction_nnsight import induction_scores, load_model
from induction_nnsight.app.arguments import add_model_args, add_token_args
from induction_nnsight.app.cli import guarded, scan_config
from induction_nnsight.app.jobs import scan_tokens
from induction_nnsight.app.outputs import prepare_out_dir, write_files
from induction_nnsight.app.report import heads_table, top_heads
from induction_nnsight.app.run_context import RunContext
from induction_nnsight.scores.heads import kind_heatmap


def run(args: argparse.Namespace) -> None:
    config = scan_config(args)
    out = prepare_out_dir(args.out)
    model = load_model(config.model, attn_implementation=config.attn_implementation, remote=config.remote)
    tokens = scan_tokens(model, config)
    scores = induction_scores(model, tokens, config.seq_len, execution=RunContext().execution(config))
    top = top_heads(scores, 10)
    figure = kind_heatmap(
        "induction", scores, title=f"Induction score per head — {config.model}", subtitle=config.describe_tokens()
    )  # as the scan's chart
    for path in write_files(out, {"induction_scores.json": figure.to_json()}):
        print(f"wrote {path}")
    print(heads_table(top))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(parser)
    add_token_args(parser)
    sys.exit(guarded(lambda: run(parser.parse_args())))
