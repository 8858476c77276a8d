"""A softmax that runs only in eval mode (deepspeech.pytorch's InferenceBatchSoftmax) is judged on what training sees.

The fresh-eyes trial on public model code: ctcdoctor ran DeepSpeech2 in eval mode only, saw probabilities, and
reported CTC020 and CTC030 errors on a healthy set-up, hid CTC031, and `overfit` called an exact fit "not a fit".
The set-ups are tests/overfit_cases/eval_only_softmax.py (a small model of the same pattern, built in the test).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()
CASES = Path(__file__).parent / "overfit_cases"
SPEC = CASES / "eval_only_softmax.py"


def _run(command: str, build: str, *args: str, code: int | None = None) -> dict:
    result = runner.invoke(app, [command, f"{SPEC}:{build}", *args, "--format", "json"])
    if code is not None:
        assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def _by_code(document: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for item in document["findings"]:
        found.setdefault(item["code"], []).append(item)
    return found


def test_an_eval_only_softmax_on_a_healthy_set_up_is_an_info_note_naming_the_module_not_an_error():
    document = _run("check", "build", code=0)
    found = _by_code(document)
    assert document["summary"]["error"] == 0 and document["summary"]["warning"] == 0, document["findings"]
    (note,) = found["CTC020"]
    assert note["severity"] == "info"
    assert note["message"] == ("InferenceBatchSoftmax at inference_softmax applies softmax in eval mode only: training "
                               "sees raw logits, and your criterion applies log_softmax to them; decoding sees "
                               "probabilities — fine.")
    assert note["evidence"]["switch"]["module"] == "inference_softmax"
    # The criterion is audited on the output training sees: only the deliberate reduction="sum" remains.
    (audit,) = found["CTC030"]
    assert audit["severity"] == "info" and audit["evidence"]["mistake"] == "reduction"
    assert "CTC021" not in found


def test_zero_infinity_hiding_infeasible_samples_shows_through_an_eval_only_softmax():
    found = _by_code(_run("check", "build_too_long", code=1))
    assert "CTC031" in found and "CTC001" in found
    assert [item["severity"] for item in found["CTC020"]] == ["info"]
    (audit,) = found["CTC030"]
    assert audit["severity"] == "info" and audit["evidence"]["reduction"] == "sum" and audit["evidence"]["zero_infinity"]


def test_logits_that_training_feeds_to_ctc_without_log_softmax_are_still_ctc021():
    found = _by_code(_run("check", "build_raw_into_ctc", code=1))
    (warning,) = found["CTC021"]
    assert "in train mode, which the loss sees" in warning["message"]
    (note,) = found["CTC020"]
    assert note["severity"] == "info" and "fine" not in note["message"]
    assert "training sees raw logits (CTC021 says what the loss needs)" in note["message"]
    assert found["CTC030"][0]["evidence"]["mistake"] == "raw_logits"


def _state(model: torch.nn.Module) -> tuple:
    return ({name: value.clone() for name, value in model.state_dict().items()},
            [module.training for module in model.modules()])


def _same(before: tuple, after: tuple) -> bool:
    tensors, modes = before
    return modes == after[1] and all(torch.equal(value, after[0][name]) for name, value in tensors.items())


def test_the_train_mode_forward_leaves_the_users_model_as_found():
    import ctcdoctor

    sys.path.insert(0, str(CASES))
    try:
        import eval_only_softmax as cases
    finally:
        sys.path.remove(str(CASES))
    for build in (cases.build, cases.build_uncopyable):
        setup = build()
        setup.model.train()  # a user in the middle of training: BatchNorm's running statistics would move
        before = _state(setup.model)
        report = ctcdoctor.check(setup, select="CTC02")
        assert [(item.code, item.severity.value) for item in report.findings] == [("CTC020", "info")], build.__name__
        assert _same(before, _state(setup.model)), build.__name__
        assert setup.model.bn.num_batches_tracked.item() == 0
    how = ctcdoctor.check(cases.build_uncopyable(), select="CTC020").findings[0].evidence["how"]
    assert how == "the model in train mode, its buffers and modes restored afterwards"


def test_the_gradient_pass_normalises_the_output_its_own_mode_gives():
    from ctcdoctor.engine import Context

    sys.path.insert(0, str(CASES))
    try:
        import eval_only_softmax as cases
    finally:
        sys.path.remove(str(CASES))
    setup = cases.build()
    context = Context(setup)
    gradients = context.gradients
    assert gradients.mode.startswith("train mode")
    batch = setup.loader[0]
    import copy

    clone = copy.deepcopy(setup.model).train()
    with torch.no_grad():
        log_probs = clone(batch[0]).transpose(0, 1).log_softmax(-1)  # what training normalises
        expected = torch.nn.functional.ctc_loss(log_probs, batch[1], batch[2], batch[3], reduction="mean")
    assert abs(gradients.loss - float(expected)) < 1e-4 * float(expected)


def test_overfit_calls_an_exact_fit_through_an_eval_only_softmax_a_fit():
    document = _run("overfit", "build", "--steps", "300")
    result = document["result"]
    assert result["fitted"] is True and not result.get("caveats"), result
    assert document["summary"]["error"] == 0, document["findings"]


def test_a_softmax_that_runs_in_train_mode_only_is_ctc020_on_what_training_sees_not_ctc021():
    found = _by_code(_run("check", "build_softmax_in_training", code=1))
    (error,) = found["CTC020"]
    assert error["severity"] == "error"
    assert error["message"].startswith("the output in train mode, which the loss sees (the eval-mode output differs")
    assert error["evidence"]["switch"] == {"module": "inference_softmax", "type": "TrainingSoftmax"}
    assert "CTC021" not in found
