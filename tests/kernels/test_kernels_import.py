import subprocess
import sys


def test_package_imports_without_triton():
    # A CPU-only install has no triton: the package must still import and say so.
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import ctcdoctor.kernels as k\n"
        "assert k.triton_available() is False\n"
        "try:\n    k.forward_backward()\nexcept RuntimeError as e:\n    assert 'triton' in str(e)\n"
        "else:\n    raise AssertionError('no error')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
