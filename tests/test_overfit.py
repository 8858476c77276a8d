"""`ctcdoctor overfit`: fits a healthy set-up, diagnoses broken ones, never touches the user's model."""
from __future__ import annotations

import copy
import json
import math
import textwrap
from pathlib import Path

import pytest
import torch
from overfitkit import USER_MODULE, write_user_module
from torch import nn
from typer.testing import CliRunner

from ctcdoctor import Setup
from ctcdoctor.cli import app
from ctcdoctor.load.samples import parse_samples, pick_samples
from ctcdoctor.overfit.diagnose import classify_failure
from ctcdoctor.overfit.result import OverfitOptions
from ctcdoctor.overfit.train import find_head, run_overfit

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture()
def module(tmp_path):
    return write_user_module(tmp_path)


def _json(result) -> dict:
    assert result.stdout.lstrip().startswith("{"), result.stdout[:500]
    return json.loads(result.stdout)


def _load(path, function="build") -> Setup:
    from ctcdoctor.load.spec import load_setup

    return load_setup(f"{path}:{function}")


# ----------------------------------------------------------------------------- end to end


def test_fits_a_healthy_sample_and_reports_the_result(module):
    result = runner.invoke(app, ["overfit", str(module), "--sample", "2", "--format", "json", "--steps", "400"])
    assert result.exit_code == 0, result.output
    document = _json(result)
    assert set(document) >= {"schema", "spec", "findings", "summary", "checks", "result"}
    assert document["summary"]["error"] == 0
    out = document["result"]
    assert out["fitted"] is True and out["trained"] is True and out["diagnosis"] is None
    assert out["samples"] == [2]
    assert out["final_decode"] == out["targets"] and out["edit_distance"] == [0] and out["cer"] == 0
    assert 0 < out["steps_to_fit"] <= out["steps"] < 400
    assert out["seconds_to_fit"] > 0
    assert "CPU" in out["ctc_path"] and "triton" not in out["ctc_path"]
    assert out["optimizer"] == "Adam(lr=0.01)"
    assert set(out["spikiness"]) >= {"blank_ratio", "spike_width", "peak_prob", "entropy"}
    assert out["clipping"]["max_norm"] == 5.0 and 0 <= out["clipping"]["clipped_steps"] <= out["clipping"]["steps"]
    # stopped by the rule: the last `patience` evaluations decode the target
    assert [h["cer"] for h in out["history"][-3:]] == [0, 0, 0]
    assert all(set(h) >= {"step", "loss", "cer", "decode"} for h in out["history"])


def test_text_report_names_the_fit_and_the_ctc_path(module):
    result = runner.invoke(app, ["overfit", str(module), "--steps", "400"])
    assert result.exit_code == 0, result.output
    assert "fitted sample 0" in result.stdout
    assert "CTC path" in result.stdout and "CPU" in result.stdout


def test_infeasible_length_is_reported_before_training_and_training_is_skipped(module):
    result = runner.invoke(app, ["overfit", f"{module}:build_infeasible", "--format", "json"])
    assert result.exit_code == 1, result.output
    document = _json(result)
    codes = [f["code"] for f in document["findings"]]
    assert "CTC001" in codes
    assert not {"CTC070", "CTC071", "CTC072"} & set(codes)
    out = document["result"]
    assert out["trained"] is False and out["steps"] == 0
    assert out["skipped_because"] == ["CTC001"] and out["diagnosis"] == "CTC001"


def test_huge_learning_rate_is_diagnosed_as_divergence(module):
    result = runner.invoke(app, ["overfit", f"{module}:build_huge_lr", "--format", "json", "--steps", "200", "--clip", "0"])
    assert result.exit_code == 1, result.output
    document = _json(result)
    (found,) = [f for f in document["findings"] if f["code"] == "CTC072"]
    assert found["evidence"]["kind"] in ("nonfinite", "diverged", "oscillated")
    assert found["evidence"]["step"] is not None
    assert "learning rate 10000" in found["message"] and "--lr" in found["hint"]
    assert document["result"]["fitted"] is False


