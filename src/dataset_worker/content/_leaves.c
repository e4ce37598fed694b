/* Raw leaves of tiny files, framed as CARv1 block sections in one call (docs/formats.md#car-framing).
 *
 * A file of at most one chunk is one raw leaf: CID = 0x01 0x55 0x12 0x20 + sha256(bytes), and
 * its CAR section is uvarint(36 + len) + CID + bytes. Done one file at a time in Python, that is
 * a dozen calls and as many small objects per file, which made a pack job of tiny files cost
 * five times what reading them does. Here a whole batch is hashed and framed with the GIL
 * released, so a second pack thread runs while this one hashes.
 *
 * SHA256_Init/Update/Final are deprecated in OpenSSL 3 but are the cheapest way to hash many
 * small messages: the one-shot SHA256() and EVP look the algorithm up on every call.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_uvarint.h"

#define CID_SIZE 36
static const unsigned char RAW_CID_PREFIX[4] = {0x01, 0x55, 0x12, 0x20}; /* v1, raw, sha2-256, 32 */

/* The lengths as C integers, each at least 0, their sum at most `available`; -1 on error. */
static int parse_lengths(PyObject *seq, Py_ssize_t count, Py_ssize_t available, Py_ssize_t *out) {
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t length = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(seq, i));
        if (length == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (length < 0 || length > available - total) {
            PyErr_Format(PyExc_ValueError,
                         "leaf %zd: length %zd does not fit the %zd bytes of data left", i, length,
                         available - total);
            return -1;
        }
        out[i] = length;
        total += length;
    }
    return 0;
}

/* Hash and frame every leaf into `sections`; `digests` gets each sha256. No Python calls. */
static void frame(const unsigned char *data, const Py_ssize_t *lengths, Py_ssize_t count,
                  unsigned char *sections, unsigned char *digests) {
    SHA256_CTX ctx;
    for (Py_ssize_t i = 0; i < count; i++) {
        size_t length = (size_t)lengths[i];
        unsigned char *digest = digests + (size_t)i * SHA256_DIGEST_LENGTH;
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, data, length);
        SHA256_Final(digest, &ctx);
        sections += put_uvarint(sections, (uint64_t)(CID_SIZE + length));
        memcpy(sections, RAW_CID_PREFIX, sizeof RAW_CID_PREFIX);
        memcpy(sections + sizeof RAW_CID_PREFIX, digest, SHA256_DIGEST_LENGTH);
        sections += CID_SIZE;
        memcpy(sections, data, length);
        sections += length;
        data += length;
    }
}

/* The list of CIDs and the list of CAR offsets (from `car_offset`) of the framed leaves. */
static PyObject *results(const unsigned char *digests, const Py_ssize_t *lengths,
                         Py_ssize_t count, long long car_offset) {
    PyObject *cids = PyList_New(count);
    PyObject *offsets = PyList_New(count);
    if (cids == NULL || offsets == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *cid = PyBytes_FromStringAndSize(NULL, CID_SIZE);
        PyObject *offset = PyLong_FromLongLong(car_offset);
        if (cid == NULL || offset == NULL) {
            Py_XDECREF(cid);
            Py_XDECREF(offset);
            goto fail;
        }
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(cid);
        memcpy(out, RAW_CID_PREFIX, sizeof RAW_CID_PREFIX);
        memcpy(out + sizeof RAW_CID_PREFIX, digests + (size_t)i * SHA256_DIGEST_LENGTH,
               SHA256_DIGEST_LENGTH);
        PyList_SET_ITEM(cids, i, cid);
        PyList_SET_ITEM(offsets, i, offset);
        uint64_t section = (uint64_t)(CID_SIZE + lengths[i]);
        car_offset += uvarint_size(section) + (long long)section;
    }
    PyObject *both = PyTuple_Pack(2, cids, offsets);
    Py_DECREF(cids);
    Py_DECREF(offsets);
    return both;
fail:
    Py_XDECREF(cids);
    Py_XDECREF(offsets);
    return NULL;
}

/* frame_leaves(data, lengths, car_offset) -> (sections, cids, offsets) */
static PyObject *frame_leaves(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "frame_leaves takes data, lengths and car_offset");
        return NULL;
    }
    long long car_offset = PyLong_AsLongLong(args[2]);
    if (car_offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (car_offset < 0) {
        PyErr_SetString(PyExc_ValueError, "car_offset must be at least 0");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[1], "lengths must be a sequence of integers");
    if (seq == NULL) {
        return NULL;
    }
    Py_buffer view = {0};
    PyObject *sections = NULL, *found = NULL, *out = NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    Py_ssize_t *lengths = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(count ? count : 1));
    unsigned char *digests = PyMem_Malloc((size_t)SHA256_DIGEST_LENGTH * (size_t)(count ? count : 1));
    if (lengths == NULL || digests == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        goto done;
    }
    if (parse_lengths(seq, count, view.len, lengths) < 0) {
        goto done;
    }
    Py_ssize_t total = 0; /* fits: each section is at most 10 + 36 bytes over its data */
    for (Py_ssize_t i = 0; i < count; i++) {
        total += uvarint_size((uint64_t)(CID_SIZE + lengths[i])) + CID_SIZE + lengths[i];
    }
    sections = PyBytes_FromStringAndSize(NULL, total);
    if (sections == NULL) {
        goto done;
    }
    unsigned char *target = (unsigned char *)PyBytes_AS_STRING(sections);
    Py_BEGIN_ALLOW_THREADS
    frame(view.buf, lengths, count, target, digests);
    Py_END_ALLOW_THREADS
    found = results(digests, lengths, count, car_offset);
    if (found != NULL) {
        out = PyTuple_Pack(3, sections, PyTuple_GET_ITEM(found, 0), PyTuple_GET_ITEM(found, 1));
    }
done:
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    PyMem_Free(lengths);
    PyMem_Free(digests);
    Py_XDECREF(sections);
    Py_XDECREF(found);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef METHODS[] = {
    {"frame_leaves", (PyCFunction)(void (*)(void))frame_leaves, METH_FASTCALL,
     "frame_leaves(data, lengths, car_offset, /)\n--\n\n"
     "Cut data into leaves of these lengths; return their CAR sections as one bytes, their raw "
     "CIDs and the CAR offset of each section when the first starts at car_offset."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_leaves", "Raw leaves of tiny files framed as CAR sections.", -1,
    METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__leaves(void) { return PyModule_Create(&MODULE); }
