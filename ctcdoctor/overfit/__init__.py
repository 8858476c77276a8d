"""The single-sample overfit test: `train` runs it, `diagnose` explains a failure (CTC070-CTC072).

`result` holds the settings and the result data; `curve` summarises the loss curve.
"""