def test_broken_example_collapses_to_blanks():
    spec = str(ROOT / "examples" / "broken" / "overfit_blank_collapse.py")
    result = runner.invoke(app, ["overfit", spec, "--format", "json", "--steps", "40"])
    assert result.exit_code == 1, result.output
    document = _json(result)
    assert [f["code"] for f in document["findings"]] == ["CTC071"]
    (found,) = document["findings"]
    assert "blank by 8.0 nats" in found["message"] and "1e-06" in found["message"]
    assert document["result"]["final_decode"] == [""]
    assert document["result"]["spikiness"]["blank_ratio"] == 1.0


def test_broken_example_diverges():
    spec = str(ROOT / "examples" / "broken" / "overfit_diverges.py")
    result = runner.invoke(app, ["overfit", spec, "--format", "json", "--steps", "30"])
    assert result.exit_code == 1, result.output
    assert [f["code"] for f in _json(result)["findings"]] == ["CTC072"]


def test_plot_is_written(module, tmp_path):
    target = tmp_path / "plots" / "overfit.png"
    result = runner.invoke(app, ["overfit", str(module), "--steps", "400", "--plot", str(target), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 20_000
    assert _json(result)["result"]["plot"] == str(target)


def test_output_file_and_bad_options(module, tmp_path):
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["overfit", str(module), "--steps", "400", "--output", str(report)])
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["result"]["fitted"] is True
    assert runner.invoke(app, ["overfit", str(module), "--sample", "99"]).exit_code == 2
    assert runner.invoke(app, ["overfit", str(module), "--alpha", "1.5"]).exit_code == 2
    assert runner.invoke(app, ["overfit", str(module), "--samples", "a,b"]).exit_code == 2


def test_explain_knows_the_overfit_codes():
    for code in ("CTC070", "CTC071", "CTC072"):
        result = runner.invoke(app, ["explain", code])
        assert result.exit_code == 0 and "Fix." in result.stdout


# ----------------------------------------------------------------------------- library level


def test_user_model_is_left_exactly_as_found(module):
    setup = _load(module)
    setup.model.eval()
    before = copy.deepcopy(setup.model.state_dict())
    findings, _, result = run_overfit(setup, "tiny", OverfitOptions(steps=60))
    assert result.trained and result.steps_run > 0
    after = setup.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert setup.model.training is False
    assert all(p.grad is None for p in setup.model.parameters())


def test_several_samples_and_alpha_gamma(module):
    setup = _load(module)
    progress = []
    findings, _, result = run_overfit(
        setup, "tiny", OverfitOptions(samples=(0, 3, 5), steps=400, alpha=0.5, gamma=1.0), on_progress=progress.append
    )
    assert result.fitted, [f.message for f in findings]
    assert len(result.targets) == 3 and list(result.final_decode) == list(result.targets)
    assert result.loss_function == "ctcdoctor.ctc.ctc_loss (alpha=0.5, gamma=1)"
    assert progress and progress[-1].streak == 3 and progress[0].step == 10
    assert result.frames is not None and result.frames.pseudo is not None


def test_unbatched_loader_takes_the_nth_sample_in_iteration_order(module):
    plain = _load(module, "build_plain_batches")
    from_loader = _load(module, "build")
    raw, source = pick_samples(plain.loader, (6,))
    assert source == "cut from the loader's batches"
    expected, source = pick_samples(from_loader.loader, (6,))
    assert source == "dataset[i] + loader.collate_fn"
    for got, want in zip(raw, expected):
        assert torch.equal(torch.as_tensor(got), torch.as_tensor(want))
    _, _, result = run_overfit(plain, "tiny", OverfitOptions(samples=(1, 6), steps=400))
    assert result.fitted


def test_freeze_except_head_trains_only_the_output_layer(module):
    setup = _load(module)
    _, _, result = run_overfit(setup, "tiny", OverfitOptions(steps=30, freeze_except_head=True))
    assert result.head == "head"
    assert result.parameters["trainable"] == 32 * 6 + 6
    assert result.parameters["frozen"] == 8 * 32 + 32


def test_find_head_follows_the_forward_not_the_definition_order():
    class Reversed(nn.Module):
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(4, 3)  # defined first, runs last
            self.inner = nn.Linear(5, 4)

        def forward(self, x):
            return self.out(self.inner(x))

    assert find_head(Reversed(), torch.randn(2, 5)) == "out"


# ----------------------------------------------------------------------------- pure rules


def test_classify_failure_rules():
    flat = [4.0] * 100
    assert classify_failure(flat, 1.0, True, None).code == "CTC071"
    assert classify_failure(flat, 0.5, False, None).kind == "plateau"
    falling = [4.0 - 0.03 * step for step in range(100)]
    assert classify_failure(falling, 0.5, False, None).kind == "budget"
    nonfinite = classify_failure([4.0, 3.0, math.nan], 0.0, False, 3)
    assert (nonfinite.code, nonfinite.kind, nonfinite.step) == ("CTC072", "nonfinite", 3)
    rising = [4.0] * 10 + [40.0] * 90
    assert classify_failure(rising, 1.0, True, None).kind == "diverged"  # divergence beats blank collapse
    bouncing = [4.0, 3.0] + [3.0 if i % 2 else 6.0 for i in range(98)]
    assert classify_failure(bouncing, 0.2, False, None).kind == "oscillated"
    noisy_but_learning = [10.0] * 5 + [0.3 if i % 2 else 0.5 for i in range(95)]
    assert classify_failure(noisy_but_learning, 0.5, False, None).code == "CTC070"


def test_ctc_path_names_what_runs_and_rejects_an_impossible_kernel(monkeypatch):
    from ctcdoctor.errors import UserInputError
    from ctcdoctor.overfit.train import ctc_path

    lp = torch.zeros(4, 1, 3)
    assert "CPU" in ctc_path(lp) and "triton" not in ctc_path(lp)
    monkeypatch.setenv("CTCDOCTOR_KERNEL", "torch")
    assert "triton" not in ctc_path(lp)
    monkeypatch.setenv("CTCDOCTOR_KERNEL", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(UserInputError):
        ctc_path(lp)


def test_parse_samples():
    assert parse_samples(None, default=(4,)) == (4,)
    assert parse_samples("0,3,7") == (0, 3, 7)
    assert parse_samples("0-2, 2") == (0, 1, 2)
    assert parse_samples("0-7", limit=8) == tuple(range(8))


def test_overfit_leaves_the_callers_random_state_alone(tmp_path):
    from ctcdoctor.load.spec import load_setup

    path = tmp_path / "rng_model.py"
    path.write_text(USER_MODULE)
    setup = load_setup(f"{path}:build")
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    run_overfit(setup, "rng", OverfitOptions(steps=5))
    torch.testing.assert_close(torch.rand(3), expected)


# ----------------------------------------------------------------------------- review findings


def _failed_result(losses, lr=1e-3, blank_ratio=0.5, decode="gafah", target="gaifah"):
    from ctcdoctor.overfit.result import Evaluation, OverfitResult

    result = OverfitResult(samples=(0,), source="test", targets=(target,), trained=True, steps_run=len(losses))
    result.losses = list(losses)
    result.evaluations = [Evaluation(len(losses), losses[-1], 0.17, (decode,), blank_ratio, 1.0)]
    result.train_decode = (decode,)
    result.lr, result.optimizer = lr, f"Adam(lr={lr:g})"
    result.parameters = {"total": 100, "trainable": 100, "frozen": 0, "freeze_except_head": False}
    result.clipping = {"max_norm": 5.0, "steps": len(losses), "clipped_steps": 0, "median_grad_norm": 0.2, "max_grad_norm": 1.0}
    result.norms = [0.2] * len(losses)
    result.normalisation = "trained exactly as written"
    return result


def test_a_slowly_but_steadily_falling_loss_is_called_falling_and_gets_a_concrete_budget():
    # Like the review's dict_inputs run (0.183 -> 0.161 over the last quarter, smooth): falling, not "flat".
    from ctcdoctor.overfit.curve import loss_summary
    from ctcdoctor.overfit.diagnose import explain_failure

    losses = [9.3 * math.exp(-step / 40) + 0.16 + 0.2 * math.exp(-step / 250) for step in range(1, 501)]
    summary = loss_summary(losses)
    assert summary["trend"] == "falling" and summary["recent"]["steps"] == 125
    verdict = classify_failure(losses, 0.75, False, None)
    assert verdict.code == "CTC070"
    found = explain_failure(verdict, _failed_result(losses), [], {})
    assert "(flat" not in found.message and "still falling" in found.message
    assert "--steps 1000" in found.hint and "if the loss was still falling" not in found.hint
    assert found.evidence["suggested_steps"] == 1000


def test_a_noisy_plateau_is_flat_and_the_hint_does_not_ask_for_more_steps():
    from ctcdoctor.overfit.curve import loss_summary
    from ctcdoctor.overfit.diagnose import explain_failure

    losses = [5.0] * 10 + [0.8 + (0.2 if step % 3 == 0 else -0.1) for step in range(490)]
    assert loss_summary(losses)["trend"] == "flat"
    found = explain_failure(classify_failure(losses, 0.5, False, None), _failed_result(losses), [], {})
    assert "flat" in found.message and "--steps" not in found.hint


def test_early_blank_phase_with_a_falling_loss_is_not_a_collapse():
    from ctcdoctor.overfit.diagnose import explain_failure

    losses = [9.3 * math.exp(-step / 15) + 1.8 * math.exp(-step / 200) for step in range(1, 51)]
    verdict = classify_failure(losses, 1.0, True, None)
    assert (verdict.code, verdict.kind) == ("CTC070", "blank_phase")
    found = explain_failure(verdict, _failed_result(losses, blank_ratio=1.0, decode=""), [], {})
    assert "collapse" not in found.title and "--steps 1000" in found.hint
    # A measured cause of a collapse (blank bias, tiny lr, ...) keeps it a collapse.
    assert classify_failure(losses, 1.0, True, None, collapse_explained=True).code == "CTC071"


def test_collapse_hint_only_suggests_a_learning_rate_that_differs_from_the_current_one():
    from ctcdoctor.overfit.diagnose import Verdict, explain_failure

    flat = [8.2] * 200
    found = explain_failure(Verdict("CTC071", "blank"), _failed_result(flat, lr=1e-3, blank_ratio=1.0, decode=""), [], {})
    assert "learning rate" not in found.hint and "1e-3" not in found.hint and found.hint.endswith(".")
    tiny = explain_failure(Verdict("CTC071", "blank"), _failed_result(flat, lr=1e-5, blank_ratio=1.0, decode=""), [], {})
    assert "from 1e-05 to 0.001" in tiny.hint


def test_unwritable_plot_or_output_fails_before_training(module, tmp_path, monkeypatch):
    import ctcdoctor.overfit.train

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the output path is unwritable")

    monkeypatch.setattr(ctcdoctor.overfit.train, "run_overfit", no_training)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for option, name in (("--plot", "p.png"), ("--output", "r.json")):
        result = runner.invoke(app, ["overfit", str(module), option, str(blocker / name)])
        assert result.exit_code == 2, result.output
        assert f"{option} {blocker / name}" in result.output


def test_empty_data_set_says_so(tmp_path):
    path = tmp_path / "empty_data.py"
    path.write_text(USER_MODULE + textwrap.dedent(
        '''
        def build_empty():
            empty = TensorDataset(torch.zeros(0, 16, 8), torch.zeros(0, 4, dtype=torch.long))
            return Setup(model=FrameMLP(), loader=DataLoader(empty, batch_size=4, collate_fn=collate))
        '''
    ))
    result = runner.invoke(app, ["overfit", f"{path}:build_empty"])
    assert result.exit_code == 2, result.output
    assert "empty" in result.output and "-1" not in result.output
    listed = runner.invoke(app, ["overfit", f"{path}:build_plain_batches", "--sample", "0"])
    assert listed.exit_code == 0, listed.output


def test_summary_names_several_samples_in_the_plural_and_starts_without_a_blank_line(module):
    result = runner.invoke(app, ["overfit", str(module), "--samples", "0,3", "--steps", "400"])
    assert result.exit_code == 0, result.output
    assert not result.stdout.startswith("\n")
    assert "fitted samples 0, 3 (" in result.stdout


def test_summary_line_names_the_sample(module):
    result = runner.invoke(app, ["overfit", str(module), "--sample", "2", "--steps", "400"])
    assert f"ctcdoctor overfit {module} --sample 2 --steps 400 " in result.stdout.replace("\n", "")
