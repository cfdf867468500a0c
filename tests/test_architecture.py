"""The package's import rules: the import-linter contracts in pyproject.toml hold, they catch a
forbidden import when one is added, and no module takes part in an import circle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="needs import-linter (the test extra)")
import grimp  # noqa: E402  (installed with import-linter)

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT), "--no-cache", "--config", str(REPO / "pyproject.toml")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _copy_of_the_package(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(SRC / "seq2labels", copy / "seq2labels", ignore=shutil.ignore_patterns("__pycache__", "samples"))
    return copy


def _add_import(module: Path, statement: str) -> None:
    text = module.read_text(encoding="utf-8")
    anchor = "from __future__ import annotations\n"
    assert anchor in text, module
    module.write_text(text.replace(anchor, anchor + statement + "\n", 1), encoding="utf-8")


def test_the_import_contracts_hold():
    result = _lint(SRC, REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and " 0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize("module, statement, contract", [
    ("data/vocab.py", "import seq2labels.models.sgm", "Layers"),                       # data imports a model
    ("models/sgm.py", "from seq2labels.training import loop", "Layers"),               # a model imports training
    ("training/loop.py", "import seq2labels.models.layers", "training never imports models"),
    ("evaluation/metrics.py", "from seq2labels.apps import report", "Layers"),          # lower -> top
    ("pipeline/recipe.py", "import seq2labels.baselines", "Layers"),                   # independent siblings
    ("decoding/search.py", "import seq2labels", "facade"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, statement, contract):
    copy = _copy_of_the_package(tmp_path)
    _add_import(copy / "seq2labels" / module, statement)
    result = _lint(copy, tmp_path)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken, result.stdout
    importer = "seq2labels." + module[:-3].replace("/", ".")
    assert f"{importer} -> " in broken, result.stdout                   # this very import is the one named


def _import_circles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_no_module_is_part_of_an_import_circle():
    """Function-level (lazy) imports count too: a circle is a circle whenever it closes."""
    assert _import_circles(grimp.build_graph("seq2labels", cache_dir=None)) == []


def test_the_circle_check_finds_a_circle(tmp_path, monkeypatch):
    copy = _copy_of_the_package(tmp_path)
    _add_import(copy / "seq2labels" / "data" / "vocab.py", "import seq2labels.data.dataset")  # dataset imports vocab
    monkeypatch.syspath_prepend(str(copy))
    for name in [m for m in sys.modules if m == "seq2labels" or m.startswith("seq2labels.")]:
        monkeypatch.delitem(sys.modules, name)
    circles = _import_circles(grimp.build_graph("seq2labels", cache_dir=None))
    assert ["seq2labels.data.dataset", "seq2labels.data.vocab"] in circles


def test_every_package_says_what_lives_there_and_what_it_may_import():
    for init in sorted((SRC / "seq2labels").glob("*/__init__.py")):
        doc = init.read_text(encoding="utf-8").lstrip()
        assert doc.startswith('"""'), f"{init.relative_to(SRC)} has no docstring"
        assert "import" in doc.split('"""')[1].lower(), f"{init.relative_to(SRC)}: say what it may import"
