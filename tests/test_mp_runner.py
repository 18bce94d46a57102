"""The MicroPython runner itself: it must fail when a core module imports
something MicroPython lacks, when a test fails, and when no test ran."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")


def _tree(tmp_path):
    """A copy of the core and its tests that a test may break."""
    shutil.copytree(os.path.join(ROOT, "edge_agent"), tmp_path / "edge_agent",
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.makedirs(tmp_path / "tests")
    shutil.copytree(os.path.join(ROOT, "tests", "core"), tmp_path / "tests" / "core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "tests", "mp_run.py"), tmp_path / "tests" / "mp_run.py")
    return tmp_path


def _run(tree, *args):
    env = dict(os.environ, MICROPYPATH=".:tests/core:.frozen")
    return subprocess.run([MICROPYTHON, "tests/mp_run.py", *args], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def tree(tmp_path):
    if not os.path.exists(MICROPYTHON):
        pytest.fail("micropython not installed in the virtualenv: run `make setup`")
    return _tree(tmp_path)


def test_cpython_only_import_in_core_fails(tree):
    (tree / "edge_agent" / "core" / "uses_dataclasses.py").write_text("import dataclasses\n")
    result = _run(tree, "test_cbor")
    assert result.returncode == 1
    assert "FAILED import edge_agent.core.uses_dataclasses" in result.stdout


def test_failing_test_fails(tree):
    (tree / "tests" / "core" / "test_zz_broken.py").write_text("def test_broken():\n    assert 1 == 2\n")
    result = _run(tree, "test_zz_broken")
    assert result.returncode == 1
    assert "FAILED test_zz_broken.py::test_broken" in result.stdout


def test_no_test_run_fails(tree):
    result = _run(tree, "test_does_not_exist")
    assert result.returncode == 1
    assert "no test ran" in result.stdout


def test_clean_tree_passes(tree):
    result = _run(tree, "test_frames")
    assert result.returncode == 0, result.stdout
    assert " 0 failed" in result.stdout
