"""Fault battery: every subcommand refuses bad input the same way.

Each case runs the CLI on the tiny GPT-2 (vocabulary 128, context 128, 2 layers x 4
heads) with otherwise valid settings plus one bad option, and requires:

- exit status 2, whether argparse raises ``SystemExit(2)`` or ``main`` returns 2;
- exactly one non-empty line on stderr, starting ``induction-nnsight`` and naming
  the option to fix (no multi-line usage text, no ``Traceback``);
- nothing on stdout and no file under ``--out`` (not created, or empty);
- a refusal before any forward pass: every check needs at most the model's config,
  so the trace functions the jobs call are replaced by a tripwire here.
"""

from __future__ import annotations

import re
import time

import pytest

from induction_nnsight.app import ablate_job, ablate_search, attention_job, heads_job, patch_job, scan_job
from induction_nnsight.app.cli import main

# Valid, small settings per subcommand; a case's bad options come after them (argparse: last one wins).
TOKENS = ["--low", "1", "--high", "128", "--batch", "2", "--seq-len", "4"]  # ids within the vocabulary of 128
BASE = {
    "scan": [*TOKENS, "--top", "2"],
    "heads": [*TOKENS, "--top", "2"],
    "report": [*TOKENS, "--top", "2"],
    "attention": ["--layer", "0", "--head", "0", "--prompt", "t1 t2 t3"],
    "ablate": [*TOKENS, "--top-k", "2", "--draws", "2", "--no-sweep"],
    "patch": [*TOKENS, "--pair", "repeated", "--sites", "heads"],
    "dual-route": ["--low", "1", "--high", "128", "--prompts", "2", "--copying-prompts", "2"],
    "explain": [
        *TOKENS,
        *("--top-k", "2", "--draws", "2", "--verify", "2", "--prompt", "t1 t2 t3"),
        *("--icl-windows", "2", "--icl-length", "40", "--icl-early", "5", "--icl-late", "30"),
    ],
}
# the ones with --batch, --seq-len, --low, --high
TOKEN_COMMANDS = ("scan", "heads", "report", "ablate", "patch", "explain")
ALL_COMMANDS = tuple(BASE)
ESTIMATING = ("ablate", "patch")  # the ones with --attribution
MISSING_MODEL = "{tmp}/no-such-model"  # formatted with the test's tmp_path
SECONDS = 15.0  # a refusal must not wait for a whole job


def _case(command, extra, fix, name):
    return pytest.param(command, extra, fix, id=f"{command}-{name}")


