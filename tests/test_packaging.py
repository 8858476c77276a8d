"""The wheel carries checks/ as ctcdoctor.checks and works from another directory."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from ctchelpers import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip(f"cannot build a wheel here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("ctcdoctor-*.whl")
    return path


def test_wheel_maps_checks_folder_into_the_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "ctcdoctor/checks/lengths.py" in names
    assert "ctcdoctor/checks/labels.py" in names
    assert not any(name.startswith("checks/") for name in names)
    assert any(name.endswith("entry_points.txt") for name in names)
    # The pytest plugin: its package is in the explicit package list, its entry point in the metadata.
    assert "ctcdoctor/integrations/pytest_plugin.py" in names
    (entry_points,) = [name for name in names if name.endswith("entry_points.txt")]
    assert "[pytest11]\nctcdoctor = ctcdoctor.integrations.pytest_plugin" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_runs_from_another_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import ctcdoctor, ctcdoctor.checks.lengths; print(ctcdoctor.__file__)"
    where = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(target))
    codes = subprocess.run(
        [sys.executable, "-m", "ctcdoctor", "explain", "CTC001"], capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120
    )
    assert codes.returncode == 0 and "CTC001" in codes.stdout
    check = subprocess.run(
        [sys.executable, "-m", "ctcdoctor", "check", str(ROOT / "examples" / "ocr_crnn.py"), "--select", "CTC01"],
        capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
