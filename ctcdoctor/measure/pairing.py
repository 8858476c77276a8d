"""What CTC016 asks for: the samples whose inputs the collate paired with another sample's labels.

The pairing is found while the batches are read (`ctcdoctor.load.batches.KeepOrder` collates each item alone and
matches it to its position in the batch); this module only gathers it over the batches checked."""
from __future__ import annotations

from dataclasses import dataclass

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import numbered_by_index
from ctcdoctor.registry import SkipCheck


@dataclass(frozen=True)
class Mispaired:
    """Samples of the checked batches that came with another sample's inputs."""

    samples: tuple[int, ...]
    """Their numbers (data set indices)."""
    batches: tuple[int, ...]
    """The batches that hold them."""
    batch_sizes: tuple[int, ...]
    """How many samples each of those batches holds."""
    example: tuple[int, int, int, int]
    """(batch, sample, input length it came with, its own input length): the first of them."""
    sorted_inputs: bool
    """Every such batch holds its inputs in length order (a collate that sorts the inputs alone)."""


@provides("mispaired")
def _mispaired(context: Context) -> Mispaired | None:
    if not numbered_by_index(context.setup.loader):
        raise SkipCheck("the batches do not come from a DataLoader over a map-style data set (a class around one, a "
                        "list of batches, or the batch overfit makes), so no item can be collated alone to compare",
                        applicable=False)
    hit = [batch for batch in context.batches if batch.mispaired]
    if not hit:
        return None
    first = hit[0]
    position, given, own = first.mispaired[0]
    lengths = [batch.input_lengths.tolist() for batch in hit]
    return Mispaired(
        samples=tuple(batch.sample_id(entry[0]) for batch in hit for entry in batch.mispaired),
        batches=tuple(batch.index for batch in hit),
        batch_sizes=tuple(batch.size for batch in hit),
        example=(first.index, first.sample_id(position), given, own),
        sorted_inputs=all(values == sorted(values, reverse=True) or values == sorted(values) for values in lengths),
    )
