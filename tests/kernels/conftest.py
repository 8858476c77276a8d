import os

# Triton reads TRITON_INTERPRET when a kernel is decorated, so it must be set before
# ctcdoctor.kernels.triton_ctc is imported. Without CUDA the interpreter is the only way to run
# the kernels; with CUDA, leave the choice to whoever runs the tests.
try:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass

# The differential test shares the peaky-output strategies and the float64 yardstick with the
# CPU property test in tests/ctc.
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ctc"))
