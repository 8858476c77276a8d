"""The built-in checks, one module per concern (installed as `ctcdoctor.checks`).

Check modules import torch only inside functions, so `ctcdoctor explain` stays fast.
"""
