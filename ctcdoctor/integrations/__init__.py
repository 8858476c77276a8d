"""Thin adapters that run ctcdoctor inside a framework's training loop.

`ctcdoctor.integrations.transformers.CTCDoctorCallback` is a `transformers.TrainerCallback`. Each module
here imports its framework at module level, so import the module you need (never this package's
contents from elsewhere in ctcdoctor): `import ctcdoctor` works without any framework installed.
"""
