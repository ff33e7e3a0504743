"""Exceptions of the run store."""

from __future__ import annotations


class RunExistsError(FileExistsError):
    """A run with this id exists and may not be (re)written now.

    ``run_id`` and ``status`` (``complete``, ``running``, ``failed``, ...) say which and why.
    """

    def __init__(self, run_id: str, status: str, detail: str = "") -> None:
        self.run_id = run_id
        self.status = status
        message = f"run {run_id!r} already exists with status {status!r}"
        super().__init__(f"{message}: {detail}" if detail else message)


class ReadOnlyQueryError(PermissionError):
    """SQL given to ``Store.query`` that is not one read-only (SELECT) statement."""


class AmbiguousRunIdError(LookupError):
    """A run-id prefix that starts more than one run id; ``candidates`` lists them, sorted."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        self.prefix = prefix
        self.candidates = candidates
        shown = ", ".join(candidates[:20]) + (" …" if len(candidates) > 20 else "")
        super().__init__(
            f"run id prefix {prefix!r} matches {len(candidates)} runs: {shown}; "
            "give more characters"
        )
