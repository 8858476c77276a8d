"""The streamed scan against the whole-table checks, and shards merged against one scan.

1. For random data sets (padded and concatenated targets, negative and overlong lengths, blanks,
   out-of-range labels, empty targets, infeasible and tight samples, target_lengths that count
   the padding), the findings judged from the streamed `Summary` equal, field by field, those of
   the real checks of `checks/lengths.py` and `checks/labels.py` run on the whole `TargetTable`:
   the scan words nothing differently.
2. For random data sets split into N = 1..5 shards of uneven size (a DataLoader over a map-style
   data set, and a plain list of batches), merging the shards' states gives the report of one scan.
"""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctcdoctor.checks.labels import blank_in_targets, empty_targets, label_out_of_range, target_lengths_inconsistent
from ctcdoctor.checks.lengths import infeasible_alignment, tight_length_budget
from ctcdoctor.config import Settings
from ctcdoctor.load.batches import build_target_table, normalise_batch
from ctcdoctor.measure.labels import find_padding_counted
from ctcdoctor.measure.lengths import OutputLengths
from ctcdoctor.protocol import Setup
from ctcdoctor.registry import SkipCheck
from ctcdoctor.scan import findings as streamed
from ctcdoctor.scan.counts import IntCounts
from ctcdoctor.scan.droplist import DropWriter, merge_lists, parse_reasons, part_lists
from ctcdoctor.scan.run import ScanOptions, scan_setup
from ctcdoctor.scan.sources import ChunkBuilder, Shard
from ctcdoctor.scan.state import judge, merge_states
from ctcdoctor.scan.summary import Summary

NUM_CLASSES = 6


def make_raw_batches(seed: int, samples: int, batch_size: int, concatenated: bool, messy: bool = True) -> list[tuple]:
    generator = torch.Generator().manual_seed(seed)
    raws = []
    for start in range(0, samples, batch_size):
        size = min(batch_size, samples - start)
        lengths = torch.randint(0, 7, (size,), generator=generator)
        low, high = (-1, NUM_CLASSES + 1) if messy else (1, NUM_CLASSES)
        if concatenated:
            extra = int(messy and torch.rand(1, generator=generator) < 0.2)
            targets = torch.randint(low, high, (int(lengths.sum()) + extra,), generator=generator)
        else:
            targets = torch.randint(low, high, (size, 5), generator=generator)  # lengths up to 6 > width 5
        if messy and size > 1 and torch.rand(1, generator=generator) < 0.2:
            lengths[1] = -1
        input_lengths = torch.randint(1, 30, (size,), generator=generator)
        raws.append((torch.zeros(size, 30), targets, input_lengths, lengths))
    return raws


#: How `make_padded_batches` sets target_lengths: "counted" the padded width for every sample (CTC012, padding
#: counted); "inner" the same, with a blank inside one label (an encoding that uses the blank: CTC011); "mixed"
#: the width in some batches and the true lengths in others (still CTC012); "ragged" the width for some samples
#: of a batch and the true length for others (the blanks inside those lengths are labels: CTC011).
PADDING_KINDS = ("counted", "inner", "mixed", "ragged")


def make_padded_batches(seed: int, samples: int, batch_size: int, kind: str) -> list[tuple]:
    """Labels 1..C-1 padded with the blank 0, with target_lengths set as `kind` says."""
    generator = torch.Generator().manual_seed(seed)
    raws = []
    for start in range(0, samples, batch_size):
        size = min(batch_size, samples - start)
        real = torch.randint(0, 7, (size,), generator=generator)
        width = int(real.max()) + int(torch.randint(0, 2, (1,), generator=generator))  # sometimes a padded column more
        targets = torch.zeros(size, width, dtype=torch.long)
        for row, length in enumerate(real.tolist()):
            targets[row, :length] = torch.randint(1, NUM_CLASSES, (length,), generator=generator)
        counted = kind != "mixed" or bool(torch.rand(1, generator=generator) < 0.5)
        lengths = torch.full((size,), width) if counted else real.clone()
        if kind == "inner" and start == 0 and width >= 3:
            targets[0, 1] = 0  # a blank between labels (or the start of the padding moved one step left)
            targets[0, 2] = targets[0, 2] if int(real[0]) > 2 else NUM_CLASSES - 1
        if kind == "ragged" and start == 0 and size > 1:
            lengths[1] = real[1]
        if torch.rand(1, generator=generator) < 0.1:
            lengths = lengths + 1  # past the padded width: CTC012 says that too
        input_lengths = torch.randint(1, 30, (size,), generator=generator)
        raws.append((torch.zeros(size, 30), targets, input_lengths, lengths))
    return raws


