"""Helpers for the tests: tiny CTC set-ups built in memory, and a way to run checks on them.

A module of its own (not conftest.py): several test folders have a conftest, and
`from ctchelpers import ...` would pick whichever was imported first.
"""
from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import runpy
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.engine import Context, Options, run_checks
from ctcdoctor.load.state import CHECK_THREADS, seeded, torch_threads
from ctcdoctor.registry import select_checks as select

ROOT = Path(__file__).resolve().parents[1]


class TinyCTC(nn.Module):
    """(N, F, L) features -> conv1d with `stride` along time -> C classes, with a chosen head."""

    def __init__(self, features: int = 4, classes: int = 6, stride: int = 2, head: str = "log_softmax", layout: str = "TNC"):
        super().__init__()
        self.conv = nn.Conv1d(features, 16, kernel_size=stride, stride=stride)
        self.fc = nn.Linear(16, classes)
        self.head = head
        self.layout = layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.conv(x).transpose(1, 2)  # (N, T, 16)
        out = self.fc(torch.tanh(hidden))  # (N, T, C)
        if self.head == "log_softmax":
            out = out.log_softmax(-1)
        elif self.head == "softmax":
            out = out.softmax(-1)
        elif self.head == "wrong_axis":
            out = out.log_softmax(1)  # over time in (N, T, C)
        elif self.head == "half":
            out = out.log_softmax(-1).half()
        return out if self.layout == "NTC" else out.transpose(0, 1)


def make_batches(
    lengths: list[int],
    labels: list[list[int]],
    features: int = 4,
    batch_size: int = 4,
    scale: float = 1.0,
    offset: float = 0.0,
    concatenated: bool = False,
    seed: int = 0,
) -> list[tuple]:
    """Batches of random features (N, F, max L) with padded (or 1-D) targets."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, len(lengths), batch_size):
        chunk_lengths = lengths[start : start + batch_size]
        chunk_labels = labels[start : start + batch_size]
        width = max(chunk_lengths)
        inputs = torch.randn(len(chunk_lengths), features, width, generator=generator) * scale + offset
        target_lengths = torch.tensor([len(label) for label in chunk_labels])
        if concatenated:
            targets = torch.tensor([symbol for label in chunk_labels for symbol in label], dtype=torch.long)
        else:
            targets = torch.zeros(len(chunk_labels), max(1, int(target_lengths.max())), dtype=torch.long)
            for row, label in enumerate(chunk_labels):
                targets[row, : len(label)] = torch.tensor(label, dtype=torch.long)
        batches.append((inputs, targets, torch.tensor(chunk_lengths), target_lengths))
    return batches


def healthy_setup(**model_options) -> Setup:
    torch.manual_seed(0)
    lengths = [40, 40, 36, 32, 40, 28, 40, 40]
    labels = [[1, 2, 3], [2, 2, 4], [5, 1], [3, 4, 5, 1], [1], [2, 3], [4, 4, 4], [5, 3, 1, 2]]
    return Setup(
        model=TinyCTC(**model_options),
        loader=make_batches(lengths, labels),
        blank=0,
        alphabet="abcde",
        output_lengths=lambda input_lengths: input_lengths // 2,
    )


def run_codes(setup: Setup, prefixes: tuple[str, ...] = (), options: Options | None = None):
    """Run the selected checks on an in-memory set-up, on the threads `ctcdoctor check` gives torch (CHECK_THREADS);
    returns (findings, check results)."""
    context = Context(setup, options or Options())
    with torch_threads(CHECK_THREADS):
        context.get("batches")
        return run_checks(context, select(prefixes, ()))


def codes_of(findings) -> set[str]:
    return {finding.code for finding in findings}


def invoke_text_and_json(args: list[str], **kwargs: Any) -> tuple[Any, dict | None]:
    """One in-process CLI run for both of its reports: the text report on stdout and, through --output, the JSON
    document that --format json would print (emit writes the same render_json(report) to both). A training run
    asserted on in both formats is then trained once, not twice. The document is None when no report was written."""
    from typer.testing import CliRunner

    from ctcdoctor.cli import app

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.json"
        result = CliRunner().invoke(app, [*args, "--output", str(path)], **kwargs)
        document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return result, document


_SESSION_RUNS: dict[tuple[str, ...], Any] = {}


def invoke_once(args: list[str]) -> Any:
    """`ctcdoctor ARGS` in process, run once per session for the same arguments and working directory: tests in
    different modules that assert different things about the same deterministic (seeded) run share it instead of
    training it again. The result is CliRunner's; callers only read it. Use absolute paths in ARGS."""
    from typer.testing import CliRunner

    from ctcdoctor.cli import app

    key = (os.getcwd(), *args)
    if key not in _SESSION_RUNS:
        _SESSION_RUNS[key] = CliRunner().invoke(app, args)
    return _SESSION_RUNS[key]


OPTIONAL = ("transformers", "lightning", "pytorch_lightning", "keras", "tensorboard", "triton", "hypothesis")
"""The optional dependencies: every command, and `import ctcdoctor`, must work without them."""

#: Run in this order by `without_optional()`, after SNIPPETS.
WITHOUT_OPTIONAL = [
    ["labels", "examples/labels/gt.txt", "--alphabet", "@examples/labels/alphabet.txt"],
    ["explain", "CTC001"],
    ["check", "examples/ocr_crnn.py", "--select", "CTC00,CTC01"],
]

