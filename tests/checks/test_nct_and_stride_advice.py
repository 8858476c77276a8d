"""Advice in the model's own terms, as the torchaudio trial read it: an (N, C, T) output gets log_softmax(dim=1)
(Wav2Letter ends with a ReLU and returns (N, C, T)); a wide-kernel Conv1d's stride is its own, not the growth
ratio; a model that keeps every input step is not told to cut its downsampling; CTC061 blames sigmoid/tanh only
when the model has them."""
from __future__ import annotations

import torch
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.engine import Options
from ctchelpers import healthy_setup, make_batches, run_codes


class ConvHead(nn.Module):
    """(N, F, L) -> Conv1d stack -> (N, C, L / 2) with `head` applied over the class axis (dim 1), as Wav2Letter."""

    def __init__(self, head: str):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(4, 16, 2, stride=2), nn.ReLU(), nn.Conv1d(16, 6, 1))
        self.final = nn.ReLU() if head == "relu" else nn.Identity()
        self.head = head

    def forward(self, x):
        scores = self.final(self.body(x))
        return scores.softmax(1) if self.head == "softmax" else scores.log_softmax(1)


def _nct(head: str, codes: tuple[str, ...]):
    setup = healthy_setup()
    setup.model = ConvHead(head)
    return {found.code: found for found in run_codes(setup, codes)[0]}


def test_an_nct_softmax_head_is_told_dim_1_not_the_time_axis():
    found = _nct("softmax", ("CTC020", "CTC024"))
    assert "log_softmax(dim=1)" in found["CTC020"].hint and "dim=-1" not in found["CTC020"].hint
    assert "CTC024" not in found


def test_an_nct_relu_head_is_told_which_module_to_remove_and_dim_1():
    found = _nct("relu", ("CTC027",))["CTC027"]
    assert found.hint.startswith("Remove the ReLU at final after the output layer")
    assert found.hint.endswith("log_softmax(dim=1).")


def test_ntc_and_tnc_heads_keep_dim_minus_1():
    setup = healthy_setup(head="softmax", layout="NTC")
    (found,) = run_codes(setup, ("CTC020",))[0]
    assert "log_softmax(dim=-1)" in found.hint


class WideStride(nn.Module):
    """Wav2Letter's waveform front end: Conv1d(kernel 250, stride 160), then stride 2: frames = L / 320."""

    def __init__(self):
        super().__init__()
        self.front = nn.Conv1d(1, 8, 250, stride=160, padding=45)
        self.second = nn.Conv1d(8, 6, 3, stride=2, padding=1)

    def forward(self, x):
        return self.second(torch.relu(self.front(x))).log_softmax(1)


def test_a_wide_kernel_conv_is_named_with_its_own_stride():
    # 3,000 samples -> 9 frames for 12 labels; from L to 2L the first conv grows 3,000 / 19 = 157.9x, its stride is 160.
    batches = make_batches([3000] * 4, [[1, 2, 3, 4, 5] * 2 + [1, 2]] * 4, features=1)
    setup = Setup(model=WideStride(), loader=batches, blank=0)
    (found,) = run_codes(setup, ("CTC001",), Options(max_batches=1, scan_batches=4))[0]
    assert "Conv1d at front (stride 160 along time)" in found.hint and "×320" in found.hint
    assert "158" not in found.hint and "316" not in found.hint


