"""Plain helpers shared by the sweep tests (imported as ``sweep_helpers``)."""

from __future__ import annotations

from pathlib import Path


def run_dirs(store: Path) -> list[str]:
    """Run ids that have a folder in the store."""
    return sorted(p.name.removeprefix("run_id=") for p in (store / "runs").glob("run_id=*"))


# A run that every config check accepts and that fails inside its worker: the activation
# registered by tests/failing_activation.py raises when the run first applies it.
FAILING_PLUGIN = str(Path(__file__).resolve().parents[1] / "failing_activation.py")
FAILING_INCLUDE = '[[include]]\nactivation = "failing"\n'
FAILING_MESSAGE = "the failing activation raised on purpose"


def train_or_die(config, store_path, *, overwrite=False, progress=None):
    """A train function whose seed-1 run starts, then kills its own worker with SIGKILL (as
    the out-of-memory killer would); the other runs train normally."""
    import os
    import signal

    from gradlab.store import open_store
    from gradlab.train import train

    if config.seed != 1:
        return train(config, store_path, overwrite=overwrite, progress=progress)
    open_store(store_path).create_run(config.run_id, config.to_dict(), overwrite=overwrite)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def hold_the_gil(config, store_path, *, overwrite=False, progress=None):
    """A train function stuck in one long C call that never releases the GIL (so no Python
    thread of its worker can run), after writing its pid to ``<store>/../pids/<pid>``."""
    import os

    pids = Path(store_path).parent / "pids"
    pids.mkdir(exist_ok=True)
    (pids / str(os.getpid())).write_text("", encoding="utf-8")
    return sum(range(10**18))


def gate_dir(store_path: str | Path) -> Path:
    """The folder of the barrier files of :func:`gated_train` runs into ``store_path``."""
    return Path(store_path).parent / "gate"


def gated_train(config, store_path, *, overwrite=False, progress=None):
    """``gradlab.train.train``, held after its first optimiser step until the test lets it go.

    Once the run is in the store (``running``, one step done) it creates
    ``<gate>/<run_id>.started`` and waits until ``<gate>/<run_id>.go`` or ``<gate>/all.go``
    exists (``gate_dir``): a test knows when a run is in flight and decides when it may finish,
    whatever the machine's speed."""
    import time

    from gradlab.train import train

    gate = gate_dir(store_path)
    gate.mkdir(exist_ok=True)

    def hold(done: int, total: int) -> None:
        if done == 1:
            (gate / f"{config.run_id}.started").touch()
            while not ((gate / f"{config.run_id}.go").exists() or (gate / "all.go").exists()):
                time.sleep(0.01)  # polls the barrier file: the test's event, not a guess
        if progress is not None:
            progress(done, total)

    return train(config, store_path, overwrite=overwrite, progress=hold)
