"""The plans of docs/ndif_scale.md's "Planning a job": what jobs on Llama-3.1-70B and 405B would send to NDIF.

    python scripts/ndif_plans.py       # writes results/ndif_plans.json (offline; minutes on 2 cores)

Each entry is ``induction-nnsight <command> --plan`` (:mod:`induction_nnsight.app.plan_job`) on the
shipped config of the model, with nothing sent: the default scan; ``ablate`` with ``--search
estimate`` (estimate every head, ablate the strongest exactly); the exhaustive per-head sweep of
one middle layer (``--layers``); ``circuit`` into one given head of the middle layer with
``--search estimate`` (a plan cannot pick the targets: they depend on the scores); and every command
that plans, with its defaults (``default_<command>``; the whole-model sweep among them). Each entry
records ``planning_seconds``, the time its plan took here: the benchmark of ``--plan`` answering in
seconds. The file is rewritten after each entry.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from induction_nnsight.app.arguments import COMMANDS, build_parser, checked_run  # noqa: E402
from induction_nnsight.app.outputs import to_json, write_files  # noqa: E402
from induction_nnsight.app.plan_job import plan_job  # noqa: E402
from induction_nnsight.models.weightless import shipped_config  # noqa: E402

OUT = ROOT / "results"
MODELS = {"70b": "meta-llama/Llama-3.1-70B", "405b": "meta-llama/Llama-3.1-405B"}


def jobs(n_layers: int) -> dict[str, list[str]]:
    middle = n_layers // 2
    return {
        "scan": ["scan"],
        "ablate_estimate": ["ablate", "--search", "estimate"],
        "ablate_one_layer": ["ablate", "--layers", str(middle)],
        "circuit_estimate": ["circuit", "--targets", f"L{middle}H0", "--search", "estimate"],
        **{f"default_{name.replace('-', '_')}": argv for name, argv in DEFAULTS.items()},
    }


DEFAULTS = {
    "heads": ["heads"],
    "report": ["report"],
    "attention": ["attention", "--prompt", "The cat sat on the mat.", "--layer", "1", "--head", "0"],
    "ablate": ["ablate"],
    "patch": ["patch"],
    "circuit": ["circuit"],
    "dual-route": ["dual-route"],
    "icl": ["icl"],
}
"""Every command that plans, with its defaults (``attention`` needs a prompt and a head; ``scan`` is above;
``dynamics`` plans checkpoints of a training run, which these models have none of)."""


def main() -> None:
    results: dict = {"models": {}}
    for key, name in MODELS.items():
        n_layers = shipped_config(name).num_hidden_layers
        entries = results["models"].setdefault(
            key, {"model": name, "n_layers": n_layers, "middle_layer": n_layers // 2}
        )
        for job, argv in jobs(n_layers).items():
            argv = [*argv, "--model", name, "--plan"]
            args = build_parser().parse_args(argv)
            config, context = checked_run(COMMANDS[args.command].config, args)
            started = time.perf_counter()
            plan = plan_job(args.command, config, context).as_dict()
            entries[job] = {"argv": " ".join(argv), **plan, "planning_seconds": round(time.perf_counter() - started, 1)}
            print(f"{key} {job}: {plan['requests']} requests, {plan['server_seconds']} s", file=sys.stderr)
            write_files(OUT, {"ndif_plans.json": to_json(results) + "\n"})


if __name__ == "__main__":
    main()
