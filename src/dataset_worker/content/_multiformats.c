/* The multiformats encodings on hot paths: base32 text and unsigned varints.
 *
 * b32_lower: RFC 4648 base32, lower case and unpadded, the body of a multibase "b" CID. Listing
 * pieces turns two or three binary CIDs a row into text, so this is on the path of `prep pieces`,
 * the pieces API and the deal loop. The standard library's encoder is Python, one table lookup
 * per 5 input bytes; this one writes the characters straight into a new ASCII str, 5 input bytes
 * (40 bits, 8 characters) at a time.
 *
 * uvarint: an unsigned LEB128 varint of a number below 2**64 (content/varint.py keeps the
 * one-byte case and anything larger). A v2 piece CID's padding is a 4- or 5-byte varint, which
 * cost a Python loop per row of `prep pieces`.
 *
 * pb_link: one dag-pb PBLink record (content/dagpb.py link_record). A directory of a million
 * entries is a million links, rebuilt by every pack job that adds to it; in Python the record
 * took 4 us of its 5 us per entry.
 *
 * pb_links: the records of a whole list of links at once, for basic directories, which every
 * pack job rebuilds for the folders it adds to (a link per file of a tiny-file dataset).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_uvarint.h"

static const char ALPHABET[32] = "abcdefghijklmnopqrstuvwxyz234567";

static PyObject *b32_lower(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const uint8_t *in = view.buf;
    Py_ssize_t size = view.len;
    if (size > (PY_SSIZE_T_MAX - 4) / 8) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    Py_ssize_t chars = (size * 8 + 4) / 5;
    PyObject *text = PyUnicode_New(chars, 127);
    if (text == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t whole = size / 5;
    for (Py_ssize_t block = 0; block < whole; block++, in += 5) {
        uint64_t bits = ((uint64_t)in[0] << 32) | ((uint64_t)in[1] << 24) |
                        ((uint64_t)in[2] << 16) | ((uint64_t)in[3] << 8) | in[4];
        for (int shift = 35; shift >= 0; shift -= 5) {
            *out++ = (Py_UCS1)ALPHABET[(bits >> shift) & 31];
        }
    }
    /* The last 1 to 4 bytes: their characters, the final one filled with zero bits. */
    Py_ssize_t rest = size - whole * 5;
    if (rest > 0) {
        uint64_t bits = 0;
        for (Py_ssize_t i = 0; i < rest; i++) {
            bits = (bits << 8) | in[i];
        }
        int left = (int)((rest * 8 + 4) / 5);
        bits <<= left * 5 - rest * 8;
        for (int shift = (left - 1) * 5; shift >= 0; shift -= 5) {
            *out++ = (Py_UCS1)ALPHABET[(bits >> shift) & 31];
        }
    }
    PyBuffer_Release(&view);
    return text;
}

static PyObject *uvarint(PyObject *module, PyObject *arg) {
    (void)module;
    unsigned long long n = PyLong_AsUnsignedLongLong(arg); /* OverflowError past 2**64 - 1 */
    if (n == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned char out[10];
    return PyBytes_FromStringAndSize((const char *)out, put_uvarint(out, n));
}


/* pb_link(cid, prefix, name, tsize): `12 len { 0a len cid, 12 len prefix+name, 18 tsize }`. */
static PyObject *pb_link(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "pb_link takes cid, prefix, name and tsize");
        return NULL;
    }
    char *cid, *prefix, *name;
    Py_ssize_t cid_len, prefix_len, name_len;
    if (PyBytes_AsStringAndSize(args[0], &cid, &cid_len) < 0 ||
        PyBytes_AsStringAndSize(args[1], &prefix, &prefix_len) < 0 ||
        PyBytes_AsStringAndSize(args[2], &name, &name_len) < 0) {
        return NULL;
    }
    unsigned long long tsize = PyLong_AsUnsignedLongLong(args[3]);
    if (tsize == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL; /* OverflowError for a negative or too large Tsize */
    }
    unsigned long long label_len = (unsigned long long)prefix_len + (unsigned long long)name_len;
    unsigned long long body = 1 + uvarint_size((unsigned long long)cid_len) + cid_len + 1 +
                              uvarint_size(label_len) + label_len + 1 + uvarint_size(tsize);
    unsigned long long total = 1 + uvarint_size(body) + body;
    if (total > (unsigned long long)PY_SSIZE_T_MAX) {
        return PyErr_NoMemory();
    }
    PyObject *record = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (record == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(record);
    *out++ = 0x12;
    out += put_uvarint(out, body);
    *out++ = 0x0a;
    out += put_uvarint(out, (unsigned long long)cid_len);
    memcpy(out, cid, (size_t)cid_len);
    out += cid_len;
    *out++ = 0x12;
    out += put_uvarint(out, label_len);
    memcpy(out, prefix, (size_t)prefix_len);
    out += prefix_len;
    memcpy(out, name, (size_t)name_len);
    out += name_len;
    *out++ = 0x18;
    put_uvarint(out, tsize);
    return record;
}

