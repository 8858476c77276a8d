"""What a new user saw in `ctcdoctor overfit` and now sees instead (one test per problem they reported)."""
from __future__ import annotations

import json

import pytest
from overfitkit import write_user_module
from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()


@pytest.fixture()
def module(tmp_path):
    return write_user_module(tmp_path)


def _json(result) -> dict:
    return json.loads(result.stdout)


def test_a_negative_loss_is_probabilities_fed_to_ctc_not_a_divergence(module):
    result = runner.invoke(app, ["overfit", f"{module}:build_softmax_into_ctc", "--steps", "60", "--format", "json"])
    assert result.exit_code == 1, result.output
    document = _json(result)
    codes = [item["code"] for item in document["findings"]]
    assert "CTC074" in codes and "CTC072" not in codes, codes
    (found,) = [item for item in document["findings"] if item["code"] == "CTC074"]
    assert "the loss is negative on sample 0: below 0 at" in found["message"]
    assert "the model's output is probabilities" in found["message"]
    assert "not a learning-rate problem" in found["message"] and "learning rate 0.01 is too high" not in found["message"]
    assert "log_softmax(dim=-1)" in found["hint"] and "--lr" not in found["hint"]
    assert document["result"]["diagnosis"] == "CTC074"
    text = runner.invoke(app, ["overfit", f"{module}:build_softmax_into_ctc", "--steps", "60"])
    assert "✖ did not fit (CTC074)" in text.output


def test_a_negative_loss_is_reported_even_when_the_decode_fits(module, monkeypatch):
    # softmax into F.ctc_loss is below 0 from step 1, so the run would stop at loop.NEGATIVE_STEPS, long before the
    # decode fits (see the early-stop tests below): train the budget to show a fit whose loss is negative
    monkeypatch.setattr("ctcdoctor.overfit.loop.NEGATIVE_STEPS", 0)
    result = runner.invoke(app, ["overfit", f"{module}:build_softmax_into_ctc", "--steps", "1000"])
    assert result.exit_code == 1, result.output
    headline = " ".join(result.output.split())
    assert "✔ fitted" not in headline and "▲ decode matches sample 0" in headline
    assert "(CTC020); the loss went negative: it is not CTC's (CTC074): not a fit" in headline
    assert "The decode matched the target anyway, but training on this loss is not training CTC." in \
        " ".join(result.output.split())


def test_assert_can_overfit_fails_a_fit_whose_loss_is_negative(module, monkeypatch):
    from ctcdoctor.testing import assert_can_overfit

    monkeypatch.setattr("ctcdoctor.overfit.loop.NEGATIVE_STEPS", 0)  # train on to the fit, as above

    with pytest.raises(AssertionError) as raised:  # the decode fits at this budget, as in the test above
        assert_can_overfit(f"{module}:build_softmax_into_ctc", steps=1000)
    text = str(raised.value)
    assert text.startswith(f"ctcdoctor: {module}:build_softmax_into_ctc cannot overfit sample 0: CTC074 "), text
    assert text.splitlines()[-1].startswith(f"ctcdoctor overfit {module}:build_softmax_into_ctc --sample 0 --steps 1000 ")


def test_a_loss_below_0_from_the_first_step_stops_early_with_the_same_verdict(module, monkeypatch):
    """CTC074 is certain once the loss was below 0 at every one of the first NEGATIVE_STEPS steps: training stops there
    (a DeepSpeech with a softmax head trained all 1,000 steps, 68 s, to say so). The report is the full budget's but for
    the steps run and the note saying why it stopped."""
    from ctcdoctor.overfit.loop import NEGATIVE_STEPS

    command = ["overfit", f"{module}:build_softmax_into_ctc", "--steps", "60", "--format", "json"]
    early = runner.invoke(app, command)
    monkeypatch.setattr("ctcdoctor.overfit.loop.NEGATIVE_STEPS", 0)
    full = runner.invoke(app, command)
    assert early.exit_code == full.exit_code == 1, early.output
    early_doc, full_doc = _json(early), _json(full)
    stopped, trained = early_doc["result"], full_doc["result"]
    assert (stopped["steps"], trained["steps"]) == (NEGATIVE_STEPS, 60)
    assert stopped["diagnosis"] == trained["diagnosis"] == "CTC074"
    assert [item["code"] for item in early_doc["findings"]] == [item["code"] for item in full_doc["findings"]]
    assert early_doc["summary"] == full_doc["summary"] and set(stopped) == set(trained)
    assert trained["stopped_early"] is None
    assert stopped["stopped_early"] == (f"stopped at step {NEGATIVE_STEPS}: the loss was below 0 at every step since step 1, "
                                        "so it is not a CTC loss (CTC074); more steps cannot change that")
    assert stopped["stopped_early"] in stopped["notes"]
    (found,) = [item for item in early_doc["findings"] if item["code"] == "CTC074"]
    assert f"below 0 at {NEGATIVE_STEPS} of {NEGATIVE_STEPS} steps (first at step 1," in found["message"]
    assert stopped["history"][-1]["step"] == NEGATIVE_STEPS  # its decode is evaluated where it stopped


