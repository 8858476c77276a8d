"""`scan --manifest` with --rate: a rate that is not one, and --rate beside --frames (which it cannot change),
are usage errors (exit 2) that say which flag to drop; --rate with a spec still converts durations."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app

ALPHABET = " abcdefghijklmnopqrstuvwxyz"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def nemo(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text('{"duration": 2.0, "text": "hello"}\n{"duration": 0.1, "text": "hello world"}\n', encoding="utf-8")
    return path


def test_rate_beside_frames_is_refused(nemo: Path) -> None:
    code, out, err = invoke("scan", "--manifest", str(nemo), "-a", ALPHABET, "--frames", "floor(L * 100) // 4 + 1",
                            "--rate", "16000")
    assert code == 2, out + err
    assert "--rate 16000 and --frames together" in err
    assert "Drop --rate" in err and "Traceback" not in out + err


@pytest.mark.parametrize("rate", ["0", "-100", "nan", "inf"])
def test_a_rate_that_is_not_one_is_refused(nemo: Path, rate: str) -> None:
    code, out, err = invoke("scan", "--manifest", str(nemo), "-a", ALPHABET, "--rate", rate)
    assert code == 2, out + err
    assert "is not a rate" in err and "--rate 100" in err


def test_frames_alone_still_scans(nemo: Path) -> None:
    code, out, err = invoke("scan", "--manifest", str(nemo), "-a", ALPHABET, "--frames", "floor(L * 100) // 4 + 1")
    assert code == 1, out + err  # sample 1: 3 frames for 11 labels
    assert "CTC001" in out and "sample 1 has 3 frames" in out


def test_rate_with_a_spec_still_converts_durations(nemo: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.py"
    spec.write_text(
        "import torch\n"
        "from torch import nn\n"
        "from ctcdoctor import Setup\n"
        "def build():\n"
        "    batch = (torch.zeros(2, 40, 3), torch.ones(2, 3, dtype=torch.long), torch.tensor([40, 40]), torch.tensor([3, 3]))\n"
        f"    return Setup(model=nn.Linear(3, 28), loader=[batch], alphabet={ALPHABET!r},\n"
        "                 output_lengths=lambda steps: steps // 4 + 1)\n",
        encoding="utf-8",
    )
    code, out, err = invoke("scan", str(spec), "--manifest", str(nemo), "--rate", "100")
    assert "sample 1 has 3 frames" in out, out + err  # 0.1 s x 100 = 10 steps -> 10 // 4 + 1
