"""No module outside gradlab/store/ knows the store's files or folder layout.

Checked on the source of gradlab/ and dashboards/ (outside gradlab/store/): no import of a store
submodule (only the names ``gradlab.store`` exports), and no string naming one of the store's
files or folders (``run.json``, ``metrics.parquet``, ``run_id=``, ``arrays/``, ...) nor a path
built from its folder names. The checker itself is tested on snippets that break each rule.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest

import gradlab.store
from gradlab.store import files

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "gradlab" / "store"
SOURCES = sorted(
    p
    for top in ("gradlab", "dashboards")
    for p in (REPO / top).rglob("*.py")
    if STORE not in p.parents and "__pycache__" not in p.parts
)
SUBMODULES = frozenset(m.name for m in pkgutil.iter_modules(gradlab.store.__path__))
#: Text that only someone who knows the store's layout would write ("runs/" is left out: it is
#: also plain English, "runs/min"; a path joined with it is caught below).
LAYOUT_TEXT = (
    files.RUN_JSON,
    files.METRICS_FILE,
    files.RUN_PREFIX,
    files.LOCK_FILE,
    files.CHANGE_TOKEN,
    f"{files.ARRAYS_DIR}/",
    f"/{files.ARRAYS_DIR}",
)
#: Folder names that must not be joined into a path outside the store.
LAYOUT_FOLDERS = frozenset({files.RUNS_DIR, files.ARRAYS_DIR})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _strings(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """What in ``source`` (module ``module``) knows the store's layout, one line each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[:2] == ["gradlab", "store"] and len(parts) > 2:
                    found.append(f"{line}: imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            parts = target.split(".")
            if parts[:2] == ["gradlab", "store"] and len(parts) > 2:
                found.append(f"{line}: imports from {target}")
            elif target == "gradlab.store":
                for alias in node.names:
                    if alias.name in SUBMODULES:
                        found.append(f"{line}: imports gradlab.store.{alias.name}")
        elif (text := _strings(node)) is not None:
            for bad in LAYOUT_TEXT:
                if bad in text:
                    found.append(f"{line}: string names the store's {bad!r}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if _strings(side) in LAYOUT_FOLDERS:
                    found.append(f"{line}: path joined with the store's {_strings(side)!r}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("join", "joinpath", "Path", "PurePath"):
                for arg in node.args:
                    if _strings(arg) in LAYOUT_FOLDERS:
                        found.append(f"{line}: path joined with the store's {_strings(arg)!r}")
    return found


def test_the_scan_sees_the_modules_that_read_the_store():
    names = {_module_name(p) for p in SOURCES}
    assert {"dashboards.data", "gradlab.train", "gradlab.sweep.runner"} <= names
    assert not any(n.startswith("gradlab.store") for n in names)


@pytest.mark.parametrize("path", SOURCES, ids=[_module_name(p) for p in SOURCES])
def test_module_does_not_know_the_store_layout(path):
    found = violations(
        path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py"
    )
    assert not found, f"{path.relative_to(REPO)} knows the store's layout:\n" + "\n".join(found)


BAD = {
    "import-submodule": ("import gradlab.store.files", "gradlab.x"),
    "from-submodule": ("from gradlab.store.schema import METRICS_SCHEMA", "gradlab.x"),
    "submodule-by-name": ("from gradlab.store import files as f", "dashboards.data"),
    "relative": ("from ..store import writer", "gradlab.sweep.worker"),
    "relative-deep": ("from .store.files import RUN_JSON", "gradlab.train"),
    "file-name": ("x = 'run.json'", "gradlab.x"),
    "docstring": ('"""The traceback is in metrics.parquet."""', "gradlab.x"),
    "f-string": ("p = f'{root}/runs/run_id={i}'", "gradlab.x"),
    "path-join": ("p = root / 'arrays' / name", "gradlab.x"),
    "os-path-join": ("p = os.path.join(root, 'runs')", "gradlab.x"),
}
GOOD = {
    "public-names": ("from gradlab.store import Store, open_store, validate_id", "gradlab.x"),
    "keyword-run_id": ("f(run_id=run_id, arrays=())", "gradlab.x"),
    "word-runs": ("scope = 'runs'; fields = ('arrays',)", "gradlab.x"),
    "other-relative": ("from .figures import files", "gradlab.x"),
}


@pytest.mark.parametrize("source,module", list(BAD.values()), ids=list(BAD))
def test_checker_flags(source, module):
    assert violations(source, module)


@pytest.mark.parametrize("source,module", list(GOOD.values()), ids=list(GOOD))
def test_checker_allows(source, module):
    assert violations(source, module) == []
