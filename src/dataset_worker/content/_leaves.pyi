"""Type stub of the native tiny-file leaf framing (_leaves.c)."""

def frame_leaves(
    data: bytes | bytearray | memoryview, lengths: list[int], car_offset: int, /
) -> tuple[bytes, list[bytes], list[int]]: ...
