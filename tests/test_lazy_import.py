"""``import gradlab`` is cheap (its names load on first use) and gives the same objects as before:
every public name is its module's object, and ``gradlab.record`` / ``gradlab.train`` stay the
functions whichever of the package and its submodules is imported first."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import gradlab

ORDERS = {
    "name-first": "from gradlab import record, train\nimport gradlab.record, gradlab.train",
    "submodule-first": "import gradlab.record, gradlab.train\nfrom gradlab import record, train",
    "via-a-user": "import gradlab.sweep.worker, gradlab.probes\nfrom gradlab import record, train",
}


def fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON value, returned here."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_import_gradlab_loads_no_torch_until_a_name_is_used():
    seen = fresh(
        """
        import json, sys
        import gradlab
        before = [m for m in ("torch", "pandas", "numpy") if m in sys.modules]
        version = gradlab.__version__
        rnn = gradlab.RNN
        print(json.dumps([before, "torch" in sys.modules, version, rnn.__module__]))
        """
    )
    assert seen == [[], True, gradlab.__version__, "gradlab.cells.models"]


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
def test_record_and_train_stay_functions_in_any_import_order(order):
    seen = fresh(
        f"""
        import json, types
        import gradlab
        {order.replace(chr(10), chr(10) + " " * 8)}
        names = {{"record": gradlab.record, "train": gradlab.train, "r": record, "t": train}}
        print(json.dumps({{k: type(v).__name__ for k, v in names.items()}}))
        """
    )
    assert seen == {"record": "function", "train": "function", "r": "function", "t": "function"}


@pytest.mark.parametrize("name", gradlab.__all__)
def test_every_public_name_is_its_modules_object(name):
    import importlib

    value = getattr(gradlab, name)
    if name == "__version__":
        assert isinstance(value, str) and value
        return
    module = importlib.import_module(gradlab._EXPORTS[name])
    assert value is getattr(module, name)
    assert name in dir(gradlab)


def test_submodules_load_on_attribute_access_and_unknown_names_raise():
    assert gradlab.theory.__name__ == "gradlab.theory"  # no `import gradlab.theory` needed
    assert "theory" in dir(gradlab)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_thing'"):
        _ = gradlab.no_such_thing
    assert set(gradlab.__all__) == {*gradlab._EXPORTS, "__version__"}
