/* Unsigned LEB128 varints for the C extensions of content/ (multiformats, protobuf, CARv1):
 * one definition for `_multiformats.c` and `_leaves.c`. */
#ifndef DATASET_WORKER_UVARINT_H
#define DATASET_WORKER_UVARINT_H

#include <stdint.h>

/* Bytes the varint of n takes: 1 to 10. */
static inline int uvarint_size(uint64_t n) {
    int length = 1;
    while (n >= 0x80) {
        length++;
        n >>= 7;
    }
    return length;
}

/* Write the varint of n at out (room for 10 bytes); returns its length. */
static inline int put_uvarint(unsigned char *out, uint64_t n) {
    int length = 0;
    while (n >= 0x80) {
        out[length++] = (unsigned char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    out[length++] = (unsigned char)n;
    return length;
}

#endif
