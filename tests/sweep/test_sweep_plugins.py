"""Sweeps see user registrations through the spec's `plugins` list, not process state: a new
cell (IndRNN) and a plugin activation (softsign) on a real 2-worker process pool."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from gradlab.cells import ACTIVATIONS
from gradlab.store import open_store
from gradlab.sweep import SpecError, load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[2]
SOFTSIGN = ROOT / "experiments" / "softsign_activation.py"


def _runs(store: Path):
    return open_store(store).runs().set_index("run_id")


def test_indrnn_sweep_on_two_workers(make_spec, tmp_path):
    spec = load_spec(make_spec("indrnn-pool", 'cell = ["indrnn"]\nseed = [0, 1]'))
    result = run_sweep(spec, tmp_path / "store", workers=2, progress=False)
    assert (result.total, result.complete, result.failed) == (2, 2, 0)
    runs = _runs(tmp_path / "store")
    assert set(runs["cell"]) == {"indrnn"} and set(runs["status"]) == {"complete"}
    metrics = open_store(tmp_path / "store").metrics(list(runs.index), probes="grad_hidden")
    assert len(metrics) and set(metrics["run_id"]) == set(runs.index)


def test_softsign_sweep_on_two_workers_through_the_plugin(make_spec, tmp_path):
    grid = 'cell = ["rnn", "indrnn"]\nactivation = ["softsign"]'
    spec = load_spec(make_spec("softsign-pool", grid), plugins=(str(SOFTSIGN),))
    assert spec.plugins == (str(SOFTSIGN.resolve()),) and "softsign" in ACTIVATIONS
    result = run_sweep(spec, tmp_path / "store", workers=2, progress=False)
    assert (result.total, result.complete, result.failed) == (2, 2, 0), result.summary()
    runs = _runs(tmp_path / "store")
    assert set(runs["activation"]) == {"softsign"} and set(runs["status"]) == {"complete"}


def test_a_registration_in_the_parent_alone_does_not_reach_the_workers(make_spec, tmp_path):
    """The control: softsign is registered in this process (the plugin was imported above or
    here) but the spec does not name it, so forkserver workers fail the runs, clearly."""
    load_spec(make_spec("with-plugin", "seed = [0]"), plugins=(str(SOFTSIGN),))
    spec = load_spec(make_spec("no-plugin", 'activation = ["softsign"]\nseed = [0, 1]'))
    assert spec.plugins == ()
    out = io.StringIO()
    result = run_sweep(spec, tmp_path / "store", workers=2, progress=False, out=out)
    assert (result.complete, result.failed) == (0, 2)
    lines = [line for line in out.getvalue().splitlines() if " failed " in line]
    assert len(lines) == 2
    assert all("'activation' must be one of" in line and "got 'softsign'" in line for line in lines)
    assert all("plugins" in line for line in lines)


def test_plugins_in_the_spec_are_relative_to_it(tmp_path):
    (tmp_path / "plug.py").write_text(SOFTSIGN.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "s.toml").write_text(
        'name = "rel"\nplugins = ["plug.py"]\n[grid]\nactivation = ["softsign"]\n',
        encoding="utf-8",
    )
    spec = load_spec(tmp_path / "s.toml")
    assert spec.plugins == (str((tmp_path / "plug.py").resolve()),)
    assert [c.activation for c in spec.configs] == ["softsign"]


@pytest.mark.parametrize(
    ("plugins", "message"),
    [
        ('"softsign_activation.py"', "key 'plugins' must be a list"),
        ('["no_such_module_gradlab_test"]', "plugin 'no_such_module_gradlab_test' cannot be "
         "imported: ModuleNotFoundError"),
        ('["missing.py"]', "cannot be imported: FileNotFoundError"),
        ("[3]", "a plugin must be a module name or a .py file, got 3"),
    ],
    ids=["not-a-list", "no-module", "no-file", "not-a-string"],
)  # fmt: skip
def test_bad_plugins_are_spec_errors(tmp_path, plugins, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "bad"\nplugins = {plugins}\n[grid]\nseed = [0]\n', encoding="utf-8")
    with pytest.raises(SpecError, match="key 'plugins'") as info:
        load_spec(path)
    assert message in str(info.value)


def test_cli_plugin_option(tmp_path):
    spec = tmp_path / "cli.toml"
    spec.write_text('name = "cli"\n[grid]\nactivation = ["softsign", "tanh"]\n', encoding="utf-8")
    args = [sys.executable, "-m", "gradlab", "sweep", str(spec), "--store", str(tmp_path / "s")]
    done = subprocess.run([*args, "--dry-run", "--plugin", str(SOFTSIGN)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "softsign" in done.stdout
    bad = subprocess.run([*args, "--dry-run"], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "unknown activation" not in bad.stdout
    assert "'activation' must be one of" in bad.stderr
