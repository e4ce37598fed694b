"""RFC 4648 base32, lower case and unpadded (the multibase "b" body).

The standard library's base64.b32encode is pure Python, one table lookup per 5 input bytes,
and was most of the cost of listing pieces (two or three CIDs a row): the encoder is in C
(_multiformats.c), as the commP core is. CIDs and Filecoin addresses both use it.
"""

from __future__ import annotations

from dataset_worker.content._multiformats import b32_lower

__all__ = ["b32_lower"]
