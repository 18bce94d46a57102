"""docs/dependencies.md covers what pyproject.toml installs, with the same
version constraints, and pyproject.toml points only at files in this
repository (a fact the project relies on lives in its own docs)."""

import os
import re
import tomllib

from simulator import ROOT


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def test_every_dependency_is_in_the_doc_with_its_constraint():
    project = tomllib.loads(_read("pyproject.toml"))["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    doc = _read("docs", "dependencies.md")
    missing = [r for r in requirements if "`%s`" % r.replace(" ", "") not in doc]
    assert not missing, "not in docs/dependencies.md: %s" % missing
    assert "cbor2>=5.6,<6" in requirements and "pycose==1.1.0" in requirements
    why = doc[doc.index("## Why cbor2 is pinned below 6"):]
    assert "pycose 1.1.0" in why and "tuple" in why


def test_pyproject_points_only_at_files_in_the_repository():
    named = re.findall(r"[\w./-]+\.md\b", _read("pyproject.toml"))
    assert "docs/dependencies.md" in named
    for name in named:
        assert os.path.isfile(os.path.join(ROOT, name)), "pyproject.toml names %s: not in this repository" % name
