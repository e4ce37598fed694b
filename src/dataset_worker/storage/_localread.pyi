"""Type stub of the native local-file helpers (_localread.c): a batch reader of small ranges
and a folder lister."""

import os
from collections.abc import Sequence
from typing import Final

# The kind of a list_dir entry: what lstat says it is, or why there is nothing to say.
FILE: Final[int]
DIR: Final[int]
SYMLINK: Final[int]
SPECIAL: Final[int]
BAD_NAME: Final[int]  # not valid UTF-8 (the name is decoded like os.fsdecode)
STAT_FAILED: Final[int]  # the errno is in the entry's last field

def read_ranges(
    root: bytes, ranges: Sequence[tuple[str, int, int, int, int]], /
) -> tuple[bytes, list[int]]: ...

# (name, kind, size, mtime_ns, errno) of each entry, sorted by the bytes of the names.
def list_dir(
    folder: str | bytes | os.PathLike[str] | os.PathLike[bytes], /
) -> list[tuple[str, int, int, int, int]]: ...