def frames_of(input_lengths: torch.Tensor) -> torch.Tensor:
    return torch.div(input_lengths, 2, rounding_mode="floor")


def _unless_skipped(check, *args, **kwargs) -> list:
    """A check's findings; none when it skips itself (CTC011 when the blanks are padding that the lengths count)."""
    try:
        return check(*args, **kwargs)
    except SkipCheck:
        return []


def table_findings(batches, alphabet) -> list[dict]:
    table = build_target_table(batches)
    lengths = frames_of(table.input_lengths)
    known = OutputLengths(lengths, (lengths,), "setup", "from Setup.output_lengths")
    padding = find_padding_counted(table, 0)
    found = (infeasible_alignment(table, known, padding_counted=padding) + tight_length_budget(table, known, padding)
             + label_out_of_range(table, NUM_CLASSES) + _unless_skipped(blank_in_targets, table, 0, alphabet, padding_counted=padding)
             + target_lengths_inconsistent(table, padding) + empty_targets(table))
    return [item.to_dict() for item in found]


def streamed_summary(batches, parts: int = 1) -> Summary:
    """The summary of the batches, fed in `parts` chunks and merged in `parts` summaries (1: one of each)."""
    summaries = []
    for share in np.array_split(np.arange(len(batches)), parts):
        summary, builder = Summary(), ChunkBuilder()
        for index in share.tolist():
            builder.add_batch(batches[index])
        chunk = builder.take()
        if chunk is not None:
            summary.add(chunk, frames_of(torch.from_numpy(chunk.input_lengths)).numpy(), NUM_CLASSES, 0)
        summaries.append(Summary.from_json(summary.to_json()))  # as a shard's part file carries it
    whole = summaries[0]
    for other in summaries[1:]:
        whole.merge(other)
    return whole


def summary_findings(batches, alphabet, parts: int = 1) -> list[dict]:
    summary = streamed_summary(batches, parts)
    padding = summary.padding_counted
    judged = summary.judged(padding)

    class Known:
        known, source, detail = True, "setup", "from Setup.output_lengths"

    found = (streamed.infeasible_alignment(judged, Known) + streamed.tight_length_budget(judged, Known)
             + streamed.label_out_of_range(judged, NUM_CLASSES)
             + _unless_skipped(streamed.blank_in_targets, judged, 0, alphabet, padding)
             + streamed.target_lengths_inconsistent(judged, 0, padding) + streamed.empty_targets(judged))
    return [item.to_dict() for item in found]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), samples=st.integers(1, 90), batch_size=st.integers(1, 17), concatenated=st.booleans(),
       alphabet=st.sampled_from([None, "abcde", "abcdef"]))
def test_streamed_findings_equal_the_whole_table_checks(seed, samples, batch_size, concatenated, alphabet):
    raws = make_raw_batches(seed, samples, batch_size, concatenated)
    batches, first = [], 0
    for index, raw in enumerate(raws):
        batches.append(normalise_batch(raw, index, first))
        first += batches[-1].size
    assert summary_findings(batches, alphabet) == table_findings(batches, alphabet)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), samples=st.integers(1, 60), batch_size=st.integers(1, 9),
       kind=st.sampled_from(PADDING_KINDS), parts=st.integers(1, 3))
def test_streamed_findings_equal_the_whole_table_checks_when_lengths_may_count_the_padding(seed, samples, batch_size, kind,
                                                                                          parts):
    """Targets padded with the blank: whether the lengths count the padding (CTC012, with the true lengths for CTC001
    and CTC002) or the blanks are labels (CTC011), the scan says what `check` says, also merged from parts."""
    raws = make_padded_batches(seed, samples, batch_size, kind)
    batches, first = [], 0
    for index, raw in enumerate(raws):
        batches.append(normalise_batch(raw, index, first))
        first += batches[-1].size
    assert summary_findings(batches, "abcde", parts) == table_findings(batches, "abcde")


def table_drops(batches, reasons: frozenset[str]) -> list[int]:
    """The samples `check`'s tables say cannot train: judged with the true lengths when the lengths count the padding."""
    table = build_target_table(batches)
    frames = frames_of(table.input_lengths)
    padding = find_padding_counted(table, 0)
    required = padding.required if padding is not None else table.required_frames()
    is_blank = table.mask & (table.labels == 0)
    if padding is not None:  # the padding's blanks are no labels
        is_blank &= ~torch.isin(torch.arange(table.size), torch.tensor(padding.samples, dtype=torch.long)).unsqueeze(1)
    drop = torch.zeros(table.size, dtype=torch.bool)
    if "infeasible" in reasons:
        drop |= frames < required
    if "tight" in reasons:
        drop |= (frames >= required) & (required > 0) & (frames < 1.25 * required)
    if "empty" in reasons:
        drop |= table.lengths == 0
    if "alphabet" in reasons:
        drop |= (is_blank | (table.mask & ((table.labels < 0) | (table.labels >= NUM_CLASSES)))).any(dim=1)
    return drop.nonzero().flatten().tolist()


