"""Codes raised outside the check registry: by the runner and by `overfit`."""
from ctcdoctor.registry import document

document(
    "CTC999",
    "error",
    "a check crashed",
    """
    **What it means.** A check, or an input it needed (running the model on a batch,
    probing the layout), raised an exception. The finding carries the exception text;
    the other checks still ran.

    **Example.** `model(inputs)` raises `RuntimeError: mat1 and mat2 shapes cannot be
    multiplied` on batch 0: every check that needs the model output is skipped and one
    CTC999 names the exception.

    **Fix.** Read the exception in the message. If it comes from your model or data, fix
    it there (run `model(inputs)` on one batch by hand); if it comes from ctcdoctor, run
    again with `--debug` and report the traceback.
    """,
)
