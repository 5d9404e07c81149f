"""Faults a user's own files bring: a corrupted or truncated GGUF is one error line, exit 2, no file."""

import pytest

from induction_nnsight.app.cli import main


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"not a gguf at all" * 100, "magic bytes"),
        (b"GGUF" + bytes(range(256)) * 40, "GGUF v"),
        (b"GGUF\x03\x00\x00\x00" + b"\x00" * 7, "GGUF model"),  # a valid header cut short
    ],
)
def test_corrupted_gguf_is_one_line(tmp_path, monkeypatch, capfd, content, reason):
    monkeypatch.setenv("INDUCTION_NNSIGHT_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(content)
    out = tmp_path / "out"
    assert main(["scan", "--model", str(gguf), "--out", str(out)]) == 2
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("induction-nnsight: error:")]
    assert len(errors) == 1 and reason in errors[0] and "intact .gguf" in errors[0]
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name != ".locks"]  # no entry left behind
