"""What a fresh-eyes trial on public model code saw, and now sees: one test per problem, through the CLI.

1. HTR-best-practices (`head_type: 'both'`) returns `(y, y_aux)`, two float `(T, N, C)` outputs; ctcdoctor read `y_aux`
   as output lengths ("163840 output lengths for 16 samples", CTC003, ten checks skipped, a false CTC021).
2. deepspeech.pytorch's `forward(self, x, lengths)` could not be called (CTC999 "missing 1 required positional
   argument", exit 1), and with a hand-written wrapper the length probes shortened `x` but not the lengths beside it
   (CTC004 and CTC028 skipped).

The set-ups are tests/overfit_cases/heads_and_arguments.py: tiny models shaped like those.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()
SPEC = Path(__file__).parent / "overfit_cases" / "heads_and_arguments.py"


def _report(command: str, build: str, *args: str, exit_code: int = 0) -> dict:
    result = runner.invoke(app, [command, f"{SPEC}:{build}", *args, "--format", "json"])
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def _checks(report: dict) -> dict[str, dict]:
    return {item["code"]: item for item in report["checks"]}


# ----------------------------------------------------------------------------- 1: a second head is not lengths


def test_a_second_output_head_is_not_read_as_output_lengths():
    report = _report("check", "build_two_heads")
    assert report["findings"] == []  # no CTC003 from the head read as lengths, no CTC021, no CTC063 for its layer
    checks = _checks(report)
    for code in ("CTC001", "CTC003", "CTC021", "CTC050", "CTC060", "CTC063", "CTC080"):
        assert checks[code]["status"] == "passed", checks[code]
    assert report["result"]["frames_source"] == "full"
    assert report["result"]["returned"] == (
        "model returned 2 items: item 0 (20, 4, 6) checked as the output; item 1 (a float tensor (20, 4, 6)) only "
        "passed to your criterion (to check another head, return it first)")


def test_the_console_says_once_which_returned_item_the_checks_judge():
    result = runner.invoke(app, ["check", f"{SPEC}:build_two_heads"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert result.output.count("model returned 2 items: item 0 (20, 4, 6) checked as the output") == 1
    assert "output lengths for" not in result.output


def test_a_criterion_that_adds_the_second_heads_loss_is_not_called_wrong():
    # loss(y) + 0.1 * loss(y_aux): reference CTC on y alone cannot reproduce it, and that is no mistake
    checks = _checks(_report("check", "build_two_heads"))
    assert checks["CTC030"]["status"] == "skipped"
    assert ("the model returns more outputs than the one checked (item 1, a float tensor (20, 4, 6)) and the "
            "criterion gets them too" in checks["CTC030"]["reason"])
    assert "it does apply log_softmax over the classes to item 0" in checks["CTC030"]["reason"]


def test_the_criterion_gets_both_heads_and_is_audited_on_the_first():
    # first_head_loss asserts it was given the (y, y_aux) tuple, and is reference CTC on y: CTC030 agrees
    checks = _checks(_report("check", "build_two_heads_first_loss"))
    assert checks["CTC030"]["status"] == "passed", checks["CTC030"]


def test_an_item_that_is_neither_lengths_nor_an_output_is_named():
    report = _report("check", "build_odd_item", exit_code=1)
    (crash,) = [item for item in report["findings"] if item["code"] == "CTC999"]
    assert ("returned a tuple of 2 items ([0] a float tensor (20, 4, 6); [1] a str): item 1 is neither output lengths "
            "(integers, one per sample) nor a tensor" in crash["message"])
    assert "or a tuple whose first item is the output" in crash["message"]


def test_overfit_trains_the_two_head_model_with_its_own_loss():
    report = _report("overfit", "build_two_heads", "--steps", "200")
    assert report["result"]["trained"] and report["result"]["fitted"], report["result"]


@pytest.mark.parametrize(("second", "lengths"), [
    (torch.tensor([5, 4]), [5, 4]),                    # (output, output_lengths)
    ([5, 4], [5, 4]),                                  # a list of ints
    (torch.tensor([[5], [4]], dtype=torch.int32), [5, 4]),  # (N, 1)
    (torch.tensor([5.0, 4.0]), [5, 4]),                # whole-valued floats in one dimension
    (None, None),
    (torch.zeros(5, 2, 3), None),                      # a second head, shaped like the output
    ([(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3))], None),  # a recurrent state
])
def test_the_item_after_the_output_is_lengths_only_when_it_holds_integers_per_sample(second, lengths):
    from ctcdoctor.measure.model import split_output

    output, read = split_output((torch.zeros(5, 2, 3), second))
    assert output.shape == (5, 2, 3)
    assert (read.tolist() if read is not None else None) == lengths


# ----------------------------------------------------------------------------- 2: forward(x, lengths)


def test_a_forward_with_several_arguments_gets_the_inputs_tuple_spread():
    report = _report("check", "build_deepspeech")
    assert report["findings"] == []
    checks = _checks(report)
    # the probes cut and shorten x, and the lengths beside it follow (CTC004, CTC028, the layout probe)
    for code in ("CTC003", "CTC004", "CTC028", "CTC030", "CTC060"):
        assert checks[code]["status"] == "passed", checks[code]
    assert report["result"]["frames_source"] == "model"
    assert report["result"]["layout_source"] == "probe"
    assert report["result"]["returned"].startswith(
        "model returned 3 items: item 0 (4, 20, 6) checked as the output, item 1 as its output lengths; "
        "item 2 (a list of 1 item) only passed to your criterion")


def test_the_length_probes_shorten_the_lengths_inside_the_inputs_too():
    # the wrapper a user writes today: forward(inputs) unpacks (x, lengths); before, CTC004 failed with
    # "RuntimeError: shape ... is invalid" and CTC028 skipped
    checks = _checks(_report("check", "build_deepspeech_wrapped"))
    assert checks["CTC004"]["status"] == "passed", checks["CTC004"]
    assert checks["CTC028"]["status"] == "passed", checks["CTC028"]


def test_a_forward_that_cannot_take_the_inputs_is_a_usage_error_naming_its_signature():
    result = runner.invoke(app, ["check", f"{SPEC}:build_deepspeech_tensor_inputs"])
    assert result.exit_code == 2, result.output
    assert ("DeepSpeechLike.forward(x, lengths, hs=None) takes 2 to 3 positional arguments, but the batch's inputs "
            "are a float tensor (4, 8, 40)") in result.output
    assert "((x, lengths), targets, input_lengths, target_lengths), and ctcdoctor calls model(x, lengths)" in result.output
    assert "CTC999" not in result.output and "Traceback" not in result.output


def test_overfit_and_scan_call_a_forward_with_several_arguments():
    report = _report("overfit", "build_deepspeech", "--steps", "20", exit_code=1)  # 20 steps do not fit it: CTC070
    assert report["result"]["trained"] and report["result"]["steps"] == 20
    assert {item["code"] for item in report["findings"]} == {"CTC070"}
    scan = _report("scan", "build_deepspeech")
    assert scan["findings"] == []


def test_forward_arguments_spread_only_what_the_signature_takes():
    from ctcdoctor.measure.model import forward_arguments

    class Two(torch.nn.Module):
        def forward(self, x, lengths, hs=None):
            return x

    class One(torch.nn.Module):
        def forward(self, x, lengths=None):
            return x

    x, lengths = torch.zeros(2, 3), torch.tensor([3, 2])
    assert forward_arguments(Two(), (x, lengths)) == (x, lengths)
    assert forward_arguments(Two(), [x, lengths, None]) == (x, lengths, None)
    assert forward_arguments(One(), (x, lengths))[0] == (x, lengths)  # one required argument: model(inputs) as before
    with pytest.raises(Exception, match=r"Two.forward\(x, lengths, hs=None\) takes 2 to 3 positional arguments, but "
                                        r"the batch's inputs are a tuple of 4 items"):
        forward_arguments(Two(), (x, lengths, None, None))
