"""Learning-rate advice depends on the optimizer: Adam and AdamW train CTC models at about 1e-4 to 1e-3,
so a diverged Adam run at 0.1 is told to go back into that range (dividing by 10 would leave it 10x too
high); SGD gets a relative change; an unknown optimizer gets a relative change plus Adam's range."""
from __future__ import annotations

import json

import numpy as np
import pytest
from logcurves import ctc_level, curves, noisy, series
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.training import diagnose_run, monitor_format
from ctcdoctor.training.monitor import Monitor
from ctcdoctor.training.rules import Options, diagnose
from ctcdoctor.training.rules.lr_advice import lower_lr, optimizer_family, optimizer_in_tag
from ctchelpers import ROOT

RUNS = ROOT / "examples" / "runs"


def diverging(n: int = 400, best_at: int = 250, to: float = 2.0) -> np.ndarray:
    level = ctc_level(n, floor=0.15)
    level[best_at:] = level[best_at] + (to - level[best_at]) * np.linspace(0, 1, n - best_at) ** 0.7
    return noisy(level, np.random.default_rng(0), sigma=0.05)


def hints(lr: np.ndarray, optimizer: str | None = None, tag: str = "lr") -> dict[str, str]:
    c = curves(diverging(), lr=lr)
    c = type(c)(**{**vars(c), "lr": series(tag, lr)})
    return {item.code: item.hint for item in diagnose(c, Options(optimizer=optimizer))}


def test_adam_at_a_high_rate_is_sent_into_adams_range_not_divided_by_10():
    found = hints(np.full(400, 0.1), "Adam")
    assert found["CTC203"].startswith("Set the learning rate to 1e-4 to 1e-3 (Adam usually trains CTC models there; 0.1 is 100x")
    assert "0.01" not in found["CTC203"]


def test_adam_inside_its_range_is_divided():
    assert found_hint(np.full(400, 1e-3), "AdamW").startswith("Divide the learning rate by 3-10 (0.001 -> 3.33e-04 or 1.00e-04)")


def found_hint(lr: np.ndarray, optimizer: str | None) -> str:
    return hints(lr, optimizer)["CTC203"]


def test_sgd_gets_a_relative_change_without_adams_range():
    hint = found_hint(np.full(400, 0.1), "SGD")
    assert hint.startswith("Divide the learning rate by 3-10 (0.1 -> 0.0333 or 0.01)") and "1e-4" not in hint


def test_an_unknown_optimizer_gets_a_relative_change_and_adams_range():
    hint = found_hint(np.full(400, 0.1), None)
    assert hint.startswith("Divide the learning rate by 3-10 (0.1 -> 0.0333 or 0.01; with Adam or AdamW go to 1e-4 to 1e-3 instead")
    assert "Adam" not in found_hint(np.full(400, 1e-3), None)  # already in Adam's range: nothing to add


def test_the_optimizer_is_read_from_lightnings_lr_tag():
    assert optimizer_in_tag("lr-AdamW/pg1") == "AdamW" and optimizer_in_tag("lr-SGD") == "SGD"
    assert optimizer_in_tag("learning_rate") is None and optimizer_in_tag("lr") is None
    assert hints(np.full(400, 0.1), None, tag="lr-Adam")["CTC203"].startswith("Set the learning rate to 1e-4 to 1e-3")
    assert [optimizer_family(name) for name in ("adamw_torch_fused", "RMSprop", "SGD", "Adafactor", None)] == [
        "adaptive", "adaptive", "sgd", "other", None]


def test_ctc214_warmup_peak_for_adam_is_at_most_1e_3():
    lr = 0.4 * np.arange(1, 401) / 800  # a warm-up still rising when the loss diverged
    c = curves(diverging(), lr=lr)
    adam = {item.code: item for item in diagnose(c, Options(optimizer="Adam"))}["CTC214"]
    assert adam.evidence["suggested_peak"] == 1e-3
    assert adam.hint.startswith("Lower the peak learning rate to at most 1e-3 (Adam usually trains CTC models at 1e-4 to 1e-3")
    unknown = {item.code: item for item in diagnose(c)}["CTC214"]
    assert unknown.evidence["suggested_peak"] == pytest.approx(unknown.evidence["lr_at_onset"] / 2)
    assert "half the rate" in unknown.hint and "with Adam or AdamW at most 1e-3 instead" in unknown.hint


def test_logs_on_the_lightning_example_reads_lr_adam_and_advises_adams_range():
    """examples/runs/lr_too_high logs `lr-Adam`: before, the advice was a peak of 0.0895 (90x too high for Adam)."""
    result = CliRunner().invoke(app, ["logs", str(RUNS / "lr_too_high"), "--format", "json"])
    findings = {f["code"]: f for f in json.loads(result.stdout)["findings"]}
    assert findings["CTC214"]["evidence"]["suggested_peak"] == 1e-3
    assert "1e-4 to 1e-3" in findings["CTC203"]["hint"] and "0.0179" not in findings["CTC203"]["hint"]
    result = CliRunner().invoke(app, ["logs", str(RUNS / "lr_too_high"), "--optimizer", "SGD", "--format", "json"])
    findings = {f["code"]: f for f in json.loads(result.stdout)["findings"]}
    assert "(0.179 -> 0.0597 or 0.0179)" in findings["CTC203"]["hint"] and "1e-4" not in findings["CTC203"]["hint"]


def test_the_monitor_takes_the_optimizer_writes_it_and_logs_reads_it(tmp_path):
    import torch

    parameter = torch.nn.Parameter(torch.zeros(1))
    monitor = Monitor(echo=False, optimizer=torch.optim.AdamW([parameter], lr=0.1), metrics_path=tmp_path / "m.jsonl")
    assert monitor.optimizer == "AdamW" and monitor.options().optimizer == "AdamW"
    monitor.use_optimizer("SGD")  # named already: an integration does not override the user's choice
    assert monitor.optimizer == "AdamW"
    loss = diverging()
    for step, value in enumerate(loss):
        monitor.update(step, float(value), lr=0.1)
    report = monitor.close()
    assert json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])["meta"]["optimizer"] == "AdamW"
    hint = {item.code: item.hint for item in report.findings}["CTC203"]
    assert hint.startswith("Set the learning rate to 1e-4 to 1e-3 (AdamW usually")
    assert diagnose_run(tmp_path / "m.jsonl").options.optimizer == "AdamW"


def test_the_monitor_header_optimizer_is_documented():
    assert "optimizer" in monitor_format.__doc__


def test_lower_lr_without_a_logged_rate():
    assert lower_lr(None, None) == "Divide the learning rate by 3-10"
    assert lower_lr("Adam", None) == "Divide the learning rate by 3-10 (Adam usually trains CTC models at 1e-4 to 1e-3)"
