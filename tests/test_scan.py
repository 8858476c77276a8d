"""`ctcdoctor scan`: whole-data-set length and label checks, vectorised."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.load.batches import TargetParts, build_target_table, normalise_batch
from ctcdoctor.scan.counts import IntCounts

ROOT = Path(__file__).resolve().parents[1]


def random_batches(concatenated: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    batches, first = [], 0
    for index in range(5):
        size = 7
        lengths = torch.randint(0, 6, (size,), generator=generator)
        if concatenated:
            targets = torch.randint(0, 4, (int(lengths.sum()) + (index == 2),), generator=generator)  # batch 2: one extra
        else:
            targets = torch.randint(0, 4, (size, 5), generator=generator)  # some lengths exceed the width 5
        if index == 3:
            lengths[0] = -1
        raw = (torch.zeros(size, 1), targets, torch.randint(5, 20, (size,), generator=generator), lengths)
        batches.append(normalise_batch(raw, index, first))
        first += size
    return batches


@pytest.mark.parametrize("concatenated", [False, True])
def test_vectorised_table_equals_the_per_sample_table(concatenated):
    batches = random_batches(concatenated)
    expected = build_target_table(batches)
    parts = TargetParts.empty()
    for batch in batches:
        parts.add(batch)
    table = parts.table()
    assert torch.equal(table.mask, expected.mask[:, : table.mask.shape[1]])
    assert torch.equal(table.labels, expected.labels[:, : table.labels.shape[1]])
    assert torch.equal(table.required_frames(), expected.required_frames())
    assert torch.equal(table.repeats(), expected.repeats())
    assert table.length_problems == expected.length_problems and table.length_problems


def test_histogram_bins_cover_every_value():
    counts = IntCounts()
    counts.add(np.array([-2, -1, 0, 0, 3, 30]))
    bins = counts.histogram(bins=4)
    assert sum(item["count"] for item in bins) == 6 and bins[0]["from"] == -2 and bins[-1]["to"] >= 30


def test_histogram_split_keeps_values_below_it_out_of_the_bins_above():
    counts = IntCounts()
    counts.add(np.array([-7, -1, -1, 0, 0, 0, 5, 22]))
    bins = counts.histogram(bins=12, split=0)  # 30 values wide: bins of 3
    assert [(item["from"], item["to"]) for item in bins] == [(-7, -7), (-6, -4), (-3, -1), (0, 2), (3, 5), (6, 8), (9, 11),
                                                             (12, 14), (15, 17), (18, 20), (21, 23)]
    assert [item["count"] for item in bins] == [1, 0, 2, 3, 1, 0, 0, 0, 0, 0, 1]
    assert counts.histogram(bins=12) == counts.histogram(bins=12, split=-100)  # nothing below the split: as without


def test_the_spare_frames_histogram_never_bins_infeasible_samples_with_feasible_ones(tmp_path):
    """`-1..0 20,118` mixed samples CTC cannot align (spare < 0) with feasible ones: the bins now split at 0,
    in the text report and in the plot."""
    widths = [0] * 3 + [1] * 5 + list(range(2, 24))  # one label each: spare = width - 1, from -1 to 22 (bins of 2)
    (tmp_path / "words.tsv").write_text("".join(f"{i}.png\t{width}\ta\n" for i, width in enumerate(widths)), encoding="utf-8")
    plot = tmp_path / "spare.png"
    result = CliRunner().invoke(app, ["scan", "--manifest", str(tmp_path / "words.tsv"), "-a", "ab", "--frames", "L",
                                      "--plot", str(plot)], env={"COLUMNS": "120"})
    assert result.exit_code == 1, result.output
    rows = result.output.split("spare frames per sample", 1)[1].split("tightest samples", 1)[0].splitlines()[2:]
    assert [row.split()[:2] for row in rows[:3]] == [["-1", "3"], ["0..1", "6"], ["2..3", "2"]]
    import matplotlib.image

    assert matplotlib.image.imread(str(plot)).shape[0] > 100
    from ctcdoctor.render.plot_scan import plot as plot_spare_frames

    report = json.loads(CliRunner().invoke(app, ["scan", "--manifest", str(tmp_path / "words.tsv"), "-a", "ab", "--frames",
                                                 "L", "--format", "json"]).stdout)
    bars = plot_spare_frames(report["result"]).axes[0].patches
    red = [bar for bar in bars if bar.get_facecolor()[0] > 0.5]
    assert sum(bar.get_height() for bar in red) == 3 == report["result"]["spare_frames"]["infeasible"]
    assert all(bar.get_x() + bar.get_width() <= -0.5 or bar.get_x() >= -0.5 for bar in bars)  # no bar straddles the line


def test_scan_finds_infeasible_samples_over_the_whole_data_set(tmp_path):
    plot = tmp_path / "spare.png"
    result = CliRunner().invoke(app, ["scan", str(ROOT / "examples/broken/doubled_letters.py"), "--format", "json",
                                      "--plot", str(plot)])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["command"] == "scan" and report["schema"] == 1
    codes = {item["code"] for item in report["findings"]}
    assert "CTC001" in codes
    data = report["result"]
    assert data["samples"] == 64 and data["batches"] == 4 and data["lengths_source"] == "setup"
    assert data["spare_frames"]["infeasible"] == report["findings"][0]["evidence"]["count"] == 20
    assert data["worst"][0]["spare"] == data["spare_frames"]["min"] < 0
    assert plot.stat().st_size > 1000


def test_scan_names_the_layers_that_downsample_time_as_check_does():
    spec = str(ROOT / "examples/broken/doubled_letters.py")
    scanned = json.loads(CliRunner().invoke(app, ["scan", spec, "--format", "json"]).stdout)
    checked = json.loads(CliRunner().invoke(app, ["check", spec, "--format", "json", "--select", "CTC001"]).stdout)
    scan_finding, check_finding = (next(item for item in report["findings"] if item["code"] == "CTC001")
                                   for report in (scanned, checked))
    layers = [item["module"] for item in scan_finding["evidence"]["time_strides"]]
    assert layers == [item["module"] for item in check_finding["evidence"]["time_strides"]] == [
        "cnn.0.3", "cnn.1.3", "cnn.2.3", "cnn.3.3"]
    assert "set the stride along width to 1 in MaxPool2d at cnn.3.3 (stride=(4, 1)) (×16 → ×8" in scan_finding["hint"]
    # Setup.output_lengths is width // 16: both state its stride (not "about one per 17" from a median).
    rule = "The model keeps one output frame per 16 input steps (its layers downsample time ×16; frames from Setup.output_lengths)."
    assert rule in scan_finding["message"] and rule in check_finding["message"]


def test_scan_of_a_healthy_example_exits_0():
    result = CliRunner().invoke(app, ["scan", str(ROOT / "examples/ocr_crnn.py")])
    assert result.exit_code == 0, result.output
    assert "spare frames per sample" in result.stdout


def test_scan_probes_lengths_once_when_none_are_given(tmp_path):
    spec = tmp_path / "user.py"
    spec.write_text(
        "import torch\n"
        "from ctcdoctor import Setup\n"
        "class M(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.zeros(x.shape[0], x.shape[1] // 4, 5).log_softmax(-1).transpose(0, 1)\n"
        "def build():\n"
        "    batches = []\n"
        "    for i in range(50):\n"
        "        lengths = torch.tensor([40, 20 + i % 10])\n"
        "        targets = torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4], [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]])\n"
        "        batches.append((torch.zeros(2, 40), targets, lengths, torch.tensor([12, 7])))\n"
        "    return Setup(model=M(), loader=batches)\n"
    )
    result = CliRunner().invoke(app, ["scan", str(spec), "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["result"]["lengths_source"] == "probed" and report["result"]["samples"] == 100
    assert {item["code"] for item in report["findings"]} >= {"CTC001"}


def test_scan_reports_ctc005_like_check_when_lengths_are_probed(tmp_path):
    spec = tmp_path / "probed.py"
    spec.write_text(
        "import torch\n"
        "from ctcdoctor import Setup\n"
        "class M(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.zeros(x.shape[0], x.shape[1] // 2, 5).log_softmax(-1).transpose(0, 1)\n"
        "def build():\n"
        "    batches = [(torch.zeros(2, 40), torch.tensor([[1, 2], [3, 4]]), torch.tensor([40, 30]), torch.tensor([2, 2]))]\n"
        "    return Setup(model=M(), loader=batches)\n"
    )
    result = CliRunner().invoke(app, ["scan", str(spec), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [item["code"] for item in report["findings"]] == ["CTC005"]


def test_unknown_lengths_read_as_unknown_with_the_reason():
    from ctcdoctor.scan.run import lengths_status

    text = lengths_status("unknown", "The size of tensor a (61) must match the size of tensor b (100)")
    assert text.startswith("output lengths unknown: probing the model failed (The size of tensor a (61)")
    assert "CTC003" in text
    assert lengths_status("setup", "from Setup.output_lengths") == "output lengths from Setup.output_lengths"


def test_plot_title_is_readable():
    from ctcdoctor.render.plot_scan import plot as plot_spare_frames

    figure = plot_spare_frames({"samples": 64, "lengths_source": "setup", "spare_frames": {"histogram": [{"from": 0, "to": 1, "count": 64}]}})
    assert figure.axes[0].get_title() == "64 samples; output lengths from Setup.output_lengths"


def test_unwritable_plot_fails_before_the_scan(tmp_path, monkeypatch):
    import ctcdoctor.scan.run

    def no_scan(*args, **kwargs):
        raise AssertionError("scanned although --plot is unwritable")

    monkeypatch.setattr(ctcdoctor.scan.run, "scan_setup", no_scan)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = CliRunner().invoke(app, ["scan", str(ROOT / "examples/ocr_crnn.py"), "--plot", str(blocker / "s.png")])
    assert result.exit_code == 2, result.output
    assert f"--plot {blocker / 's.png'}" in result.output


TIME_MAJOR = """'''A time-major set-up: inputs (T, N, F) for nn.LSTM(batch_first=False), declared with Setup.batch_axis=1.
The first batch has T == N == 8, so the batch axis cannot be told from the shape.'''
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ctcdoctor import Setup

