"""The overfit test: `train.run_overfit` runs it; the steps live in modules of one job each.

`prepare` takes the samples and runs the static checks; `loss` picks the loss that trains (the user's
criterion or ctcdoctor's); `loop` trains and judges the fit in eval mode; `final` measures the end state
and compares the modes (`stochastic` names what differs between them); `probe` is `--lr-probe`;
`several` the small-batch verdict; `rules` classifies a failure, `explain` words it, and `diagnose`
ties them together and documents CTC070-CTC074. `result` holds the settings and the result data;
`curve` summarises the loss curve.
"""
