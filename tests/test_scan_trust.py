"""`scan` shows no margins built on output lengths it knows are wrong, and writes no drop-list that hides a problem
to fix in code (CTC001 from the model's downsampling, CTC010, CTC011) or drops more than 10% of the data.
From a new-user trial: a healthy histogram on stale Setup.output_lengths; drop-lists of 100% of the data."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from ctcdoctor.cli import app

SPEC = """
import torch
from ctcdoctor import Setup

LABELS = {labels}
WIDTHS = {widths}


class Pooled(torch.nn.Module):
    \"\"\"(T, N, C) log-probabilities of {classes} classes, time pooled x{stride} (inputs (N, 4, W)).\"\"\"

    def __init__(self):
        super().__init__()
        self.pool = torch.nn.MaxPool1d({stride}, {stride})
        self.head = torch.nn.Linear(4, {classes})

    def forward(self, x):
        if {single_fails} and x.shape[0] == 1:
            raise RuntimeError("this model wants whole batches")
        return self.head(self.pool(x).transpose(1, 2)).log_softmax(-1).transpose(0, 1)


def batch(rows):
    labels = [LABELS[i] for i in rows]
    targets = torch.zeros(len(rows), max(1, max(len(label) for label in labels)), dtype=torch.long)
    for row, label in enumerate(labels):
        targets[row, : len(label)] = torch.tensor(label, dtype=torch.long)
    widths = torch.tensor([WIDTHS[i] for i in rows])
    inputs = torch.randn(len(rows), 4, int(widths.max()))
    return inputs, targets, widths, torch.tensor([len(label) for label in labels])


def build():
    loader = [batch(list(range(start, min(start + 5, len(LABELS))))) for start in range(0, len(LABELS), 5)]
    return Setup(model=Pooled(), loader=loader, blank=0, output_lengths={output_lengths})
