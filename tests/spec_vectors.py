"""Golden CAR sizes of docs/formats.md#car-vectors, shared by the packer and pack-job tests."""

from __future__ import annotations

MIB = 1 << 20

# pack/assembler_test.go: file size → CAR bytes for that file alone, in one range.
ASSEMBLER_CAR_SIZES = {
    0: 96,
    1: 97,
    1024: 1121,
    MIB: 1048674,
    2 * MIB - 1: 2097434,
    2 * MIB: 2097436,
    2 * MIB + 1: 2097520,
    10 * MIB - 1: 10486755,
    10 * MIB: 10486756,
    10 * MIB + 1: 10486840,
}
# The eleventh assembler file is read with an unknown size (range length -1).
UNKNOWN_SIZE_FILE = (2048, 2145)
# pack/pack_test.go: a 1,500,000-byte file packs into a 1500283-byte CAR.
PACK_TEST_FILE = (1_500_000, 1500283)
