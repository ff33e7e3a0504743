"""Sweep specs: a TOML file that expands into a list of validated :class:`RunConfig`.

A spec has a ``name`` (the sweep every run belongs to), a ``description``, a ``[base]`` table of
RunConfig fields shared by every run, a ``[grid]`` table of lists whose Cartesian product gives
the runs, optional ``[[include]]`` tables (extra single runs, merged over ``[base]``) and an
optional ``[full]`` table used with ``scale="full"``: a list there sets (or replaces) a grid
axis, a single value sets a base value (and removes that key from the grid). Include runs take
``[full]``'s values too, and are expanded over each ``[full]`` list they do not set themselves::

    name = "edge-of-chaos"
    description = "Order-to-chaos transition of a tanh RNN."
    [base]
    cell = "rnn"
    init = "gaussian"
    hidden_size = 32
    [grid]
    gain = [0.5, 1.0, 2.0]
    bias_scale = [0.0, 0.3]
    [full]
    hidden_size = [256, 1000]

A top-level ``plugins`` list names modules (or ``.py`` files, relative to the spec) that
register cells or activations the runs use; they are imported here before the runs are validated
and in every worker before a run is built (see :mod:`gradlab.sweep.plugins`).

Everything is checked before a run starts: :func:`load_spec` raises :class:`SpecError` (a
:class:`~gradlab.config.ConfigError`) whose message names the file, the key and what is allowed.
The number of runs is computed from the axis lengths before any run is built: a spec of more
than ``max_runs`` (default :data:`DEFAULT_MAX_RUNS`; ``gradlab sweep --max-runs N``) is refused
at once, with its count.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from gradlab.config import ConfigError, RunConfig, unknown_key_message

from .bounds import DEFAULT_MAX_RUNS, count_runs, too_many_runs
from .plugins import PluginError, load_plugins, resolve_plugins

__all__ = ["DEFAULT_MAX_RUNS", "SCALES", "SpecError", "SweepSpec", "load_spec", "parse_spec"]

SCALES = ("demo", "full")
TOP_LEVEL_KEYS = ("name", "description", "plugins", "base", "grid", "include", "full")
RUN_KEYS = tuple(f.name for f in fields(RunConfig) if f.name != "sweep")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SpecError(ConfigError):
    """A sweep spec that cannot run; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class SweepSpec:
    """A loaded, validated sweep: every run's config, in grid order then include order."""

    name: str
    description: str
    configs: list[RunConfig]
    path: Path | None = None
    scale: str = "demo"
    grid: dict[str, list[Any]] = field(default_factory=dict)  # the grid after [full]
    plugins: tuple[str, ...] = ()  # modules / absolute .py paths every worker imports first

    def __len__(self) -> int:
        return len(self.configs)

    @cached_property
    def varying_keys(self) -> list[str]:
        """Config keys whose value differs between runs: grid axes in spec order, then others."""
        if not self.configs:
            return []
        dicts = [c.to_dict() for c in self.configs]
        keys = [*self.grid, *(k for k in RUN_KEYS if k not in self.grid)]
        return [k for k in keys if len({repr(d[k]) for d in dicts}) > 1]

    def label(self, config: RunConfig) -> str:
        """``key=value`` pairs of the keys varying in this sweep (``cell=lstm seq_len=20``)."""
        values = config.to_dict()
        return " ".join(f"{k}={_show(values[k])}" for k in self.varying_keys)


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{value!r} ({type(value).__name__})"