/* The PBLink records of `links`, a list of tuples whose first three items are name (bytes), CID
 * (bytes) and Tsize (int), joined in the list's order: a whole basic directory's links in one
 * call instead of one pb_link call and one bytes object per entry. */
static PyObject *pb_links(PyObject *module, PyObject *links) {
    (void)module;
    if (!PyList_Check(links)) {
        PyErr_SetString(PyExc_TypeError, "pb_links takes a list of (name, cid, tsize, ...) tuples");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(links);
    unsigned long long total = 0;
    /* First pass: check every link and add up the record sizes. */
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *link = PyList_GET_ITEM(links, i);
        if (!PyTuple_Check(link) || PyTuple_GET_SIZE(link) < 3 ||
            !PyBytes_Check(PyTuple_GET_ITEM(link, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(link, 1))) {
            PyErr_Format(PyExc_TypeError, "pb_links: link %zd is not a (name, cid, tsize) tuple", i);
            return NULL;
        }
        unsigned long long tsize = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(link, 2));
        if (tsize == (unsigned long long)-1 && PyErr_Occurred()) {
            return NULL; /* OverflowError for a negative or too large Tsize */
        }
        unsigned long long name_len = (unsigned long long)PyBytes_GET_SIZE(PyTuple_GET_ITEM(link, 0));
        unsigned long long cid_len = (unsigned long long)PyBytes_GET_SIZE(PyTuple_GET_ITEM(link, 1));
        unsigned long long body = 1 + uvarint_size(cid_len) + cid_len + 1 + uvarint_size(name_len) +
                                  name_len + 1 + uvarint_size(tsize);
        total += 1 + uvarint_size(body) + body;
        if (total > (unsigned long long)PY_SSIZE_T_MAX) {
            return PyErr_NoMemory();
        }
    }
    PyObject *records = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (records == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(records);
    /* Second pass: write them. The list cannot change in between: no Python code runs. */
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *link = PyList_GET_ITEM(links, i);
        PyObject *name = PyTuple_GET_ITEM(link, 0);
        PyObject *cid = PyTuple_GET_ITEM(link, 1);
        unsigned long long tsize = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(link, 2));
        unsigned long long name_len = (unsigned long long)PyBytes_GET_SIZE(name);
        unsigned long long cid_len = (unsigned long long)PyBytes_GET_SIZE(cid);
        unsigned long long body = 1 + uvarint_size(cid_len) + cid_len + 1 + uvarint_size(name_len) +
                                  name_len + 1 + uvarint_size(tsize);
        *out++ = 0x12;
        out += put_uvarint(out, body);
        *out++ = 0x0a;
        out += put_uvarint(out, cid_len);
        memcpy(out, PyBytes_AS_STRING(cid), (size_t)cid_len);
        out += cid_len;
        *out++ = 0x12;
        out += put_uvarint(out, name_len);
        memcpy(out, PyBytes_AS_STRING(name), (size_t)name_len);
        out += name_len;
        *out++ = 0x18;
        out += put_uvarint(out, tsize);
    }
    return records;
}

static PyMethodDef METHODS[] = {
    {"pb_links", pb_links, METH_O,
     "pb_links(links, /)\n--\n\nThe PBLink records of a list of (name, cid, tsize, ...) tuples, "
     "in order."},
    {"pb_link", (PyCFunction)(void (*)(void))pb_link, METH_FASTCALL,
     "pb_link(cid, prefix, name, tsize, /)\n--\n\nA dag-pb PBLink record named prefix + name."},
    {"b32_lower", b32_lower, METH_O,
     "b32_lower(data, /)\n--\n\nBase32 of data, lower case, without '=' padding."},
    {"uvarint", uvarint, METH_O,
     "uvarint(n, /)\n--\n\nThe unsigned varint of 0 <= n < 2**64 (OverflowError otherwise)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_multiformats", "Base32 text, unsigned varints and dag-pb links.", -1, METHODS,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__multiformats(void) { return PyModule_Create(&MODULE); }
