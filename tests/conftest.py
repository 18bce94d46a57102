"""Shared pytest setup. Torture tests run only under `make torture`."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# tests/core/support.py is shared with the MicroPython runner, which has no
# packages for tests: make it importable as a top-level module here too.
sys.path.insert(0, os.path.join(ROOT, "tests", "core"))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EA_TORTURE"):
        return
    skip = pytest.mark.skip(reason="long run: use `make torture`")
    for item in items:
        if "torture" in item.keywords:
            item.add_marker(skip)
