"""Tags and a note per run: one small JSON file for the whole store, changed under a file lock.

``<root>/runs/.annotations.json`` maps run ids to ``{"tags": [...], "note": "..."}``. A change
reads the file, edits it and writes it back atomically (temp file + os.replace) while holding
``runs/.annotations.lock`` (``filelock``), so writers in several processes never lose each
other's edits and readers (who take no lock) see the old file or the new one, never half of one.
The run writer's files are never touched: a run redone with ``overwrite=True`` keeps its tags.
Readers trust nothing on disk: a damaged file reads as no annotations, a malformed entry is
skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import files

ANNOTATIONS_FILE = ".annotations.json"
ANNOTATIONS_LOCK = ".annotations.lock"
#: Longest tag and note kept (characters).
MAX_TAG = 64
MAX_NOTE = 4000


@dataclass(frozen=True)
class Annotation:
    """A run's tags (sorted, unique) and note ("" when none)."""

    tags: tuple[str, ...] = ()
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"tags": list(self.tags), "note": self.note}


def _path(root: Path) -> Path:
    return root / files.RUNS_DIR / ANNOTATIONS_FILE


def clean_tags(tags: Iterable[Any]) -> tuple[str, ...]:
    """Tags as stored: stripped, non-empty, at most MAX_TAG characters, unique, sorted.

    ValueError for a tag that is not a string or holds a comma (commas separate tags in text).
    """
    out = set()
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError(f"a tag must be a string, got {tag!r}")
        tag = tag.strip()
        if "," in tag:
            raise ValueError(f"a tag may not contain a comma: {tag!r}")
        if tag:
            out.add(tag[:MAX_TAG])
    return tuple(sorted(out))


def _entry(value: Any) -> Annotation | None:
    if not isinstance(value, dict):
        return None
    tags, note = value.get("tags", []), value.get("note", "")
    if not isinstance(tags, list) or not isinstance(note, str):
        return None
    try:
        return Annotation(clean_tags(tags), note[:MAX_NOTE])
    except ValueError:
        return None


def read_annotations(root: Path) -> dict[str, Annotation]:
    """run id → Annotation of every annotated run ({} when the file is missing or damaged)."""
    try:
        data = json.loads(_path(root).read_bytes())
    except (OSError, ValueError):
        return {}
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, dict):
        return {}
    out = {}
    for run_id, value in runs.items():
        entry = _entry(value)
        if isinstance(run_id, str) and entry is not None and (entry.tags or entry.note):
            out[run_id] = entry
    return out


def annotate(
    root: Path,
    run_id: str,
    *,
    tags: Iterable[str] | None = None,
    add_tags: Iterable[str] = (),
    remove_tags: Iterable[str] = (),
    note: str | None = None,
    fsync: bool = True,
) -> Annotation:
    """Change one run's tags and/or note under the store's annotation lock; returns the result.

    ``tags`` replaces the tags (then ``add_tags`` / ``remove_tags`` apply); ``note`` replaces
    the note (``""`` clears it). An annotation left with no tag and no note is removed.
    """
    from filelock import FileLock  # writers only

    if note is not None and not isinstance(note, str):
        raise ValueError(f"a note must be a string, got {type(note).__name__}")
    new_tags = None if tags is None else set(clean_tags(tags))
    added, removed = set(clean_tags(add_tags)), set(clean_tags(remove_tags))
    path = _path(root)
    with FileLock(root / files.RUNS_DIR / ANNOTATIONS_LOCK, thread_local=False):
        current = read_annotations(root)
        old = current.get(run_id, Annotation())
        kept = set(old.tags) if new_tags is None else new_tags
        result = Annotation(
            tuple(sorted((kept | added) - removed)),
            old.note if note is None else note.strip()[:MAX_NOTE],
        )
        if result.tags or result.note:
            current[run_id] = result
        else:
            current.pop(run_id, None)
        body = {"version": 1, "runs": {k: v.to_json() for k, v in sorted(current.items())}}
        files.write_json(path, body, fsync=fsync)
        files.bump_change_token(root)
    return result