class EveryStep(nn.Module):
    """DeepSpeech-like: one output frame per input frame."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)

    def forward(self, x):  # (N, F, L) -> (N, L, C)
        return self.fc(x.transpose(1, 2)).log_softmax(-1)


def test_a_model_without_downsampling_is_not_told_to_reduce_it():
    batches = make_batches([10, 10, 14, 30], [[1, 2, 3, 4, 5] * 3] * 3 + [[1, 2, 3] * 3], batch_size=4)
    setup = Setup(model=EveryStep(), loader=batches, blank=0, output_lengths=lambda lengths: lengths)
    found = {item.code: item for item in run_codes(setup, ("CTC001", "CTC002"), Options(max_batches=1, scan_batches=4))[0]}
    assert "one output frame per input step, so there is no downsampling to cut" in found["CTC001"].hint
    assert "Reduce the downsampling" not in found["CTC001"].hint


def test_ctc061_names_saturating_layers_only_when_the_model_has_them():
    class Deep(nn.Module):
        def __init__(self, activation, scale: float = 1.0):
            super().__init__()
            self.scale = scale
            layers = [nn.Conv1d(4, 16, 2, stride=2)]
            for _ in range(8):
                layers += [nn.Conv1d(16, 16, 1), activation()]
            self.body = nn.Sequential(*layers, nn.Conv1d(16, 6, 1))

        def forward(self, x):
            return self.body(x * self.scale).log_softmax(1)

    setup = healthy_setup()
    setup.model = Deep(nn.Sigmoid)
    (found,) = run_codes(setup, ("CTC061",))[0]
    assert found.hint.startswith("Replace the saturating activations (body.2, body.4, body.6, body.8 ...)")
    setup = healthy_setup()
    setup.model = Deep(nn.ReLU, scale=1e-6)  # no sigmoid/tanh; tiny inputs give the first layer a tiny gradient
    findings = run_codes(setup, ("CTC061",))[0]
    assert findings and "no sigmoid/tanh layers to blame" in findings[0].hint


def test_scan_gives_the_same_no_downsampling_advice_as_check(tmp_path):
    from typer.testing import CliRunner

    from ctcdoctor.cli import app

    spec = tmp_path / "every_step.py"
    spec.write_text(
        "import torch\nfrom torch import nn\nfrom ctcdoctor import Setup\n"
        "class EveryStep(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 6)\n"
        "    def forward(self, x):\n        return self.fc(x.transpose(1, 2)).log_softmax(-1)\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    batches = [(torch.randn(4, 4, 30), torch.randint(1, 6, (4, 15)), torch.tensor([10, 10, 14, 30]),"
        " torch.tensor([15, 15, 15, 9]))]\n"
        "    return Setup(model=EveryStep(), loader=batches, blank=0, output_lengths=lambda lengths: lengths)\n"
    )
    result = CliRunner().invoke(app, ["scan", str(spec), "--format", "json"])
    import json

    findings = {item["code"]: item for item in json.loads(result.stdout)["findings"]}
    assert "there is no downsampling to cut" in findings["CTC001"]["hint"]


def test_check_says_what_it_read_the_output_as(monkeypatch):
    from typer.testing import CliRunner

    from ctcdoctor.cli import app
    from ctchelpers import ROOT

    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["check", "examples/speech_conv1d_nct.py"])
    assert "read: output (16, 21, 37) as (N, C, T) (a shorter input shortened axis 2" in result.output
    assert "21 classes, blank 0; frames from Setup.output_lengths" in result.output


def test_the_class_count_fix_names_the_models_own_head_layer():
    setup = healthy_setup()
    setup.model = ConvHead("log_softmax")  # 6 classes; an alphabet of 6 symbols needs 7
    setup.alphabet = "abcdef"
    (found,) = run_codes(setup, ("CTC014",))[0]
    assert "make the final layer (Conv1d at body.2) output 7 classes (out_channels=7)" in found.hint
    assert "nn.Linear" not in found.hint


def test_an_nct_output_normalised_over_time_gets_one_story_from_ctc024_and_ctc030(monkeypatch):
    from typer.testing import CliRunner

    from ctcdoctor.cli import app
    from ctchelpers import ROOT

    monkeypatch.chdir(ROOT)
    text = " ".join(CliRunner().invoke(app, ["check", "examples/broken/conv1d_softmax_over_time.py"]).output.split())
    assert "its exp sums to 1 along the time axis." in text and "(T, N, C) view" not in text
    assert "Take log_softmax(dim=1)" in text
    assert "better, fix the model's head as CTC024 says (log_softmax(dim=1) over the classes)" in text
