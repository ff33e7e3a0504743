"""What ships: one version number (pyproject.toml's, read back from package metadata), and a
wheel that carries py.typed (so type checkers use gradlab's annotations) and the dashboard's
assets. The wheel is built for real from a copy of the source tree."""

from __future__ import annotations

import ast
import email
import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import gradlab

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]


def test_version_comes_from_package_metadata():
    assert gradlab.__version__ == importlib.metadata.version("gradlab") == VERSION


def test_no_module_hard_codes_a_version():
    for path in sorted((REPO / "gradlab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                literal = isinstance(node.value, ast.Constant) and node.value.value != "0+unknown"
                assert not ("__version__" in names and literal), f"{path}:{node.lineno}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("gradlab", "dashboards"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*command, "--no-index", "-q", "-w", str(out), str(src)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("gradlab-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_py_typed_assets_and_the_version(wheel):
    names = set(wheel.namelist())
    assert "gradlab/py.typed" in names
    assert any(n.startswith("dashboards/assets/") for n in names)
    (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert email.message_from_bytes(wheel.read(meta))["Version"] == VERSION