def streamed_drops(batches, reasons: frozenset[str], parts: int, folder) -> tuple[list[int], str]:
    """The drop-list as the scan writes it: each of `parts` shards its own list as it streams, merged as `scan merge` does."""
    infos, summaries = [], []
    for index, share in enumerate(np.array_split(np.arange(len(batches)), parts)):
        summary, builder = Summary(), ChunkBuilder()
        writer = DropWriter(folder / f"drop{index}.txt", reasons)
        for count, position in enumerate(share.tolist(), 1):
            builder.add_batch(batches[position])
            chunk = builder.take() if count % 2 == 0 or count == len(share) else None  # chunks of two batches
            if chunk is not None:
                frames = frames_of(torch.from_numpy(chunk.input_lengths)).numpy()
                summary.add(chunk, frames, NUM_CLASSES, 0)
                writer(chunk, frames, NUM_CLASSES, 0)
        infos.append(writer.close(summary.padding_counted, keep_other=parts > 1))
        summaries.append(summary)
    whole = summaries[0]
    for other in summaries[1:]:
        whole.merge(other)
    merge_lists(part_lists(infos, whole.padding_counted), folder / "drop.txt")
    ids = [int(line) for line in (folder / "drop.txt").read_text().split()]
    return ids, "true" if whole.padding_counted else "given"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), samples=st.integers(1, 60), batch_size=st.integers(1, 9),
       kind=st.sampled_from((*PADDING_KINDS, "messy")), parts=st.integers(1, 3),
       reasons=st.sampled_from(["infeasible,empty,alphabet", "alphabet", "infeasible,tight", "infeasible,empty,alphabet,tight"]))
def test_the_streamed_drop_list_equals_the_whole_table_judged_as_the_report_is(seed, samples, batch_size, kind, parts, reasons,
                                                                              tmp_path_factory):
    """Whether the lengths count the padding is known at the end; the drop-list, written as the scan streams (and by
    shards whose own decision may differ), holds the samples the whole table says cannot train under that decision."""
    raws = (make_raw_batches(seed, samples, batch_size, concatenated=seed % 2 == 1) if kind == "messy"
            else make_padded_batches(seed, samples, batch_size, kind))
    batches, first = [], 0
    for index, raw in enumerate(raws):
        batches.append(normalise_batch(raw, index, first))
        first += batches[-1].size
    chosen = parse_reasons(reasons)
    ids, lengths = streamed_drops(batches, chosen, parts, tmp_path_factory.mktemp("drops"))
    assert ids == table_drops(batches, chosen)
    assert lengths == ("true" if find_padding_counted(build_target_table(batches), 0) is not None else "given")


def test_int_counts_percentiles_are_those_of_the_sorted_values():
    values = np.random.default_rng(0).integers(-50, 400, 5001)
    counts = IntCounts()
    for part in np.array_split(values, 7):
        counts.add(part)
    ordered = np.sort(values)
    for q in (0.0, 0.01, 0.05, 0.5, 0.99, 1.0):  # nearest rank: numpy's "inverted_cdf"
        assert counts.quantile(q) == np.quantile(values, q, method="inverted_cdf")
    assert (counts.minimum, counts.maximum, counts.total) == (ordered[0], ordered[-1], len(values))


def test_p99_of_a_few_samples_is_their_largest():
    counts = IntCounts()
    counts.add(np.array([52, 0, 9, 11, 15]))  # the labels per sample a new user scanned
    assert (counts.quantile(0.5), counts.quantile(0.99), counts.quantile(0.01)) == (11, 52, 0)


# ---------------------------------------------------------------- shards


