"""Pairing checks: does each sample's label come with its own input?"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.registry import check, finding
from ctcdoctor.render.phrases import listing, plural

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.measure.pairing import Mispaired


@check("CTC016", "error", "the collate pairs inputs with other samples' labels")
def inputs_paired_with_other_labels(mispaired: Mispaired | None) -> list[Finding]:
    """
    **What it checks.** Each sample of a batch comes with its own input. ctcdoctor collates
    each item of the first batches alone (with the loader's own `collate_fn`), finds its
    position in the batch by its labels, and compares the input length there with the item's
    own. When the batch holds exactly the items' input lengths but some label sits beside
    another item's length, the collate moved the inputs without their labels. Only a
    `DataLoader` over a map-style data set can be checked this way.

    **Why it matters.** Every such sample trains on another utterance's (or image's)
    transcript. Nothing crashes; the loss falls slowly and plateaus, `overfit --sample N`
    (which collates one item) fits, and the full run never learns.

    **Example.** A collate sorts the features longest first for `pack_padded_sequence` but
    builds the transcripts in the original order: `error CTC016 batch 0: 7 of 8 samples come
    with another sample's input: sample 23 (its labels) comes with input length 58, its own
    is 49 (collated alone); the inputs are in length order, the labels are not: the collate
    sorts the inputs (or their lengths) alone.`

    **Fix.** Reorder the items, not one field: sort the list the collate receives
    (`batch = sorted(batch, key=lambda item: item[0].shape[0], reverse=True)`) before
    splitting it into inputs, targets and lengths, so that each input moves with its labels.
    """
    if mispaired is None:
        return []
    batch, sample, given, own = mispaired.example
    first_size = mispaired.batch_sizes[0]
    count = len(mispaired.samples)
    where = (f"batch {batch}: {count} of {plural(first_size, 'sample')} come" if len(mispaired.batches) == 1 else
             f"{count} samples in {plural(len(mispaired.batches), 'batch', 'batches')} ({listing([str(b) for b in mispaired.batches])}) come")
    why = ("; the inputs are in length order, the labels are not: the collate sorts the inputs (or their lengths) alone"
           if mispaired.sorted_inputs else "; the collate reorders the inputs (or their lengths) without their labels")
    message = (f"{where} with another sample's input: sample {sample} (its labels) comes with input length {given}, its "
               f"own is {own} (collated alone){why}. Until this is fixed, findings on frames per label (CTC001, "
               "CTC002) judge those labels by other samples' inputs.")
    hint = ("Reorder the items, not one field: sort the list the collate receives (batch = sorted(batch, key=lambda item: "
            "item[0].shape[0], reverse=True)) before splitting it into inputs, targets and lengths, so each input moves "
            "with its labels.")
    return [finding("CTC016", message, hint, {"samples": list(mispaired.samples)[:20], "batches": list(mispaired.batches),
                                              "example": {"batch": batch, "sample": sample, "input_length": given,
                                                          "own_input_length": own}})]
