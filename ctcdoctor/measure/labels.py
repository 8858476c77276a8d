"""What the label checks ask for: every scanned target in one table, the blank, the alphabet."""
from __future__ import annotations

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


