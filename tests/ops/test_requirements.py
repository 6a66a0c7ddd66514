"""`make run` installs requirements.txt only: it must hold everything index/ imports and no test tool."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys

import pytest

from tests.processes import ROOT

TEST_TOOLS = {"pytest", "hypothesis", "schemathesis", "aiosmtpd", "docker-registry-client"}


def _names(path) -> set[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {re.split(r"[=<>!~\[ ]", line)[0].lower() for line in lines if line and not line.startswith("-")}


def _requires(dist: str) -> set[str]:
    found = set()
    for requirement in importlib.metadata.requires(dist) or []:
        if "extra ==" in requirement:
            continue
        found.add(re.split(r"[=<>!~\[ ;(]", requirement)[0].lower().replace("_", "-"))
    return found


def test_runtime_requirements_hold_no_test_tool_and_dev_builds_on_them():
    runtime = _names(ROOT / "requirements.txt")
    assert not runtime & TEST_TOOLS
    dev_lines = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in dev_lines
    assert TEST_TOOLS <= _names(ROOT / "requirements-dev.txt")


@pytest.mark.slow
def test_every_third_party_import_of_the_package_is_a_runtime_requirement():
    runtime = {name.replace("_", "-") for name in _names(ROOT / "requirements.txt")}
    # Everything the pinned runtime packages pull in themselves is installed by `make run` too.
    installed = set(runtime)
    for dist in runtime:
        installed |= _requires(dist)
    providers = importlib.metadata.packages_distributions()
    missing = set()
    for source in (ROOT / "index").rglob("*.py"):
        tree = ast.parse(source.read_text())
        optional = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.Try)
                    and any(isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers)
                    for inner in node.body}   # `try: import x / except ImportError` is optional
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "index":
                    continue
                dists = {dist.lower().replace("_", "-") for dist in providers.get(top, [top])}
                if not dists & installed:
                    missing.add((str(source.relative_to(ROOT)), top))
    assert missing == set()
