"""ctcdoctor: find out why a CTC model will not learn.

The top level stays light (no torch import) so the CLI starts fast.
"""
from ctcdoctor.protocol import Setup

__version__ = "0.1.0"
__all__ = ["Setup", "__version__"]