#: Python run first by `without_optional()`, in this order, each one's stdout kept. "hf": tests/frameworks/
#: test_hf_setup.py's claim, ctcdoctor and its Hugging Face modules import without transformers and setup_from_hf says
#: how to install it. "transformers_callback": tests/integrations/test_transformers_callback.py's, the callback's
#: import names the extra. "kernels": tests/kernels/test_kernels_import.py's, a CPU install without triton imports the
#: kernels package, which says so.
SNIPPETS = {
    "hf": textwrap.dedent('''
        import sys
        sys.modules["transformers"] = None  # import transformers raises ImportError
        import ctcdoctor, ctcdoctor.checks.huggingface
        from ctcdoctor.frameworks.huggingface import is_hf_ctc_model, setup_from_hf
        from ctcdoctor.errors import UserInputError
        from torch import nn
        assert not is_hf_ctc_model(nn.Linear(1, 1))
        try:
            setup_from_hf(nn.Linear(1, 1), [])
        except UserInputError as error:
            print(error.hint)
    '''),
    "transformers_callback": textwrap.dedent('''
        import sys
        sys.modules["transformers"] = None
        try:
            import ctcdoctor.integrations.transformers
        except ImportError as error:
            print(error)
    '''),
    "kernels": (
        "import sys; sys.modules['triton'] = None\n"
        "import ctcdoctor.kernels as k\n"
        "assert k.triton_available() is False\n"
        "try:\n    k.forward_backward()\nexcept RuntimeError as e:\n    assert 'triton' in str(e)\n"
        "else:\n    raise AssertionError('no error')\n"
    ),
}

IMPORT_BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None
sys.meta_path.insert(0, Block())
"""
"""Python that makes every import of the packages in `blocked` fail, as if they were not installed (a format string:
`IMPORT_BLOCKER.format(blocked={...})`, doubled braces for the literal ones)."""

_BLOCKED = IMPORT_BLOCKER + """
import contextlib, io, json, traceback
for name, snippet in {snippets!r}.items():
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(snippet, "<" + name + ">", "exec"), {{"__name__": "__snippet__"}})
        mark = {{"code": 0, "stdout": out.getvalue()}}
    except BaseException:
        mark = {{"code": 1, "stdout": out.getvalue(), "error": traceback.format_exc()}}
    print("@@", json.dumps({{"name": name, **mark}}), file=sys.stderr, flush=True)
from ctcdoctor.cli import main
for argv in {commands!r}:
    try:
        mark = {{"code": main(argv)}}
    except Exception:
        mark = {{"code": None, "error": traceback.format_exc()}}
    print("@@", json.dumps({{"name": argv[0], **mark}}), file=sys.stderr, flush=True)
"""


def without_optional() -> tuple[dict[str, dict[str, Any]], str]:
    """One fresh interpreter, from the repository root, in which no optional dependency (OPTIONAL) can be imported at
    any time: it runs each of SNIPPETS (its exit code, its stdout, the traceback when it raised), then each
    WITHOUT_OPTIONAL command in turn through ctcdoctor.cli.main (its exit code). One interpreter and one torch import
    for all, not a launch each. Returns the marks by snippet name or command (those that ended before the interpreter
    died) and the end of its output."""
    code = _BLOCKED.format(blocked=set(OPTIONAL), snippets=SNIPPETS, commands=WITHOUT_OPTIONAL)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    marks = [json.loads(line[3:]) for line in done.stderr.splitlines() if line.startswith("@@ ")]
    return {mark.pop("name"): mark for mark in marks}, done.stdout[-3000:] + done.stderr[-3000:]


@contextlib.contextmanager
def _working_directory(folder: Path):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_script(path: Path, *args: str) -> tuple[int, str, str]:
    """`python PATH ARGS` from the repository root, run in this process: the script runs as `__main__` with its own
    sys.argv and its folder first on sys.path, as the interpreter starts it, and its exit code is read from SystemExit
    (a message is exit 1, as the interpreter makes it). Returns (exit code, stdout, stderr); an exception it raises
    fails the test with its traceback. For scripts whose subject is not a fresh process (the benchmarks): a launch
    costs an interpreter and a torch import, seconds each on the CI machine. What a script may change in this
    process is put back: the environment, sys.argv, sys.path, the working directory, torch's thread count, the random
    states (torch, numpy, random), and the modules it imported from its own folder. The test process's own objects are
    frozen out of the garbage collector meanwhile, so a gc.collect() in the script walks the script's objects, as in
    its own process, not the whole test session's (ctc_cpu.py collects before each memory probe)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    modules = set(sys.modules)
    code: int | str | None = None
    gc.freeze()
    try:
        with mock.patch.dict(os.environ), mock.patch.object(sys, "argv", [str(path), *args]), \
                mock.patch.object(sys, "path", [str(path.parent), *sys.path]), _working_directory(ROOT), \
                seeded(None), torch_threads(None), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(str(path), run_name="__main__")
            except SystemExit as stop:
                code = stop.code
    finally:
        gc.unfreeze()
        for name in set(sys.modules) - modules:
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(path.parent) + os.sep):
                del sys.modules[name]
    if isinstance(code, str):
        stderr.write(code)
        code = 1
    return (0 if code is None else int(code)), stdout.getvalue(), stderr.getvalue()
