"""docs/ARCHITECTURE.md stays true: imports run down the layers, every module is listed, tests mirror modules."""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ["backend", "checkpoint", "nn", "tokenizers", "models", "peft", "efficiency", "data", "training", "distributed",
          "tasks", "cli", "tools"]


def modules():
    """{dotted module name: path} of every module in minillm/."""
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "minillm")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def layer(dotted):
    parts = dotted.split(".")
    if len(parts) < 2:
        return None
    return 0 if parts[1] == "strict" else LAYERS.index(parts[1])  # the strict device is part of the backend


def minillm_imports(path):
    """Every minillm module a file imports, at the top or inside a function."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minillm"):
            if node.module == "minillm":
                yield from ("minillm." + alias.name for alias in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("minillm"))


@pytest.mark.parametrize("dotted", sorted(m for m in modules() if m != "minillm"))
def test_imports_run_down_the_layers(dotted):
    own = layer(dotted)
    upward = [name for name in minillm_imports(modules()[dotted]) if layer(name) > own]
    assert not upward, f"{dotted} ({LAYERS[own]}) imports from a higher layer: {upward}"


def test_architecture_lists_every_module():
    text = open(os.path.join(ROOT, "docs", "ARCHITECTURE.md"), encoding="utf-8").read()
    listed = set(re.findall(r"\b(\w+)\.py\b", text))
    missing = sorted(os.path.basename(p) for m, p in modules().items()
                     if not p.endswith("__init__.py") and os.path.basename(p)[:-3] not in listed)
    assert not missing, f"docs/ARCHITECTURE.md does not list {missing}"


def test_every_test_file_is_named_after_a_module():
    names = {m.rsplit(".", 1)[-1] for m in modules()} | {"architecture", "readme"}
    for folder, _, files in os.walk(os.path.join(ROOT, "tests")):
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                assert name[5:-3] in names, f"{os.path.join(folder, name)} is named after no module"