CASES = [
    # attention: head coordinates and the prompt
    _case("attention", ["--layer", "99"], "--layer", "layer-99"),
    _case("attention", ["--layer", "-1"], "--layer", "layer-minus-1"),
    _case("attention", ["--layer", "one"], "--layer", "layer-not-an-integer"),
    _case("attention", ["--layer", "1.5"], "--layer", "layer-float"),
    _case("attention", ["--head", "99"], "--head", "head-99"),
    _case("attention", ["--head", "-1"], "--head", "head-minus-1"),
    _case("attention", ["--head", "x"], "--head", "head-not-an-integer"),
    _case("attention", ["--prompt", ""], "--prompt", "prompt-empty"),
    _case("attention", ["--prompt", "   "], "--prompt", "prompt-blank"),
    _case("attention", ["--repeat", "0"], "--repeat", "repeat-0"),
    _case("attention", ["--prompt", " ".join(["t5"] * 70)], "--prompt", "prompt-past-context"),
    # --top where it exists, and ablate's --top-k / --draws
    *[_case(c, ["--top", "0"], "--top", "top-0") for c in ("scan", "heads", "report")],
    _case("ablate", ["--top-k", "0"], "--top-k", "top-k-0"),
    _case("ablate", ["--top-k", "9"], "--top-k", "top-k-above-8-heads"),
    _case("ablate", ["--draws", "0"], "--draws", "draws-0"),
    # the token grid: sizes, context, id range
    *[_case(c, ["--batch", "0"], "--batch", "batch-0") for c in TOKEN_COMMANDS],
    *[_case(c, ["--batch", "two"], "--batch", "batch-not-an-integer") for c in TOKEN_COMMANDS],
    *[_case(c, ["--seq-len", "0"], "--seq-len", "seq-len-0") for c in TOKEN_COMMANDS],
    *[_case(c, ["--seq-len", "64"], "--seq-len", "seq-len-past-context") for c in TOKEN_COMMANDS],
    *[_case(c, ["--low", "50", "--high", "50"], "--low", "low-equals-high") for c in TOKEN_COMMANDS],
    *[_case(c, ["--low", "60", "--high", "50"], "--low", "low-above-high") for c in TOKEN_COMMANDS],
    *[_case(c, ["--high", "129"], "--high", "high-past-vocab") for c in TOKEN_COMMANDS],
    *[_case(c, ["--low", "-5"], "--low", "low-negative") for c in TOKEN_COMMANDS],
    _case("heads", ["--repeats", "3", "--seq-len", "43"], "--seq-len", "repeats-past-context"),
    # unknown names
    *[_case(c, ["--kinds", "bogus"], "--kinds", "kinds-unknown") for c in ("heads", "report")],
    *[_case(c, ["--kinds", "induction", "bogus"], "--kinds", "kinds-one-unknown") for c in ("heads", "report")],
    *[_case(c, ["--threshold", "2"], "--threshold", "threshold-above-1") for c in ("heads", "report")],
    *[_case(c, ["--repeats", "1"], "--repeats", "repeats-1") for c in ("heads", "report")],
    _case("ablate", ["--method", "bogus"], "--method", "method-unknown"),
    # a renamed value: refused with its new name (atp-star had GradDrop but not AtP*'s QK fix)
    *[_case(c, ["--attribution", "atp-star"], "now called graddrop", "renamed-estimator") for c in ESTIMATING],
    _case("ablate", ["--heads", "L99H0"], "--heads", "heads-layer-99"),
    _case("ablate", ["--heads", "L0H99"], "--heads", "heads-head-99"),
    _case("ablate", ["--heads", "nonsense"], "--heads", "heads-nonsense"),
    _case("ablate", ["--layers", "a,b"], "--layers", "layers-not-integers"),
    _case("ablate", ["--icl-early", "1"], "--icl-late", "icl-early-alone"),
    _case("patch", ["--sites", "mlp"], "--sites", "sites-unknown"),
    _case("patch", ["--sites", "heads,bogus"], "--sites", "sites-one-unknown"),
    _case("patch", ["--sites", ","], "--sites", "sites-empty"),
    _case("patch", ["--head", "nonsense"], "--head", "head-nonsense"),
    _case("patch", ["--head", "L0H0,L1H1"], "--head", "head-two-heads"),
    _case("patch", ["--sites", "qkv", "--head", "L99H0"], "--head", "head-layer-99"),
    _case("patch", ["--layers", "7"], "--layers", "layers-out-of-range"),
    _case("patch", ["--pair", "bogus"], "--pair", "pair-unknown"),
    _case("patch", ["--metric", "bogus"], "--metric", "metric-unknown"),
    _case("dual-route", ["--random-text", "/nonexistent/text.txt"], "--random-text", "random-text-missing"),
    _case("dual-route", ["--max-k", "0"], "--max-k", "max-k-0"),
    _case("explain", ["--top-k", "9"], "--top-k", "top-k-above-8-heads"),
    _case("explain", ["--circuit-top", "0"], "--circuit-top", "circuit-top-0"),
    _case("explain", ["--dual-route", "on"], "--dual-route", "dual-route-on-for-2-layers"),
    _case("explain", ["--dual-route", "maybe"], "--dual-route", "dual-route-unknown"),
    _case("explain", ["--prompt", "  "], "--prompt", "prompt-blank"),
    _case("explain", ["--icl-length", "500", "--icl-late", "300"], "--icl-length", "icl-length-past-context"),
    _case("explain", ["--icl-early", "30", "--icl-late", "20"], "--icl-early", "icl-early-after-late"),
    # NDIF and model options, on every subcommand
    *[_case(c, ["--timeout", "0"], "--timeout", "timeout-0") for c in ALL_COMMANDS],
    *[_case(c, ["--timeout", "-1"], "--timeout", "timeout-negative") for c in ALL_COMMANDS],
    *[_case(c, ["--timeout", "nan"], "--timeout", "timeout-nan") for c in ALL_COMMANDS],
    *[_case(c, ["--model", MISSING_MODEL], "--model", "model-missing") for c in ALL_COMMANDS],
]