TRANSIENT = """
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from ctcdoctor import Setup

calls = [0]

def dips(output, batch):
    # CTC, but 100 lower on a few calls early on: a loss below 0 for some steps, not a loss that is never CTC's
    _, targets, input_lengths, target_lengths = batch
    calls[0] += 1
    loss = F.ctc_loss(output.transpose(0, 1), targets, input_lengths, target_lengths)
    return loss - 100.0 if 3 <= calls[0] <= 10 else loss

def collate(items):
    xs, ys = zip(*items)
    return torch.stack(xs), torch.stack(ys), torch.full((len(xs),), 16), torch.full((len(xs),), 4)

def build():
    # self-contained: tests/integrations has a tinyctc module of its own, which may be the one imported by that name
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 6), nn.LogSoftmax(-1))
    data = TensorDataset(torch.randn(4, 16, 8), torch.tensor([[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 1], [4, 5, 1, 2]]))
    return Setup(model=model, loader=DataLoader(data, batch_size=4, collate_fn=collate), alphabet="abcde", criterion=dips,
                 optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
"""


def test_a_loss_that_dips_below_0_for_a_few_steps_trains_its_budget(module):
    from ctcdoctor.load.spec import load_setup
    from ctcdoctor.overfit.result import OverfitOptions
    from ctcdoctor.overfit.train import run_overfit

    path = module.parent / "transient.py"
    path.write_text(TRANSIENT)
    _, _, outcome = run_overfit(load_setup(f"{path}:build"), "transient", OverfitOptions(steps=40))
    assert outcome.steps_run == 40 and outcome.stopped_early is None
    assert outcome.diagnosis == "CTC074"  # any step below 0 is still reported
    assert 0 < sum(1 for value in outcome.losses[:20] if value < 0) < 20 and outcome.losses[-1] > 0


def test_a_negative_loss_names_no_cause_it_did_not_measure():
    from ctcdoctor.overfit.negative import negative_fix, negative_loss, negative_words

    assert negative_loss([3.0, 1.0, 0.2, 0.01]) is None  # a loss approaching 0 while fitting is fine
    found = negative_loss([2.0, -0.5, -1.5, -1.0])
    assert found is not None and (found.count, found.first_step, found.lowest, found.lowest_step) == (3, 2, -1.5, 3)
    words = negative_words(found, "sample 0", None)
    assert "not given log-probabilities (softmax probabilities or raw logits), or the total adds a negative term" in words
    assert "log_softmax(dim=-1)" in negative_fix("logits")


def test_a_vocabulary_of_tokens_decodes_as_its_tokenizer_would():
    from ctcdoctor.overfit.prepare import Symbols

    vocabulary = ["<s>", "</s>", "[UNK]", "|", "t", "h", "e", "c", "a"]  # Hugging Face CTC order, blank (pad) 0 skipped
    ids = {token: index + 1 for index, token in enumerate(vocabulary)}
    words = Symbols(vocabulary, 0, "|")
    assert words.text([ids[c] for c in "the|cat|"]) == "the cat"  # not "t h e | c a t |"
    assert words.text([ids["[UNK]"], ids["a"]]) == "[UNK]a"
    assert words.name(ids["|"]) == "|"  # one class's name (plot legends, clipped labels) stays the token
    assert Symbols(["\u2581the", "\u2581cat", "s"], 0).text([1, 2, 3]) == "the cats"  # SentencePiece word marks
    assert Symbols("ab|", 0).text([1, 3, 2]) == "a|b"  # a character alphabet is unchanged, "|" included
    assert Symbols(["ow", "m", "aa"], 0).text([1, 2, 3]) == "ow m aa"  # phonemes, no word mark: spaced, as before
    assert Symbols(None, 0).text([3, 1]) == "3 1"



@pytest.mark.parametrize("function", ["build_dataclass_output", "build_namedtuple_output_own_loss"])
def test_a_model_returning_an_object_with_logits_trains_and_fits(module, function):
    result = runner.invoke(app, ["overfit", f"{module}:{function}", "--steps", "400", "--format", "json"])
    assert result.exit_code == 0, result.output
    outcome = _json(result)["result"]
    assert outcome["fitted"] is True and outcome["final_decode"] == outcome["targets"]
    if function.endswith("own_loss"):  # Setup.criterion trained on what the model returned, its .logits read
        assert outcome["loss_source"] == "criterion" and not outcome["notes"], outcome["notes"]