"""


def _spec(tmp_path, labels=None, widths=None, classes=6, stride=2, output_lengths="lambda widths: widths // 2",
          single_fails=False):
    """A spec of 20 samples (4 batches of 5): labels of 1 to 3 letters, inputs 40 wide, pooled x2: 20 frames each."""
    labels = labels if labels is not None else [[1 + (i % 5), 1 + ((i + 1) % 5)] for i in range(20)]
    widths = widths if widths is not None else [40] * len(labels)
    path = tmp_path / "spec.py"
    path.write_text(SPEC.format(labels=labels, widths=widths, classes=classes, stride=stride, output_lengths=output_lengths,
                                single_fails=single_fails))
    return str(path)


def _scan(*args: str) -> tuple[int, dict, str]:
    """Exit code, JSON report, and the text report (with the status line on stderr)."""
    runner = CliRunner()
    document = runner.invoke(app, ["scan", *args, "--format", "json"])
    assert document.exit_code in (0, 1), document.output
    text = runner.invoke(app, ["scan", *args])
    assert text.exit_code == document.exit_code, text.output
    return document.exit_code, json.loads(document.stdout), text.output


def _codes(report: dict) -> set[str]:
    return {item["code"] for item in report["findings"]}


# ---------------------------------------------------------------- lengths CTC003 found wrong


def test_stale_output_lengths_give_way_to_measured_ones_for_the_margins_and_the_plot(tmp_path):
    """Setup.output_lengths say 40 frames (the input width) where the model pools x8 to 5: CTC003. The histogram, the
    tightest samples, CTC001 and the plot read the 5 measured frames, and say so, not 38 healthy spare frames."""
    from ctcdoctor.render.plot_scan import plot

    spec = _spec(tmp_path, labels=[[1, 2, 3, 4, 5, 1]] * 20, stride=8, output_lengths="lambda widths: widths")
    code, report, text = _scan(spec)
    result = report["result"]
    assert code == 1 and {"CTC001", "CTC003"} <= _codes(report)
    assert result["lengths_source"] == "measured" and result["lengths_rejected"] == "Setup.output_lengths"
    assert result["spare_frames"]["infeasible"] == 20 and result["spare_frames"]["max"] == -1  # 5 frames for 6 labels
    assert result["worst"][0]["frames"] == 5 and result["output_frames"]["max"] == 5
    assert "output lengths measured by probing the model: frames = floor(L / 8), not Setup.output_lengths (wrong: CTC003)" in text
    assert "from measured output lengths: Setup.output_lengths are wrong (CTC003)" in text
    title = plot(result).axes[0].get_title()
    assert "measured by probing the model" in title and "not Setup.output_lengths (wrong: CTC003)" in title


def test_declared_lengths_that_fit_the_output_are_still_read_as_declared(tmp_path):
    code, report, _ = _scan(_spec(tmp_path))
    assert code == 0 and report["result"]["lengths_source"] == "setup" and report["result"]["lengths_rejected"] is None


def test_stale_lengths_of_a_model_that_cannot_be_probed_show_no_margins_and_no_drop_list(tmp_path):
    """Measured lengths are not to be had: no histogram, no tightest samples, no drop-list, each said in one line."""
    spec = _spec(tmp_path, output_lengths="lambda widths: widths", single_fails=True)
    drop = tmp_path / "drop.txt"
    drop.write_text("7\n")  # an earlier run's list must not be read as this one's
    code, report, text = _scan(spec, "--drop-list", str(drop))
    result = report["result"]
    assert code == 1 and "CTC003" in _codes(report) and not {"CTC001", "CTC002"} & _codes(report)
    assert result["lengths_source"] == "unknown" and result["spare_frames"] == {"known": 0} and result["worst"] == []
    assert "spare frames per sample (" not in text and "sample  frames  labels" not in text
    assert "Setup.output_lengths disagree with the model's output (CTC003) and probing the model failed" in text
    assert drop.read_text() == "7\n" and result["drop_list"]["file"] is None  # the earlier list left as it was (trial s23)
    assert result["drop_list"]["refused"].startswith(
        "drop-list not written: 20 of 20 samples have no known output length (Setup.output_lengths are wrong (CTC003) "
        "and the model could not be probed)")
    assert "--drop alphabet,empty for a list without them" in " ".join(text.split())
    from ctcdoctor.render.plot_scan import plot

    axes = plot(result).axes[0]
    assert axes.get_title() == "20 samples; output lengths unknown:\nSetup.output_lengths are wrong (CTC003)"
    assert [item.get_text() for item in axes.texts] == ["no spare frames to show: the output lengths are unknown"]


# ---------------------------------------------------------------- drop-lists that would hide a fix in code


def test_no_drop_list_of_every_sample_when_the_model_downsamples_too_much(tmp_path):
    spec = _spec(tmp_path, labels=[[1, 2, 3, 4, 5, 1]] * 20, stride=8, output_lengths="lambda widths: widths // 8")
    drop = tmp_path / "drop.txt"
    code, report, text = _scan(spec, "--drop-list", str(drop))
    assert code == 1 and "CTC001" in _codes(report) and not drop.exists()
    assert report["result"]["drop_list"]["refused"] == (
        "drop-list not written: it would drop 20 of 20 samples (100%): 20 cannot be aligned because the model downsamples "
        "time ×8 (CTC001: fix the model); dropping them would hide that (--drop-anyway writes it all the same)")
    assert "drop-list not written: it would drop 20 of 20 samples (100%)" in " ".join(text.split())
    code, report, _ = _scan(spec, "--drop-list", str(drop), "--drop-anyway")
    assert drop.read_text().split() == [str(i) for i in range(20)] and report["result"]["drop_list"]["count"] == 20


def test_no_drop_list_hides_the_blank_as_a_label_however_few_samples_hold_it(tmp_path):
    """One sample of 20 (5%, under the share) holds the blank 0 as a label: an encoder off by one, CTC011."""
    labels = [[1, 2]] * 20
    labels[3] = [2, 0, 1]
    drop = tmp_path / "drop.txt"
    code, report, _ = _scan(_spec(tmp_path, labels=labels), "--drop-list", str(drop))
    assert code == 1 and "CTC011" in _codes(report) and not drop.exists()
    assert ("1 hold the blank index 0 as a label (CTC011: fix the label encoder)"
            in report["result"]["drop_list"]["refused"])
    _, report, _ = _scan(_spec(tmp_path, labels=labels), "--drop-list", str(drop), "--drop", "infeasible,empty")
    assert drop.read_text() == "" and report["result"]["drop_list"]["count"] == 0  # CTC011's samples are not dropped


def test_no_drop_list_hides_labels_the_output_layer_has_no_slot_for(tmp_path):
    labels = [[1, 2]] * 20
    labels[5] = [6, 1]
    drop = tmp_path / "drop.txt"
    code, report, _ = _scan(_spec(tmp_path, labels=labels), "--drop-list", str(drop))
    assert code == 1 and "CTC010" in _codes(report) and not drop.exists()
    assert "1 hold labels outside the model's 6 classes (CTC010: fix the output layer" in report["result"]["drop_list"]["refused"]


def test_a_drop_list_of_more_than_a_tenth_of_the_data_is_not_written_whatever_the_cause(tmp_path):
    """3 of 20 empty targets (CTC013, a warning): 15% is more than a drop-list is for; exit 0 as the findings say."""
    labels = [[1, 2]] * 20
    for row in (2, 9, 15):
        labels[row] = []
    drop = tmp_path / "drop.txt"
    code, report, _ = _scan(_spec(tmp_path, labels=labels), "--drop-list", str(drop))
    assert code == 0 and _codes(report) == {"CTC013"} and not drop.exists()
    assert report["result"]["drop_list"]["refused"] == (
        "drop-list not written: it would drop 3 of 20 samples (15%), more than 10%: find their cause in the findings "
        "above instead of dropping them (--drop-anyway writes it all the same)")


def test_a_small_drop_list_is_written_and_its_line_says_what_it_holds(tmp_path):
    labels = [[1, 2]] * 20
    labels[9] = []
    drop = tmp_path / "drop.txt"
    _, report, text = _scan(_spec(tmp_path, labels=labels), "--drop-list", str(drop))
    assert drop.read_text() == "9\n" and report["result"]["drop_list"]["count"] == 1
    assert (f"drop-list written to {drop}: 1 of 20 samples to drop (checked: cannot be aligned, empty target, label "
            "outside the classes or alphabet)") in " ".join(text.split())
    _, _, text = _scan(_spec(tmp_path), "--drop-list", str(drop))
    assert f"drop-list written to {drop}: empty, no sample to drop (checked: cannot be aligned" in " ".join(text.split())


def test_the_merge_decides_for_the_whole_data_set(tmp_path):
    """Each shard writes its part of the list; the merge, seeing CTC011 in the data set, writes none."""
    labels = [[1, 2]] * 20
    labels[12] = [0, 1]
    spec = _spec(tmp_path, labels=labels)
    parts = []
    for index in range(2):
        part = tmp_path / f"part{index}.json"
        result = CliRunner().invoke(app, ["scan", spec, "--shard", f"{index}/2", "--drop-list", str(tmp_path / f"d{index}.txt"),
                                          "--output", str(part)])
        assert result.exit_code in (0, 1), result.output
        parts.append(str(part))
    assert (tmp_path / "d0.txt").read_text() == "12\n"  # shard 0 reads batches 0 and 2: samples 0-4 and 10-14
    merged = tmp_path / "drop.txt"
    code, report, _ = _scan("merge", *parts, "--drop-list", str(merged))
    assert code == 1 and not merged.exists() and "(CTC011: fix the label encoder)" in report["result"]["drop_list"]["refused"]


def test_no_clean_manifest_from_a_refused_drop_list(tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"duration": 0.05, "text": "a long sentence"}) + "\n" for _ in range(4)), encoding="utf-8")
    clean = tmp_path / "clean.jsonl"
    clean.write_text("stale\n")
    code, report, _ = _scan("--manifest", str(manifest), "-a", " abcdefghijklmnopqrstuvwxyz", "--frames", "floor(L * 100) // 4 + 1",
                            "--clean-manifest", str(clean))
    assert code == 1 and clean.read_text() == "stale\n" and "clean_manifest" not in report["result"]["drop_list"]
    assert report["result"]["drop_list"]["refused"].startswith("drop-list not written: it would drop 4 of 4 samples (100%)")
    assert not list(tmp_path.glob("ctcdoctor-drop-*"))


# ---------------------------------------------------------------- lengths the model returns, for one batch only

OWN_LENGTHS_SPEC = """
import torch
from ctcdoctor import Setup


