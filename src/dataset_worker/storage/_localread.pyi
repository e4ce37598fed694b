"""Type stub of the native batch reader of small local ranges (_localread.c)."""

from collections.abc import Sequence

def read_ranges(
    root: bytes, ranges: Sequence[tuple[str, int, int, int, int]], /
) -> tuple[bytes, list[int]]: ...