def test_each_phase_says_what_it_is_doing_for_a_timeout_message(module, tmp_path, monkeypatch):
    """--timeout names the phase it ran out in, not "starting": record the activity inside each phase."""
    import ctcdoctor.overfit.train as train_module
    import ctcdoctor.render.plot_overfit as plot_module
    from ctcdoctor.load.limits import current_activity

    seen: dict[str, str] = {}
    final_state, plot = train_module.final_state, plot_module.plot

    def recording_final_state(*args, **kwargs):
        seen["final"] = current_activity()
        return final_state(*args, **kwargs)

    def recording_plot(*args, **kwargs):
        seen["plot"] = current_activity()
        return plot(*args, **kwargs)

    monkeypatch.setattr(train_module, "final_state", recording_final_state)
    monkeypatch.setattr(plot_module, "plot", recording_plot)
    path = tmp_path / "fit.png"
    result = runner.invoke(app, ["overfit", str(module), "--steps", "400", "--plot", str(path)])
    assert result.exit_code == 0, result.output
    assert seen["final"].startswith("the final decode (eval mode) after training step "), seen
    assert seen["plot"] == f"plotting to {path}", seen


def test_the_summary_line_is_the_command_that_reproduces_the_run(module):
    result = runner.invoke(app, ["overfit", str(module), "--samples", "0,2", "--steps", "30", "--freeze-except-head",
                                 "--clip", "1", "--seed", "4"])
    assert result.exit_code == 1, result.output  # 30 steps of the head alone do not fit
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"ctcdoctor overfit {module} --samples 0,2 --steps 30 --lr 0.01 --seed 4 --freeze-except-head "
                           "--clip 1 (Adam, Setup.optimizer): "), last
    plain = runner.invoke(app, ["overfit", f"{module}:build_softmax_into_ctc", "--steps", "20"])
    assert f"ctcdoctor overfit {module}:build_softmax_into_ctc --sample 0 --steps 20 --lr 0.01 --seed 0 (Adam, " \
           "Setup.optimizer): " in plain.output


def _fake_result(samples, probs, fitted=True):
    from ctcdoctor.overfit.result import Evaluation, FrameProbabilities, OverfitResult

    names = ("blank", "d", "i", "n")
    result = OverfitResult(samples=tuple(samples), source="test", targets=tuple("din" for _ in samples), trained=True,
                           fitted=fitted, diagnosis=None if fitted else "CTC070", losses=[3.0, 2.0, 1.0],
                           evaluations=[Evaluation(3, 1.0, 0.0, ("din",), 0.5, 0.1)], final_decode=("din",))
    result.frames = FrameProbabilities(classes=(0, 1, 2, 3), names=names, probs=tuple(map(tuple, probs)), pseudo=None,
                                       target="din")
    return result


def test_overfit_plot_titles_several_samples_in_the_plural_and_frames_in_whole_numbers():
    from ctcdoctor.render.plot_overfit import plot

    figure = plot(_fake_result([0, 1, 2], [[0.7, 0.1, 0.1, 0.1]] * 7))
    assert figure._suptitle.get_text().startswith("overfit samples 0, 1, 2: ")
    assert plot(_fake_result([4], [[0.7, 0.1, 0.1, 0.1]] * 7))._suptitle.get_text().startswith("overfit sample 4: ")
    _, frames_axes = figure.axes[:2]
    assert all(float(tick).is_integer() for tick in frames_axes.get_xticks()), frames_axes.get_xticks()


def test_overfit_plot_draws_outputs_that_are_equal_everywhere_as_one_named_line():
    """A dead head outputs the same value for every class: one line naming them, not five hidden under one."""
    from ctcdoctor.render.plot_overfit import plot

    figure = plot(_fake_result([0], [[0.25, 0.25, 0.25, 0.25]] * 7, fitted=False))
    labels = [line.get_label() for line in figure.axes[1].get_lines() if not line.get_label().startswith("_")]
    assert labels[0] == "blank, 'd', 'i', 'n' outputs, all equal (0.25 on every frame)", labels
    assert not any(label.endswith("' output") for label in labels)


def test_long_outputs_are_drawn_as_steps_so_one_frame_spikes_show():
    from ctcdoctor.render.plot_overfit import plot

    rows = [[0.98, 0.01, 0.005, 0.005]] * 200
    rows[50] = [0.02, 0.97, 0.005, 0.005]  # a one-frame spike of 'd' in 200 frames
    frames_axes = plot(_fake_result([0], rows)).axes[1]
    spike = next(line for line in frames_axes.get_lines() if line.get_label() == "'d' output")
    assert spike.get_drawstyle() == "steps-mid" and spike.get_linewidth() >= 1.2
    assert frames_axes.collections, "the spike's frame is filled"