class OwnLengths(torch.nn.Module):
    \"\"\"Returns (output (T, N, C), lengths), as DeepSpeech does, and only takes inputs 40 wide (a fixed-size
    layer): probing it at other widths fails.\"\"\"

    def __init__(self):
        super().__init__()
        self.pool = torch.nn.MaxPool1d(2, 2)
        self.head = torch.nn.Linear(4, 6)

    def forward(self, x):
        if x.shape[-1] != 40:
            raise RuntimeError("this model takes inputs 40 wide")
        out = self.head(self.pool(x).transpose(1, 2)).log_softmax(-1).transpose(0, 1)
        return out, torch.full((x.shape[0],), out.shape[0])


def batch(long):
    targets = torch.randint(1, 6, (5, 25 if long else 3))
    return torch.randn(5, 4, 40), targets, torch.full((5,), 40), torch.full((5,), targets.shape[1])


def build():
    return Setup(model=OwnLengths(), loader=[batch(True)] + [batch(False) for _ in range(3)], blank=0)
"""


def test_samples_without_an_output_length_are_named_with_the_fix_in_the_report_and_the_plot(tmp_path):
    """From a trial on DeepSpeech: `check` pointed at `scan` "which runs the model on every batch", scan then
    checked 5 of 20 samples without saying how to check the rest, and its plot's title counted all 20 over a histogram
    of 5."""
    from ctcdoctor.render.plot_scan import plot

    path = tmp_path / "own.py"
    path.write_text(OWN_LENGTHS_SPEC)
    _, report, _ = _scan(str(path))
    (ctc001,) = [item for item in report["findings"] if item["code"] == "CTC001"]
    assert "Only the 5 samples of the batches the model ran on were checked (15 more were read)" in ctc001["message"]
    assert "probing it for the other samples failed (this model takes inputs 40 wide)" in ctc001["message"]
    assert "set Setup.output_lengths (input lengths -> output frames, the model's formula) to check every sample" \
        in ctc001["message"]
    title = plot(report["result"]).axes[0].get_title()
    assert title.startswith("5 of 20 samples (the others have no known output length);\noutput lengths")

    runner = CliRunner()
    checked = json.loads(runner.invoke(app, ["check", str(path), "--select", "CTC001", "--format", "json"]).stdout)
    (ctc001,) = checked["findings"]
    assert "`ctcdoctor scan` on the same spec estimates theirs by probing the model" in ctc001["message"]
    assert "runs the model on every batch" not in ctc001["message"]