N = 8


class Seqs(Dataset):
    def __init__(self, n=32):
        self.lengths = [8 - (i % 3) if i < N else 14 + (i % 5) for i in range(n)]

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        t = self.lengths[i]
        return torch.randn(t, 4, generator=g), torch.randint(1, 6, (2,), generator=g)


def collate(items):
    xs, ys = zip(*items)
    x = nn.utils.rnn.pad_sequence(xs)                    # (T, N, F): time-major
    return x, torch.stack(ys), torch.tensor([len(v) for v in xs]), torch.full((len(ys),), 2)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 16)                       # batch_first=False
        self.out = nn.Linear(16, 6)

    def forward(self, x):                                # (T, N, F)
        h, _ = self.lstm(x)
        return self.out(h[::2]).log_softmax(-1)         # (ceil(T/2), N, C): time subsampled by 2


def build():
    loader = DataLoader(Seqs(), batch_size=N, collate_fn=collate)

    def criterion(out, batch):
        _, y, xl, yl = batch
        return F.ctc_loss(out, y, (xl + 1) // 2, yl)

    return Setup(model=Model(), loader=loader, blank=0, criterion=criterion, batch_axis=1)
"""


def test_scan_cuts_time_major_inputs_on_the_declared_batch_axis(tmp_path):
    """nn.LSTM(batch_first=False) fed (T, N, F), Setup.batch_axis=1, the first batch of shape (8, 8, 4): scan read
    it as batch-first, probed the model on time slices and reported a false CTC001 (1 frame for every sample)."""
    spec = tmp_path / "time_major.py"
    spec.write_text(TIME_MAJOR)
    for extra in ([], ["--shard", "1/2"]):
        result = CliRunner().invoke(app, ["scan", str(spec), "--format", "json", *extra])
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        assert not [item for item in document["findings"] if item["severity"] == "error"], document["findings"]
        assert "frames = floor((L + 1) / 2)" in result.stdout


PADDED_TARGETS = """
import torch
from ctcdoctor import Setup

LABELS = {labels}


class Frames(torch.nn.Module):
    \"\"\"(T, N, C) log-probabilities: one frame per input step, 6 classes (blank 0 and 'abcde').\"\"\"

    def forward(self, x):
        return torch.zeros(x.shape[1], x.shape[0], 6).log_softmax(-1)


def batch(labels):
    width = max(len(label) for label in labels)
    targets = torch.zeros(len(labels), width, dtype=torch.long)  # padded with 0, the blank
    for row, label in enumerate(labels):
        targets[row, : len(label)] = torch.tensor(label)
    lengths = {lengths}
    return torch.zeros(len(labels), 12), targets, torch.full((len(labels),), 12), lengths


def build():
    return Setup(model=Frames(), loader=[batch(LABELS[:4]), batch(LABELS[4:])], blank=0, alphabet="abcde")
"""
#: Eight labels of 1 to 8 letters in two batches of four; 12 frames each, enough for every true label.
WORDS = [[3], [1, 2, 3, 4, 5, 1, 2, 3], [2, 4], [5, 4, 3], [1, 2], [4, 4, 3, 2], [5, 1, 2, 3, 4, 5], [3, 1]]
TRUE_LENGTHS = "torch.tensor([len(label) for label in labels])"


def _reports(tmp_path, labels, lengths) -> tuple[CliRunner, dict, dict]:
    spec = tmp_path / "padded.py"
    spec.write_text(PADDED_TARGETS.format(labels=labels, lengths=lengths))
    runner = CliRunner()
    scanned = runner.invoke(app, ["scan", str(spec), "--format", "json"])
    checked = runner.invoke(app, ["check", str(spec), "--format", "json", "--select", "CTC001,CTC002,CTC01"])
    return runner, json.loads(scanned.stdout), json.loads(checked.stdout)


def _codes(report: dict) -> set[str]:
    return {item["code"] for item in report["findings"]}


def test_scan_says_ctc012_as_check_does_when_target_lengths_count_the_padding(tmp_path):
    """Every target_length is the padded width (8 in batch 0, 6 in batch 1): the blanks that pad the short labels are
    counted as labels. check said CTC012; scan said CTC011 (blank in a target) and counted the padding as labels and
    repeats in CTC001 and CTC002 ("sample 0 has 12 frames for 8 labels + 6 repeats (needs 14, 2 short)"): two
    stories for one bug."""
    runner, scanned, checked = _reports(tmp_path, WORDS, "torch.full((len(labels),), width)")
    assert _codes(scanned) == _codes(checked) == {"CTC012"}
    ((from_scan,), (from_check,)) = ([item for item in report["findings"] if item["code"] == "CTC012"]
                                     for report in (scanned, checked))
    assert from_scan == from_check
    assert from_scan["message"] == ("target_lengths count the padding: 6 of 8 samples end in padding zeros (the blank) "
                                    "that their target_length includes; sample 0 has 1 label then 7 padding zeros, "
                                    "target_length 8.")
    assert from_scan["hint"].startswith("Pass the true lengths, the count before the padding")
    # The spare frames and the labels per sample are the true ones: 12 frames for 1 label, not 8 labels + 7 repeats.
    assert scanned["result"]["padding_counted"] is True and scanned["result"]["label_lengths"]["max"] == 8
    assert scanned["result"]["spare_frames"]["infeasible"] == 0 and scanned["result"]["spare_frames"]["max"] == 11
    text = runner.invoke(app, ["scan", str(tmp_path / "padded.py")], env={"COLUMNS": "200"}).output
    assert "CTC012" in text and "target_lengths count the padding" in text and "CTC011" not in text.split("skipped")[0]
    assert "labels per sample (before the padding that target_lengths count): median" in text


def test_a_blank_inside_a_label_is_still_ctc011_in_scan_and_check(tmp_path):
    inside = [list(label) for label in WORDS]
    inside[1][3] = 0  # 'a b c _ e a b c': the encoder maps a letter to the blank
    _, scanned, checked = _reports(tmp_path, inside, TRUE_LENGTHS)
    assert _codes(scanned) == _codes(checked) == {"CTC011"}
    assert all("sample 1" in next(item["message"] for item in report["findings"]) for report in (scanned, checked))
    # The lengths count the padding too, but a blank between labels is an encoding that uses the blank: CTC011 stays.
    _, scanned, checked = _reports(tmp_path, inside, "torch.full((len(labels),), width)")
    assert "CTC011" in _codes(scanned) and "CTC011" in _codes(checked)
    assert scanned["result"]["padding_counted"] is False


def test_true_target_lengths_give_neither_ctc011_nor_ctc012(tmp_path):
    _, scanned, checked = _reports(tmp_path, WORDS, TRUE_LENGTHS)
    assert _codes(scanned) == _codes(checked) == set()
    assert scanned["result"]["padding_counted"] is False and scanned["result"]["label_lengths"]["max"] == 8


# ---------------------------------------------------------------- drop-lists when target_lengths count the padding

#: WORDS with a 13-letter label in batch 1: 12 frames cannot align it, whatever the lengths say.
TOO_LONG = WORDS[:5] + [[1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3]] + WORDS[6:]


def _drops(tmp_path, *args: str) -> tuple[dict, list[int]]:
    """The report and the drop-list, written whatever share it drops (--drop-anyway: these data sets are tiny)."""
    drop = tmp_path / "drop.txt"
    result = CliRunner().invoke(app, ["scan", *args, "--drop-list", str(drop), "--drop-anyway", "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout), [int(line) for line in drop.read_text().split()]


def _finding(report: dict, code: str) -> dict | None:
    return next((item for item in report["findings"] if item["code"] == code), None)


def test_the_drop_list_of_the_padding_reproduction_keeps_the_samples_the_report_finds_trainable(tmp_path):
    """examples/broken/lengths_count_padding.py: every target_length is the padded width. The report says CTC012 and
    finds no sample CTC cannot align under the true lengths, but the drop-list (written as the scan streamed) held
    106 of 128 samples, their padding read as blanks in the labels ("alphabet"): filtering with it threw away most
    of the data set for a bug in the collate function."""
    report, drops = _drops(tmp_path, str(ROOT / "examples/broken/lengths_count_padding.py"), "--drop", "infeasible,empty,alphabet,tight")
    assert report["result"]["padding_counted"] is True and _codes(report) == {"CTC012"}
    assert drops == [] and report["result"]["spare_frames"]["infeasible"] == 0
    assert report["result"]["drop_list"]["count"] == 0 and report["result"]["drop_list"]["lengths"] == "true"


def test_with_counted_padding_the_drop_list_holds_the_samples_infeasible_under_the_true_lengths(tmp_path):
    (tmp_path / "padded.py").write_text(PADDED_TARGETS.format(labels=TOO_LONG, lengths="torch.full((len(labels),), width)"))
    report, drops = _drops(tmp_path, str(tmp_path / "padded.py"))
    assert report["result"]["padding_counted"] is True and _codes(report) == {"CTC001", "CTC012"}
    infeasible = _finding(report, "CTC001")["evidence"]
    assert infeasible["count"] == 1 and drops == [5] == [item["sample"] for item in infeasible["worst"]]
    assert report["result"]["drop_list"] == {"file": str(tmp_path / "drop.txt"), "count": 1,
                                             "reasons": ["alphabet", "empty", "infeasible"], "lengths": "true"}
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("drop")] == ["drop.txt"]  # no side file left


def test_a_blank_inside_a_label_makes_every_blank_a_label_in_the_drop_list_too(tmp_path):
    """Sample 1 spells a letter with the blank, so the report reads every blank as a label (CTC011) and judges the
    lengths as given; batch 1 alone looks like counted padding (its blanks trail, its lengths are equal), but its
    samples with blanks are dropped under "alphabet" all the same, as CTC011 names them."""
    inside = [list(label) for label in WORDS]
    inside[1][3] = 0
    (tmp_path / "padded.py").write_text(PADDED_TARGETS.format(labels=inside, lengths="torch.full((len(labels),), width)"))
    report, drops = _drops(tmp_path, str(tmp_path / "padded.py"), "--drop", "alphabet")
    assert report["result"]["padding_counted"] is False and "CTC011" in _codes(report)
    with_blanks = [row for row, label in enumerate(inside) if 0 in label or len(label) < max(map(len, inside[row // 4 * 4:][:4]))]
    assert drops == with_blanks == [0, 1, 2, 3, 4, 5, 7]  # sample 1: the blank inside; the others: their padding
    assert _finding(report, "CTC011")["evidence"]["samples"] == drops
    assert report["result"]["drop_list"]["lengths"] == "given"


def test_shards_whose_own_verdicts_differ_merge_into_the_drop_list_of_one_scan(tmp_path):
    """Shard 1/2 holds batch 1 only, whose blanks all look like counted padding: its own report (and drop-list) read
    the true lengths. The merge reads the blank inside batch 0's labels: every blank is a label, and the merged list
    must take shard 1's verdicts with the lengths as given (kept next to its list for the merge)."""
    inside = [list(label) for label in TOO_LONG]
    inside[1][3] = 0
    spec = tmp_path / "padded.py"
    spec.write_text(PADDED_TARGETS.format(labels=inside, lengths="torch.full((len(labels),), width)"))
    whole, drops = _drops(tmp_path, str(spec))
    parts = []
    for index in range(2):
        part = tmp_path / f"part{index}.json"
        result = CliRunner().invoke(app, ["scan", str(spec), "--shard", f"{index}/2", "--drop-list", str(tmp_path / f"drop{index}.txt"),
                                          "--drop-anyway", "--output", str(part)])
        assert result.exit_code in (0, 1), result.output
        parts.append(str(part))
    shard1 = json.loads((tmp_path / "part1.json").read_text())["result"]
    assert shard1["padding_counted"] is True and shard1["drop_list"]["lengths"] == "true"
    assert (tmp_path / "drop1.txt").read_text().split() == ["5"]  # on its own, batch 1 counts its padding
    merged_list = tmp_path / "merged.txt"
    result = CliRunner().invoke(app, ["scan", "merge", *parts, "--drop-list", str(merged_list), "--drop-anyway", "--format", "json"])
    merged = json.loads(result.stdout)
    assert merged["result"]["padding_counted"] is whole["result"]["padding_counted"] is False
    assert [int(line) for line in merged_list.read_text().split()] == drops == list(range(8))  # every sample: a blank or too long
    assert merged["result"]["drop_list"]["count"] == len(drops) and merged["result"]["drop_list"]["lengths"] == "given"
