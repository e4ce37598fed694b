"""What a local path given by a client may be: no NUL character, and short enough for the file
system (PATH_MAX, and NAME_MAX per component). Checked before any file system call, which would
otherwise raise ValueError ("embedded null byte") or OSError (ENAMETOOLONG): a 500 for what is a
client's mistake."""

from __future__ import annotations

import os

from dataset_worker.prep.errors import InvalidParameter

PATH_MAX = 4096  # Linux's limits, in bytes of the file system encoding
NAME_MAX = 255


def check_path_text(text: str, field: str) -> None:
    """InvalidParameter naming `field` when `text` cannot be a path on this system."""
    if "\x00" in text:
        raise InvalidParameter(f"{field} must not contain NUL characters", field=field)
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError:
        raise InvalidParameter(f"{field} is not valid text for a file name", field=field) from None
    if len(encoded) >= PATH_MAX:
        raise InvalidParameter(
            f"{field} is too long: {len(encoded)} bytes, the limit is {PATH_MAX - 1}", field=field
        )
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise InvalidParameter(
            f"{field} has a name of {len(longest)} bytes, the limit is {NAME_MAX} "
            f'("{os.fsdecode(longest[:40])}…")',
            field=field,
        )
