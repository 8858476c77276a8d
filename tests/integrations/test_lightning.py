"""The Lightning callback in a real `Trainer.fit`: the check before training, verdicts while it runs, a stop on an error."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

pl = pytest.importorskip("lightning.pytorch")

from tinyctc import ALPHABET, FrameModel, loader  # noqa: E402

from ctcdoctor.integrations.lightning import CTCDoctorCallback  # noqa: E402
from ctcdoctor.training import diagnose_run  # noqa: E402


class Module(pl.LightningModule):
    """Follows the build() batch protocol; forward(inputs) returns (N, T, C) log-probabilities."""

    def __init__(self, lr: float, softmax: bool = False) -> None:
        super().__init__()
        self.model, self.lr, self.softmax = FrameModel(), lr, softmax

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.model(inputs)
        return out.exp() if self.softmax else out

    def training_step(self, batch, batch_index):
        inputs, targets, input_lengths, target_lengths = batch
        log_probs = self(inputs).transpose(0, 1)
        return F.ctc_loss(log_probs.log() if self.softmax else log_probs, targets, input_lengths, target_lengths)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def fit(module: Module, callback: CTCDoctorCallback, steps: int) -> pl.Trainer:
    torch.manual_seed(0)
    trainer = pl.Trainer(max_steps=steps, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, loader())
    return trainer


def test_a_healthy_fit_is_checked_monitored_and_logged(tmp_path, capsys):
    callback = CTCDoctorCallback(report_path=tmp_path / "r.json", every=10, alphabet=ALPHABET, patience=100,
                                 metrics_path=tmp_path / "m.jsonl")
    trainer = fit(Module(0.02), callback, 60)
    assert trainer.global_step == 60
    out = capsys.readouterr().out
    assert "[ctcdoctor] check before training" in out and "[ctcdoctor] step 60" in out and "target → decoded" in out
    report = callback.report
    assert report is not None and not [found for found in report.findings if found.severity.value == "error"]
    assert len(report.checks) > 10  # ctcdoctor.check ran on the module and its train loader
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["command"] == "monitor" and document["result"]["latest"]["cer"] < 0.9
    curve_and_output = [found.to_dict() for found in report.findings if found.code >= "CTC200"]
    assert [found.to_dict() for found in diagnose_run(tmp_path / "m.jsonl").findings] == curve_and_output


def test_an_error_verdict_stops_the_fit():
    callback = CTCDoctorCallback(every=10, alphabet=ALPHABET, echo=False)
    trainer = fit(Module(1000.0), callback, 200)
    assert trainer.global_step == 10
    assert callback.monitor.stop_reason.code in ("CTC203", "CTC200")
    assert callback.report.result["stopped"]["step"] == 10


def test_a_check_error_stops_before_the_first_step():
    callback = CTCDoctorCallback(every=10, echo=False)
    trainer = fit(Module(0.02, softmax=True), callback, 50)  # forward returns probabilities: CTC020
    assert trainer.global_step == 0
    assert callback.monitor.stop_reason.code == "CTC020"
