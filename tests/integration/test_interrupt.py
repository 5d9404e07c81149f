"""Ctrl-C mid-trace: one line, exit status 130, no partial file, the previous result set intact."""

import json
import signal
import subprocess
import sys
import textwrap

from induction_nnsight.app.cli import main
from tests.cli_args import tiny_cli
from tests.run_ids import run_id_of

# Runs the CLI with a forward hook that announces the trace has started and then waits to be interrupted.
SLOW_CLI = textwrap.dedent("""
    import signal, sys, time
    from induction_nnsight.app import cli, jobs

    # Ctrl-C as a terminal delivers it, whatever the test run inherited: a suite started as a background
    # job of a non-interactive shell has SIGINT ignored, a child inherits that, and Python then
    # installs no handler (the interrupt would be lost)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    load = jobs.load_model

    def slow_load(*args, **kwargs):
        model = load(*args, **kwargs)

        def wait(module, inputs):
            print("TRACING", flush=True)
            time.sleep(120)

        model._module.transformer.h[1].register_forward_pre_hook(wait)
        return model

    jobs.load_model = slow_load
    sys.exit(cli.main(sys.argv[1:]))
""")


def test_ctrl_c_mid_trace_leaves_the_previous_set(tiny_dir, tmp_path):
    args = tiny_cli("scan", tiny_dir("gpt2"), tmp_path, seq_len=8)
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert len({run_id_of(json.loads(text)) for text in before.values()} - {None}) == 1

    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *args, "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "TRACING"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "induction-nnsight: interrupted"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file, no new file
