"""Loss by position on repeated random tokens, written as a Plotly chart.

python scripts/loss_by_position.py [--model smollm2-135m] [--out charts] [--remote]
"""

import argparse
import sys

from induction_nnsight import load_model, loss_by_position
from induction_nnsight.app.arguments import add_model_args, add_token_args
from induction_nnsight.app.cli import guarded, scan_config
from induction_nnsight.app.jobs import scan_tokens
from induction_nnsight.app.outputs import prepare_out_dir, write_files
from induction_nnsight.app.run_context import RunContext
from induction_nnsight.figures.heads import loss_by_position_figure


def run(args: argparse.Namespace) -> None:
    config = scan_config(args)
    out = prepare_out_dir(args.out)
    model = load_model(config.model, attn_implementation=config.attn_implementation, remote=config.remote)
    loss = loss_by_position(model, scan_tokens(model, config), execution=RunContext().execution(config))  # [pos - 1]
    figure = loss_by_position_figure(
        loss.tolist(),
        config.seq_len,
        config.bos,
        title=f"Mean loss by position — {config.model}",
        subtitle=config.describe_tokens(),
    )
    for path in write_files(out, {"loss_by_position.json": figure.to_json()}):
        print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(parser)
    add_token_args(parser)
    sys.exit(guarded(lambda: run(parser.parse_args())))
