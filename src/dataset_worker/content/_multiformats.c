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


/* One PBLink's bytes, the label being prefix + name. */
typedef struct {
    const char *cid, *prefix, *name;
    unsigned long long cid_len, prefix_len, name_len, tsize;
} Link;

/* The length of the record's body: `0a len cid, 12 len label, 18 tsize`. */
static unsigned long long link_body(const Link *link) {
    unsigned long long label_len = link->prefix_len + link->name_len;
    return 1 + uvarint_size(link->cid_len) + link->cid_len + 1 + uvarint_size(label_len) +
           label_len + 1 + uvarint_size(link->tsize);
}

/* The whole record's length: `12 len body`. */
static unsigned long long link_size(const Link *link) {
    unsigned long long body = link_body(link);
    return 1 + uvarint_size(body) + body;
}

/* Write the record at `out` (link_size bytes); return the position after it. */
static unsigned char *put_link(unsigned char *out, const Link *link) {
    *out++ = 0x12;
    out += put_uvarint(out, link_body(link));
    *out++ = 0x0a;
    out += put_uvarint(out, link->cid_len);
    memcpy(out, link->cid, (size_t)link->cid_len);
    out += link->cid_len;
    *out++ = 0x12;
    out += put_uvarint(out, link->prefix_len + link->name_len);
    memcpy(out, link->prefix, (size_t)link->prefix_len);
    out += link->prefix_len;
    memcpy(out, link->name, (size_t)link->name_len);
    out += link->name_len;
    *out++ = 0x18;
    out += put_uvarint(out, link->tsize);
    return out;
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
    Link link = {cid, prefix, name, (unsigned long long)cid_len, (unsigned long long)prefix_len,
                 (unsigned long long)name_len, tsize};
    unsigned long long total = link_size(&link);
    if (total > (unsigned long long)PY_SSIZE_T_MAX) {
        return PyErr_NoMemory();
    }
    PyObject *record = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (record == NULL) {
        return NULL;
    }
    put_link((unsigned char *)PyBytes_AS_STRING(record), &link);
    return record;
}

/* Item i of `links` as a Link with an empty prefix; -1 with an exception set if it is not a
 * (name bytes, cid bytes, tsize int, ...) tuple or its Tsize is negative or too large. */
static int list_link(PyObject *links, Py_ssize_t i, Link *link) {
    PyObject *item = PyList_GET_ITEM(links, i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 3 ||
        !PyBytes_Check(PyTuple_GET_ITEM(item, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(item, 1))) {
        PyErr_Format(PyExc_TypeError, "pb_links: link %zd is not a (name, cid, tsize) tuple", i);
        return -1;
    }
    PyObject *name = PyTuple_GET_ITEM(item, 0), *cid = PyTuple_GET_ITEM(item, 1);
    link->tsize = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(item, 2));
    if (link->tsize == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1; /* OverflowError for a negative or too large Tsize */
    }
    link->cid = PyBytes_AS_STRING(cid);
    link->cid_len = (unsigned long long)PyBytes_GET_SIZE(cid);
    link->prefix = "";
    link->prefix_len = 0;
    link->name = PyBytes_AS_STRING(name);
    link->name_len = (unsigned long long)PyBytes_GET_SIZE(name);
    return 0;
}

/* pb_links(links): the PBLink records of a list of (name, cid, tsize, ...) tuples, joined in
 * the list's order: a whole basic directory's links in one call instead of one pb_link call
 * and one bytes object per entry. */
static PyObject *pb_links(PyObject *module, PyObject *links) {
    (void)module;
    if (!PyList_Check(links)) {
        PyErr_SetString(PyExc_TypeError, "pb_links takes a list of (name, cid, tsize, ...) tuples");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(links);
    Link link;
    unsigned long long total = 0;
    for (Py_ssize_t i = 0; i < count; i++) { /* check every link and add up the sizes */
        if (list_link(links, i, &link) < 0) {
            return NULL;
        }
        total += link_size(&link);
        if (total > (unsigned long long)PY_SSIZE_T_MAX) {
            return PyErr_NoMemory();
        }
    }
    PyObject *records = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (records == NULL) {
        return NULL;
    }
    /* No Python code runs in between, so the list and its tuples are as checked. */
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(records);
    for (Py_ssize_t i = 0; i < count; i++) {
        list_link(links, i, &link);
        out = put_link(out, &link);
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
