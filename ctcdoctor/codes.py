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

document(
    "CTC070",
    "error",
    "single-sample overfit failed within its budget",
    """
    **What it means.** `ctcdoctor overfit` trained a copy of the model on one sample (or a
    handful) for the whole step budget, and the greedy decode never matched the target
    stably. The loss neither went non-finite nor collapsed to all-blank outputs: it just
    did not get there. A healthy CTC set-up memorises one sample in a few hundred steps.

    **Example.** `error CTC070 after 500 steps sample 0 decodes as "dier" for "dinner"
    (CER 0.33); the loss fell 4.1 -> 0.21 and plateaued.` The decode drops the doubled
    "nn": the model never learned the blank that must separate two equal labels.

    **Fix.** Read the likely causes in the finding. If the loss was still falling, give it
    more steps (`--steps`) or a higher `--lr`. If it plateaued, look at the static findings
    listed with it (a tight length budget, CTC002; un-normalised inputs), and run again with
    `--freeze-except-head`: if the head alone can fit, the feature extractor is the problem
    (frozen, dead ReLUs, too much downsampling); if not, the problem is the loss wiring.
    """,
)

document(
    "CTC071",
    "error",
    "overfit collapsed to blank-only output",
    """
    **What it means.** At the end of the overfit run the model outputs blank on (almost)
    every frame, so the greedy decode is empty. Every CTC model passes through an all-blank
    phase early in training (blank is the cheapest way to lower the loss at first); a model
    that cannot leave it in the step budget has a problem that keeps it there.

    **Example.** `error CTC071 after 300 steps blank is the argmax on 100% of the 24 frames
    of sample 0 (mean p(blank) 0.999) and the decode is empty, for target "dinner"; the head's
    bias favours blank by 12.0 nats and the learning rate is 1e-05.`

    **Fix.** The usual causes, in order: a learning rate far too small for the optimizer
    (Adam wants about 1e-3 here); a head initialised to favour blank (a large blank bias);
    layers frozen by mistake (`requires_grad=False`) or a feature extractor whose output is
    constant (dead ReLUs, inputs not normalised); too few frames per label (CTC002). The
    finding lists the ones it measured. If the loss was still falling, give it more steps.
    """,
)

document(
    "CTC072",
    "error",
    "overfit loss diverged, oscillated or went non-finite",
    """
    **What it means.** While overfitting one sample the loss went NaN or infinite, ended
    well above where it started, or jumped up and down instead of settling. The finding
    gives the step where it happened.

    **Example.** `error CTC072 the loss went non-finite (nan) at step 37; it had fallen
    from 4.2 to 3.1 by step 20, then rose to 85 at step 30.`

    **Fix.** Lower the learning rate (ten times is a good first try: `--lr`), keep gradient
    clipping on, compute CTC in float32 (CTC025), and make sure the model emits
    log-probabilities (CTC020, CTC024): `log` of a softmax underflows to `-inf`. An
    optimizer built for SGD learning rates (0.1-1) and used with Adam diverges like this.
    """,
)
