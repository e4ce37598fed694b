"""A base for the jobs' temporary-file holders: `with` closes them, so their files go."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """A context manager whose exit calls `close()` (which a subclass defines)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release what the object holds."""
        raise NotImplementedError
