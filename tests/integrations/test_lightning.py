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


def test_a_check_error_with_a_plot_path_ends_the_fit_with_the_verdict(tmp_path, capsys):
    # the trial's `lit.py softmax`: the fit ended in UserInputError from the plot ("found no scalars"), no verdict
    callback = CTCDoctorCallback(every=10, plot_path=tmp_path / "p.png", metrics_path=tmp_path / "m.jsonl")
    trainer = fit(Module(0.02, softmax=True), callback, 50)
    assert trainer.global_step == 0
    out = capsys.readouterr().out
    assert "1 error, 0 warnings, 0 info; stopping before step 1 on CTC020" in out  # said at the check
    assert "(Lightning): 1 error, 0 warnings, 0 info; stopped before step 1 on CTC020" in out  # the verdict at the end
    assert "no plot written to" in out and "the run stopped before its first step" in out
    assert callback.report.result["stopped"] == {"step": 0, "code": "CTC020"}


class Scheduled(Module):
    """The learning rate falls as 1/step (a per-step LambdaLR): step k trains at 0.02 / k."""

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda index: 1.0 / (index + 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def test_the_learning_rate_recorded_is_the_one_each_step_trained_at():
    callback = CTCDoctorCallback(every=5, alphabet=ALPHABET, echo=False, check=False)
    fit(Scheduled(0.02), callback, 12)
    lr = callback.monitor.run_data().scalars["lr"]
    # Lightning steps the scheduler before on_train_batch_end: reading the rate there gave the next step's
    assert lr.steps.tolist() == list(range(1, 13))
    assert lr.values.tolist() == pytest.approx([0.02 / step for step in range(1, 13)])


def test_bad_monitor_options_are_refused_when_the_callback_is_made_not_inside_fit():
    with pytest.raises(ValueError, match="every=0"):
        CTCDoctorCallback(every=0)
    with pytest.raises(ValueError, match="patience=-1"):
        CTCDoctorCallback(patience=-1)
    with pytest.raises(TypeError, match="unknown keyword.* metric_path"):
        CTCDoctorCallback(metric_path="m.jsonl")  # a typo of metrics_path


class Pairs(pl.LightningModule):
    """Batches ctcdoctor cannot read (inputs and targets only): the check and the output measurement cannot run."""

    def __init__(self) -> None:
        super().__init__()
        self.model = FrameModel()

    def forward(self, inputs):
        return self.model(inputs)

    def training_step(self, batch, batch_index):
        inputs, targets = batch
        log_probs = self(inputs).transpose(0, 1)
        frames = torch.full((inputs.shape[0],), log_probs.shape[0])
        return F.ctc_loss(log_probs, targets, frames, torch.full((inputs.shape[0],), targets.shape[1]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.02)


def test_batches_the_callback_cannot_read_leave_the_fit_running():
    from tinyctc import Batches

    data = Batches(32)
    pairs = torch.utils.data.DataLoader(data, batch_size=8, collate_fn=lambda items: tuple(
        torch.stack([item[part] for item in items]) for part in (0, 1)))
    callback = CTCDoctorCallback(every=5, echo=False)
    trainer = pl.Trainer(max_steps=12, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    with pytest.warns(UserWarning) as caught:
        trainer.fit(Pairs(), pairs)
    assert trainer.global_step == 12 and callback.monitor.steps_seen == 12  # the loss curve is still judged
    messages = [str(item.message) for item in caught if "ctcdoctor" in str(item.message)]
    assert any("could not check" in message for message in messages), messages
    assert len([message for message in messages if "not measured" in message]) == 1, messages