def load_spec(
    path: str | os.PathLike[str],
    scale: str = "demo",
    plugins: tuple[str, ...] = (),
    max_runs: int | None = DEFAULT_MAX_RUNS,
) -> SweepSpec:
    """Read and validate the spec at ``path``; ``scale="full"`` applies its ``[full]`` table.
    ``plugins`` are added to the spec's own ``plugins`` list (``gradlab sweep --plugin``).
    ``max_runs``: refuse (before building any run) a spec of more runs; None: no limit.

    Raises SpecError (file missing, TOML syntax, unknown key, wrong type, empty grid, a config
    RunConfig refuses) before anything runs. Duplicate configs are dropped (first one kept).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    return parse_spec(
        data, source=str(path), scale=scale, path=path, plugins=plugins, max_runs=max_runs
    )


def parse_spec(
    data: Mapping[str, Any],
    source: str = "spec",
    scale: str = "demo",
    path: Path | None = None,
    plugins: tuple[str, ...] = (),
    max_runs: int | None = DEFAULT_MAX_RUNS,
    *,
    _values_only: bool = False,
) -> SweepSpec:
    """Validate an already-parsed spec (a dict as ``tomllib`` returns); see :func:`load_spec`.

    ``_values_only`` (the check of ``[full]`` at demo scale): when the spec has more than
    ``max_runs`` runs, check each value on its own over ``[base]`` instead of every run."""
    if max_runs is not None and (isinstance(max_runs, bool) or max_runs < 1):
        raise SpecError(f"{source}: max_runs must be None or a whole number >= 1, got {max_runs!r}")
    if scale not in SCALES:
        raise SpecError(f"{source}: scale must be one of {list(SCALES)}, got {scale!r}")
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        problems = []
        for key in unknown:
            close = difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown top-level key {key!r}{guess}")
        allowed = ", ".join(TOP_LEVEL_KEYS)
        raise SpecError(f"{source}: {'; '.join(problems)}; allowed keys: {allowed}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        got = "missing" if name is None else f"got {_kind(name)}"
        raise SpecError(
            f"{source}: key 'name' must be a string of 1-64 letters, digits, '_', '-' or '.' "
            f"(it names the sweep), {got}"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise SpecError(f"{source}: key 'description' must be a string, got {_kind(description)}")

    listed = data.get("plugins", [])
    if not isinstance(listed, list):
        raise SpecError(
            f"{source}: key 'plugins' must be a list of module names or .py files, "
            f"got {_kind(listed)}"
        )
    try:
        plugins = resolve_plugins([*listed, *plugins], path.parent if path is not None else None)
        load_plugins(plugins)
    except (ValueError, PluginError) as exc:
        raise SpecError(f"{source}: key 'plugins': {exc}") from None

    base = _table(data, "base", source)
    grid = _table(data, "grid", source)
    full = _table(data, "full", source)
    includes = data.get("include", [])
    if not isinstance(includes, list) or not all(isinstance(t, dict) for t in includes):
        raise SpecError(
            f"{source}: 'include' must be an array of tables ([[include]] sections), "
            f"got {_kind(includes)}"
        )

    _check_keys(base, f"{source} [base]")
    _check_keys(grid, f"{source} [grid]")
    _check_keys(full, f"{source} [full]")
    for i, table in enumerate(includes, 1):
        _check_keys(table, f"{source} [[include]] #{i}")
    for key, values in grid.items():
        _check_axis(key, values, f"{source} [grid]")
    for key in grid:
        if key in base:
            raise SpecError(
                f"{source}: key {key!r} is in both [base] and [grid]; keep it in one of them"
            )
    for key, value in full.items():
        if isinstance(value, list):
            _check_axis(key, value, f"{source} [full]")
    if scale == "full":
        base, grid = dict(base), dict(grid)
        for key, value in full.items():
            if isinstance(value, list):
                base.pop(key, None)
                grid[key] = value
            else:
                grid.pop(key, None)
                base[key] = value

    # At full scale an include run also takes [full]'s values, and is expanded over each list
    # in [full] that it does not set itself.
    full_axes = {k: v for k, v in full.items() if isinstance(v, list)} if scale == "full" else {}
    include_axes = [{k: v for k, v in full_axes.items() if k not in t} for t in includes]
    counts = count_runs(grid, full, includes, scale)  # grid is merged already: idempotent
    if max_runs is not None and counts[0] > max_runs:
        if _values_only:
            _check_values(base, grid, includes, name, source)
            return SweepSpec(name, description.strip(), [], path, scale, dict(grid), plugins)
        raise SpecError(too_many_runs(source, scale, grid, counts, max_runs))

    configs: list[RunConfig] = []
    seen: set[str] = set()

    def add(values: dict[str, Any], where: str, parts: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            config = RunConfig.from_dict({**values, "sweep": name})
        except ConfigError:
            problem = _problem({**values, "sweep": name})
            # Point at the smallest part of the spec that has the problem on its own.
            for part_where, part in parts:
                if _problem({**part, "sweep": name}) == problem:
                    where = part_where
                    break
            raise SpecError(f"{where}: {problem}") from None
        if config.run_id not in seen:
            seen.add(config.run_id)
            configs.append(config)

    base_part = (f"{source} [base]", base)
    if grid or not includes:
        keys = list(grid)
        for point in itertools.product(*(grid[k] for k in keys)):
            values = dict(zip(keys, point, strict=True))
            parts = [base_part]
            parts += [(f"{source} [grid] {k} = {v!r}", {**base, k: v}) for k, v in values.items()]
            where = f"{source} [grid] point " + ", ".join(f"{k}={v!r}" for k, v in values.items())
            add({**base, **values}, where, parts)
    for i, (table, axes) in enumerate(zip(includes, include_axes, strict=True), 1):
        for point in itertools.product(*axes.values()):
            values = {**base, **dict(zip(axes, point, strict=True)), **table}
            add(values, f"{source} [[include]] #{i}", [base_part])
    if scale == "demo" and full:
        # A broken paper-sized version fails now, not after the demo has been run.
        parse_spec(
            data,
            source=f"{source} (scale full)",
            scale="full",
            path=path,
            plugins=plugins,
            max_runs=max_runs,
            _values_only=True,
        )
    return SweepSpec(name, description.strip(), configs, path, scale, dict(grid), plugins)


def _table(data: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{source}: [{key}] must be a table, got {_kind(value)}")
    return value


def _check_keys(table: Mapping[str, Any], where: str) -> None:
    if "sweep" in table:
        raise SpecError(
            f"{where}: key 'sweep' is set from the spec's 'name'; remove it "
            f"(allowed keys: {', '.join(RUN_KEYS)})"
        )
    unknown = [key for key in table if key not in RUN_KEYS]
    if unknown:
        raise SpecError(f"{where}: " + "; ".join(unknown_key_message(k, RUN_KEYS) for k in unknown))


def _check_axis(key: str, values: Any, where: str) -> None:
    if not isinstance(values, list):
        raise SpecError(
            f"{where}: key {key!r} must be a list of values (one run per value), "
            f"got {_kind(values)}; put single values in [base]"
        )
    if not values:
        raise SpecError(f"{where}: key {key!r} is an empty list; give at least one value")


def _check_values(
    base: dict[str, Any],
    grid: dict[str, list[Any]],
    includes: list[dict[str, Any]],
    name: str,
    source: str,
) -> None:
    """Check [base], each grid value over [base] and each include over [base] on its own
    (for a spec too large to build every run of)."""
    parts = [(f"{source} [base]", base)]
    parts += [
        (f"{source} [grid] {k} = {v!r}", {**base, k: v}) for k, vs in grid.items() for v in vs
    ]
    parts += [(f"{source} [[include]] #{i}", {**base, **t}) for i, t in enumerate(includes, 1)]
    for where, values in parts:
        problem = _problem({**values, "sweep": name})
        if problem is not None:
            raise SpecError(f"{where}: {problem}")


def _problem(values: dict[str, Any]) -> str | None:
    """RunConfig's complaint about ``values`` (without a source prefix), or None if it is valid."""
    try:
        RunConfig.from_dict(values, source="@")
    except ConfigError as exc:
        return str(exc).removeprefix("@: ")
    return None
