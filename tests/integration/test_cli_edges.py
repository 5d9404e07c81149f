"""The command line's edges (issue 33): --version, close-match suggestions, --device, arguments checked
before the weights load, the default output directory, no directory left by a failed run, Ctrl-C at any
moment (the imports included) and an interrupt that a library swallows."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from induction_nnsight import __version__
from induction_nnsight.app import jobs
from induction_nnsight.app.cli import main
from induction_nnsight.app.entry import main as entry_main
from tests.cli_args import tiny_cli

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd=ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "induction_nnsight", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_version_answers_before_torch_loads():
    done = _run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"induction-nnsight {__version__}"
    probe = (
        "import sys; from induction_nnsight.app.entry import main; main(['--version']); print('torch' in sys.modules)"
    )
    lazy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert lazy.stdout.split()[-1] == "False"  # the package imports its names lazily


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [(["scna"], "did you mean scan?"), (["scan", "--bacth", "3"], "did you mean --batch?")],
)
def test_a_mistyped_command_or_option_names_the_closest(argv, suggestion, capsys):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert raised.value.code == 2 and len(err) == 1 and suggestion in err[0]


def test_device_cpu_runs_and_a_missing_device_is_one_line(tiny_dir, tmp_path, capsys):
    assert main(tiny_cli("scan", tiny_dir("gpt2"), tmp_path / "cpu", "--device", "cpu")) == 0
    assert (tmp_path / "cpu" / "scan_results.json").exists()
    capsys.readouterr()
    if not torch.cuda.is_available():
        assert main(tiny_cli("scan", tiny_dir("gpt2"), tmp_path / "cuda", "--device", "cuda")) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--device cuda" in err[0] and "--device cpu" in err[0]
        assert not (tmp_path / "cuda").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_device_cuda_gives_the_cpu_scores(tiny_dir, tmp_path):
    for device in ("cpu", "cuda"):
        assert main(tiny_cli("scan", tiny_dir("gpt2"), tmp_path / device, "--device", device)) == 0
    cpu, gpu = (json.loads((tmp_path / d / "scan_results.json").read_text()) for d in ("cpu", "cuda"))
    assert abs(cpu["mean_loss_repeated_half"] - gpu["mean_loss_repeated_half"]) < 1e-3


@pytest.mark.parametrize(
    ("command", "extra", "named"),
    [
        ("ablate", ["--heads", "L99H0", "--no-sweep"], "L99H0"),
        ("attention", ["--layer", "7", "--head", "0", "--prompt", "t1 t2"], "--layer 7"),
        ("circuit", ["--targets", "L1H9"], "L1H9"),
        ("patch", ["--head", "L5H0", "--sites", "qkv"], "L5H0"),
        ("scan", ["--seq-len", "200"], "--seq-len"),
    ],
)
def test_arguments_are_checked_before_the_weights_load(command, extra, named, tiny_dir, tmp_path, monkeypatch, capsys):
    def no_load(*args, **kwargs):
        raise AssertionError("the weights were loaded before the arguments were checked")

    monkeypatch.setattr(jobs, "load_model", no_load)
    argv = tiny_cli(command, tiny_dir("gpt2"), tmp_path / "out", *extra)
    if command == "attention":  # no token options
        argv = [command, "--model", str(tiny_dir("gpt2")), "--out", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_default_out_is_the_users_and_a_failed_run_leaves_no_directory(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["scan", "--model", str(tiny_dir("gpt2")), "--low", "1", "--high", "128", "--seq-len", "6"]) == 0
    assert (tmp_path / "induction-nnsight-out" / "scan" / "scan_results.json").exists()
    bad = ["heads", "--model", str(tiny_dir("gpt2")), "--low", "1", "--high", "999"]  # past the vocabulary
    assert main(bad) == 2
    assert sorted(p.name for p in (tmp_path / "induction-nnsight-out").iterdir()) == ["scan"]
    assert main([*bad, "--out", str(tmp_path / "a" / "b")]) == 2
    assert not (tmp_path / "a").exists()


def _interrupted_run(script: str, out: Path, delay: float) -> tuple[int, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "GO"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    return process.returncode, err


# Ctrl-C as a terminal delivers it (a suite run as a background job may have SIGINT ignored, and a child
# inherits that: see tests/integration/test_interrupt.py).
_PRELUDE = "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def test_ctrl_c_while_torch_imports_is_one_line_and_130(tmp_path):
    script = _PRELUDE + textwrap.dedent("""
        from induction_nnsight.app.entry import main
        assert "torch" not in sys.modules
        print("GO", flush=True)
        sys.exit(main(["scan", "--out", sys.argv[1]]))
    """)
    code, err = _interrupted_run(script, tmp_path / "out", 0.05)
    assert code == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == ["induction-nnsight: interrupted"]
    assert not (tmp_path / "out").exists()


def test_an_interrupt_a_library_swallows_still_stops_the_run(tiny_dir, tmp_path):
    """A SIGINT whose KeyboardInterrupt some code catches and drops (as Python does in a finalizer): the run
    goes on to its end but writes no file and exits 130."""
    script = _PRELUDE + textwrap.dedent(f"""
        import os
        from induction_nnsight.app import jobs
        from induction_nnsight.app.entry import main

        load = jobs.load_model

        def swallowing_load(*args, **kwargs):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10**7):
                    pass
            except KeyboardInterrupt:
                pass  # swallowed
            return load(*args, **kwargs)

        jobs.load_model = swallowing_load
        print("GO", flush=True)
        sys.exit(main({tiny_cli("scan", tiny_dir("gpt2"))!r} + ["--out", sys.argv[1]]))
    """)
    process = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 130, process.stderr
    assert process.stderr.strip().splitlines()[-1] == "induction-nnsight: interrupted"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_entry_main_is_the_console_script():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("induction-nnsight") == "induction_nnsight.app.entry:main"
    assert entry_main.__module__ == "induction_nnsight.app.entry"
