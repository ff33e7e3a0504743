"""`figure_table(fig)`: the exact data a figure plots, as one tidy DataFrame."""

from __future__ import annotations

import base64
import re
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["as_array", "figure_table"]

_TAG = re.compile(r"<[^>]+>")


def as_array(value: Any) -> np.ndarray | None:
    """A trace attribute as a numpy array (plotly holds tuples, lists, arrays, or base64
    typed-array dicts after a JSON round trip)."""
    if value is None:
        return None
    if isinstance(value, dict) and "bdata" in value:
        raw = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            dims = [int(s) for s in str(shape).split(",")] if isinstance(shape, str) else shape
            raw = raw.reshape(dims)
        return raw
    return np.asarray(value)


def _column(values: np.ndarray) -> np.ndarray:
    """Object arrays of numbers become float/int arrays; text stays text."""
    if values.dtype != object:
        return values
    try:
        as_float = values.astype(np.float64)
    except (TypeError, ValueError):
        return values
    if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
        if all(isinstance(v, int | np.integer) for v in values):
            return as_float.astype(np.int64)
    return as_float


def _plain(name: Any) -> str:
    return _TAG.sub("", str(name or "")).strip()


def _heatmap_rows(trace: Any, cols: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
    """One row per finite cell. ``meta["z_source"] == "customdata"``: the values are the
    customdata (2-D), or its first entry per cell when ``meta["custom"]`` names the entries
    (3-D: [value, n, ...]; the named ones after the first become columns). ``meta["x_values"]``
    / ``["y_values"]``: the values of the columns / rows when x / y are category positions."""
    custom = list(meta.get("custom") or [])
    extra: dict[str, np.ndarray] = {}
    if meta.get("z_source") == "customdata":
        cd = trace.customdata
        cd = np.array(cd, dtype=object) if not isinstance(cd, dict) else as_array(cd)
        if cd is not None and cd.ndim == 3 and custom:
            z = cd[:, :, 0].astype(np.float64)
            for j, name in enumerate(custom[1:], start=1):
                if j < cd.shape[2]:
                    extra[name] = cd[:, :, j]
        else:
            z = np.asarray(cd, dtype=np.float64)
    else:
        z = np.asarray(as_array(trace.z), dtype=np.float64)
    if z.ndim != 2:
        return {}
    ny, nx = z.shape
    x = meta.get("x_values")
    y = meta.get("y_values")
    x = as_array(trace.x) if x is None else np.array(x, dtype=object)
    y = as_array(trace.y) if y is None else np.array(y, dtype=object)
    x = np.arange(nx) if x is None else x
    y = np.arange(ny) if y is None else y
    xx = np.broadcast_to(np.asarray(x)[None, :], (ny, nx)).ravel()
    yy = np.broadcast_to(np.asarray(y)[:, None], (ny, nx)).ravel()
    zz = z.ravel()
    keep = np.isfinite(zz)
    out = {
        cols.get("x", "x"): _column(xx[keep]),
        cols.get("y", "y"): _column(yy[keep]),
        cols.get("z", "z"): zz[keep],
    }
    for name, values in extra.items():
        flat = np.asarray(values).ravel()[keep]
        text = any(isinstance(v, str) for v in flat)  # run ids stay text, even "12e4"
        out[name] = flat if text else _column(flat)
    return out


def _scatter_rows(trace: Any, cols: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
    x, y = as_array(trace.x), as_array(trace.y)
    if y is not None:
        n = len(y)
    elif x is not None:
        n = len(x)
    else:
        return {}
    out: dict[str, Any] = {
        cols.get("x", "x"): _column(np.asarray(x)) if x is not None else np.arange(n),
        cols.get("y", "y"): _column(np.asarray(y)) if y is not None else np.arange(n),
    }
    z = as_array(getattr(trace, "z", None))
    if z is not None and len(z) == n:
        out[cols.get("z", "z")] = _column(np.asarray(z))
    marker = getattr(trace, "marker", None)
    color = as_array(marker.color) if marker is not None and "color" in cols else None
    if color is not None and np.ndim(color) == 1 and len(color) == n:
        out[cols["color"]] = _column(np.asarray(color))
    custom = meta.get("custom") or []
    cd = as_array(trace.customdata)
    if custom and cd is not None:
        cd = np.asarray(cd)
        cd = cd.reshape(n, -1) if cd.ndim == 1 else cd
        for j, name in enumerate(custom):
            out[name] = _column(cd[:, j])
    return out


def figure_table(fig: go.Figure) -> pd.DataFrame:
    """The data plotted, tidy: one row per point (heatmaps: per finite cell).

    Columns: ``trace`` (legend name, HTML stripped), the trace's constant columns (``run_id``,
    and e.g. ``name`` or ``line`` = fit / theory), then x, y[, z] named after the store columns
    or axes where the figure says so (``t``, ``lag``, ``step``, ``value``, ``gain``...), else
    ``x``, ``y``, ``z``. Values are those of the traces themselves (heatmaps drawn in log colour
    report the raw values they were made from). A figure without traces gives an empty frame.
    """
    frames = []
    for i, trace in enumerate(fig.data):
        meta = trace.meta if isinstance(trace.meta, dict) else {}
        cols = dict(meta.get("columns") or {})
        if trace.type in ("heatmap", "contour"):
            data = _heatmap_rows(trace, cols, meta)
        else:
            data = _scatter_rows(trace, cols, meta)
        if not data:
            continue
        n = len(next(iter(data.values())))
        head: dict[str, Any] = {"trace": [_plain(trace.name) or f"trace {i}"] * n}
        for key, value in (meta.get("const") or {}).items():
            head[key] = [value] * n
        frames.append(pd.DataFrame({**head, **data}))
    if not frames:
        return pd.DataFrame({"trace": pd.Series(dtype="str")})
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True, sort=False)