class HalvingModel(torch.nn.Module):
    """(T, N, C) log-probabilities with T = input width // 2: the frames the set-up declares."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(inputs.shape[1] // 2, inputs.shape[0], NUM_CLASSES).log_softmax(-1)


class Items(torch.utils.data.Dataset):
    def __init__(self, items: list[tuple]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple:
        return self.items[index]


def collate(items: list[tuple]) -> tuple:
    labels = [item[1] for item in items]
    width = max(len(label) for label in labels) if labels else 0
    targets = torch.zeros(len(items), max(width, 1), dtype=torch.long)
    for row, label in enumerate(labels):
        targets[row, : len(label)] = label
    lengths = torch.tensor([len(label) for label in labels])
    return torch.zeros(len(items), 30), targets, torch.tensor([item[0] for item in items]), lengths


def make_setup(seed: int, samples: int, batch_size: int, kind: str, lengths: str = "setup") -> Setup:
    if kind == "list":
        loader = make_raw_batches(seed, samples, batch_size, concatenated=seed % 2 == 1)
    else:
        generator = torch.Generator().manual_seed(seed)
        items = [(int(torch.randint(1, 30, (1,), generator=generator)),
                  torch.randint(0, NUM_CLASSES + 1, (int(torch.randint(0, 8, (1,), generator=generator)),), generator=generator))
                 for _ in range(samples)]
        loader = torch.utils.data.DataLoader(Items(items), batch_size=batch_size, collate_fn=collate)
    return Setup(model=HalvingModel(), loader=loader, alphabet="abcde", output_lengths=frames_of if lengths == "setup" else None)


def comparable(state, worst: int = 10) -> tuple:
    found, results, result = judge(state, Settings(), worst)
    result = {key: value for key, value in result.items() if key not in ("seconds", "samples_per_second", "parts", "state")}
    return [item.to_dict() for item in found], [(item.name, item.status) for item in results], result


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), samples=st.integers(1, 70), batch_size=st.integers(1, 9), shards=st.integers(1, 5),
       kind=st.sampled_from(["list", "dataloader"]), lengths=st.sampled_from(["setup", "probed"]))
def test_merged_shards_give_the_report_of_one_scan(seed, samples, batch_size, shards, kind, lengths):
    whole = scan_setup(make_setup(seed, samples, batch_size, kind, lengths), "spec", ScanOptions())
    parts = [scan_setup(make_setup(seed, samples, batch_size, kind, lengths), "spec", ScanOptions(shard=Shard(index, shards)))
             for index in reversed(range(shards))]  # any order
    sizes = [part.summary.samples for part in parts]
    assert sum(sizes) == samples  # nothing padded, nothing dropped
    assert comparable(merge_states(parts)) == comparable(whole)


def test_blanks_that_only_trail_the_labels_of_a_batch_of_equal_lengths_are_counted_padding():
    inputs = torch.zeros(3, 40)
    padded = torch.tensor([[1, 2, 3, 0, 0], [4, 1, 0, 0, 0], [2, 2, 4, 1, 3]])  # zeros pad rows 0 and 1
    counted = normalise_batch((inputs, padded, torch.full((3,), 40), torch.full((3,), 5)), 0, 0)
    found = {item["code"]: item for item in summary_findings([counted], None)}
    assert "CTC011" not in found
    assert found["CTC012"]["message"].startswith("target_lengths count the padding: 2 of 3 samples end in padding zeros")
    assert "sample 1 has 2 labels then 3 padding zeros, target_length 5" in found["CTC012"]["message"]
    assert found["CTC012"]["evidence"]["padding_counted"] == {"samples": [0, 1], "count": 2}
    inner = normalise_batch((inputs, torch.tensor([[1, 0, 3, 0, 0], [4, 1, 0, 0, 0], [2, 2, 4, 1, 3]]),
                             torch.full((3,), 40), torch.full((3,), 5)), 0, 0)  # a blank between labels: an encoding
    found = {item["code"]: item for item in summary_findings([inner], None)}
    assert "CTC012" not in found and found["CTC011"]["hint"].startswith("Shift the encoding")
    assert "trailing_only" not in found["CTC011"]["evidence"]


def test_blanks_read_without_their_batches_are_worded_as_padding_most_likely():
    """`Setup.sample_labels` gives labels without their batch: whether the lengths are the padded width is unknown."""
    builder = ChunkBuilder()
    builder.add_arrays(np.arange(3), np.array([5, 5, 5]), np.array([1, 2, 3, 0, 0, 4, 1, 0, 0, 0, 2, 2, 4, 1, 3]),
                       np.array([40, 40, 40]))
    summary = Summary()
    chunk = builder.take()
    summary.add(chunk, frames_of(torch.from_numpy(chunk.input_lengths)).numpy(), NUM_CLASSES, 0)
    assert not summary.padding_counted
    (found,) = streamed.blank_in_targets(summary, 0, None)
    assert found.evidence["trailing_only"] is True and "padding that target_lengths count, most likely" in found.message
    assert found.hint.startswith("If those are padding, pass the true lengths")
