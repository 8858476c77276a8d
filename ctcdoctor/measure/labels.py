"""What the label checks ask for: every scanned target in one table, the blank, the alphabet."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import TargetTable, build_target_table


@provides("blank")
def _blank(context: Context) -> int:
    return context.setup.blank


@provides("alphabet")
def _alphabet(context: Context):
    return context.setup.alphabet


@provides("targets")
def _targets(context: Context) -> TargetTable:
    return build_target_table(context.batches)




@dataclass(frozen=True)
class PaddingCounted:
    """Targets padded with the blank whose target_lengths count the padding (`torch.full((N,), S)`): the blanks in
    the targets are the padding, not labels. Lengths and frame counts here are the true ones (before the padding)."""

    samples: tuple[int, ...]
    """Samples whose target_length covers padding."""
    given: torch.Tensor
    """(M,) target_lengths as given."""
    real_lengths: torch.Tensor
    """(M,) labels before the padding (as given for the other samples)."""
    repeats: torch.Tensor
    """(M,) adjacent equal labels within the true lengths."""
    blank: int = 0
    """The padding value: the blank."""

    @property
    def required(self) -> torch.Tensor:
        """(M,) frames a CTC alignment needs with the true lengths: U + repeats."""
        return self.real_lengths + self.repeats


def find_padding_counted(targets: TargetTable, blank: int) -> PaddingCounted | None:
    """The pattern, or None: every blank in the targets sits in one trailing run of its row (a real label before it
    in some row), and in each batch holding such a row every target_length is the same (the padded width)."""
    labels, mask = targets.labels, targets.mask
    is_blank = mask & (labels == blank)
    rows = is_blank.any(dim=1)
    if int(rows.sum()) < 2 or labels.shape[1] == 0:
        return None
    width = labels.shape[1]
    positions = torch.arange(width).unsqueeze(0)
    first = torch.where(is_blank, positions, width).min(dim=1).values
    trailing = (positions >= first.unsqueeze(1)) & mask
    if not bool((trailing == is_blank).all()) or not bool((first[rows] > 0).any()):
        return None  # a blank between labels: an encoding that uses the blank (CTC011), not padding
    for batch in targets.batch_index[rows].unique().tolist():
        given = targets.lengths[targets.batch_index == batch]
        if given.unique().numel() != 1:
            return None  # true lengths for some samples: the blanks are not all padding
    real = torch.where(rows, first, targets.valid_lengths)
    true_mask = positions < real.unsqueeze(1)
    repeats = ((labels[:, :-1] == labels[:, 1:]) & true_mask[:, 1:]).sum(dim=1)
    return PaddingCounted(tuple(rows.nonzero().flatten().tolist()), targets.lengths, real, repeats, blank)


@provides("padding_counted")
def _padding_counted(context: Context) -> PaddingCounted | None:
    from ctcdoctor.frameworks.hf_model import HFCTCModel

    if isinstance(getattr(context.setup, "model", None), HFCTCModel):
        return None  # labels padded with config.pad_token_id: CTC107 names it in the collator's terms
    return find_padding_counted(context.targets, context.setup.blank)