class ForwardPass(BaseException):
    """Raised by the tripwire: a job ran the model before refusing its input."""


# The forward-pass entry points the jobs call (names as imported into each job module).
TRACED = {
    scan_job: ("scan",),
    heads_job: ("head_scores",),
    attention_job: ("heads_attention",),
    ablate_job: ("scan", "ablate_heads", "ablation_curve"),
    ablate_search: ("ablation_sweep", "head_estimate", "search_heads"),
    patch_job: ("head_estimate", "patch_heads", "patch_residual", "patch_qkv"),
}


@pytest.fixture
def no_forward(monkeypatch):
    """Make every trace the jobs start raise :class:`ForwardPass`."""
    for module, names in TRACED.items():
        for name in names:

            def tripwire(*args, _name=f"{module.__name__}.{name}", **kwargs):
                raise ForwardPass(_name)

            monkeypatch.setattr(module, name, tripwire)


def run_cli(argv: list[str]) -> int:
    """``main(argv)``'s exit status, also when argparse exits with ``SystemExit``."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1


@pytest.mark.parametrize("command, extra, fix", CASES)
def test_bad_input_exit_2_one_line_naming_the_fix(tiny_dir, tmp_path, capfd, no_forward, command, extra, fix):
    out = tmp_path / "out"
    extra = [arg.format(tmp=tmp_path) for arg in extra]
    argv = [command, "--model", str(tiny_dir("gpt2")), *BASE[command], "--out", str(out), *extra]
    capfd.readouterr()  # drop what building the tiny model printed
    started = time.perf_counter()
    try:
        status = run_cli(argv)
    except ForwardPass as trace:
        pytest.fail(f"{trace} ran before the bad input was refused")
    seconds = time.perf_counter() - started
    captured = capfd.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]

    assert "Traceback" not in captured.err, captured.err
    assert status == 2, f"exit status {status}; stderr:\n{captured.err}"
    assert len(lines) == 1, f"stderr has {len(lines)} non-empty lines, not 1:\n{captured.err}"
    assert lines[0].startswith("induction-nnsight"), lines[0]
    assert fix in lines[0], f"{fix!r} not named in: {lines[0]}"
    assert captured.out == "", f"stdout not empty:\n{captured.out}"
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.rglob("*"))
    assert seconds < SECONDS, f"refused only after {seconds:.1f} s"


def test_good_base_settings_pass(tiny_dir, tmp_path, capfd):
    """The battery's base settings are valid: a case fails only because of its bad option."""
    for command in ("scan", "attention", "patch", "ablate", "explain"):
        out = tmp_path / command
        argv = [command, "--model", str(tiny_dir("gpt2")), *BASE[command], "--out", str(out)]
        assert run_cli(argv) == 0, capfd.readouterr().err
        assert any(out.iterdir())


def test_top_k_above_the_heads_suggests_a_valid_top_k(tiny_dir, tmp_path, capfd):
    """2 x 4 heads: top-k against as many random heads outside the top k allows k <= 4."""
    argv = ["ablate", "--model", str(tiny_dir("gpt2")), *BASE["ablate"], "--out", str(tmp_path / "out"), "--top-k", "9"]
    capfd.readouterr()
    assert run_cli(argv) == 2
    suggested = [int(n) for n in re.findall(r"--top-k (-?\d+)", capfd.readouterr().err)]
    assert suggested and all(1 <= n <= 4 for n in suggested), suggested
