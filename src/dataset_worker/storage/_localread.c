/* Many small ranges of local files read in one call, with the checks of LocalSource.read_range.
 *
 * Packing a million tiny files is a million open/fstat/pread/close rounds. From Python each
 * round also builds a path string, a stat result and a bytes object under the GIL, so two pack
 * threads took turns instead of reading at once. Here a batch is read with the GIL released, into
 * one bytes object.
 *
 * Only the plain case is done here: the first range that is anything else (a path that could
 * leave the root, a file that is missing, changed since the scan, or fails to open or read) ends
 * the batch, and the caller reads that range in Python, which raises the error with its message.
 * So there is one place that words every failure, and this file cannot drift from it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    PyObject *path; /* the relative path, encoded like os.fsencode (a new reference) */
    const char *rel; /* its bytes and their length, taken with the GIL held */
    Py_ssize_t rel_size;
    long long offset, length, size, mtime_ns; /* size or mtime_ns -1: not checked */
    long long got; /* bytes read, once read */
} Range;

/* A stored relative path that stays inside the root: not empty, not absolute, no NUL, and no
 * empty, "." or ".." part (LocalSource's _BAD_PATH, without a regex). */
static int inside_root(const char *path, Py_ssize_t size) {
    if ((Py_ssize_t)strlen(path) != size) {
        return 0; /* a NUL byte */
    }
    const char *part = path, *end = path + size;
    while (1) {
        const char *slash = memchr(part, '/', (size_t)(end - part));
        const char *stop = slash != NULL ? slash : end;
        size_t length = (size_t)(stop - part);
        if (length == 0 || (length == 1 && part[0] == '.') ||
            (length == 2 && part[0] == '.' && part[1] == '.')) {
            return 0;
        }
        if (slash == NULL) {
            return 1;
        }
        part = slash + 1;
    }
}

/* Read one range into `out`; its length read, or -1 when the caller must take over. Runs
 * without the GIL, so it makes no Python call: the path bytes were taken in `parse`. */
static long long read_one(const char *root, size_t root_size, const Range *r, char *out) {
    char full[PATH_MAX];
    if (!inside_root(r->rel, r->rel_size) || root_size + 1 + (size_t)r->rel_size >= sizeof full) {
        return -1;
    }
    memcpy(full, root, root_size);
    full[root_size] = '/';
    memcpy(full + root_size + 1, r->rel, (size_t)r->rel_size + 1);
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    struct stat info;
    long long got = -1;
    if (fstat(fd, &info) == 0 && (r->size < 0 || info.st_size == r->size) &&
        (r->mtime_ns < 0 ||
         (long long)info.st_mtim.tv_sec * 1000000000LL + info.st_mtim.tv_nsec == r->mtime_ns)) {
        got = 0;
        while (got < r->length) { /* a short read before the end of file is allowed */
            ssize_t n = pread(fd, out + got, (size_t)(r->length - got), (off_t)(r->offset + got));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                got = -1;
                break;
            }
            if (n == 0) {
                break;
            }
            got += n;
        }
    }
    close(fd);
    return got;
}

/* Fill `ranges` from the items, each (path: str, offset, length, size, mtime_ns); the sum of
 * the lengths goes to *total. -1 with an exception set on a malformed item. */
static int parse(PyObject *seq, Py_ssize_t count, Range *ranges, long long *total) {
    *total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Range *r = &ranges[i];
        PyObject *path;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i),
                              "ULLLL;a range is (path, offset, length, size, mtime_ns)", &path,
                              &r->offset, &r->length, &r->size, &r->mtime_ns)) {
            return -1;
        }
        if (r->offset < 0 || r->length < 0 || r->length > (1LL << 30)) {
            PyErr_Format(PyExc_ValueError,
                         "range %zd: offset %lld and length %lld must be in 0..2**30", i,
                         r->offset, r->length);
            return -1;
        }
        r->path = PyUnicode_EncodeFSDefault(path);
        if (r->path == NULL) {
            return -1;
        }
        r->rel = PyBytes_AS_STRING(r->path);
        r->rel_size = PyBytes_GET_SIZE(r->path);
        *total += r->length;
    }
    return 0;
}

/* read_ranges(root, ranges) -> (data, lengths) */
static PyObject *read_ranges(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "read_ranges takes root (bytes) and a list of ranges");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[1], "ranges must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    Range *ranges = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Range));
    PyObject *data = NULL, *lengths = NULL, *out = NULL;
    long long total;
    if (ranges == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (parse(seq, count, ranges, &total) < 0) {
        goto done;
    }
    if (total > PY_SSIZE_T_MAX) {
        PyErr_NoMemory();
        goto done;
    }
    data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (data == NULL) {
        goto done;
    }
    const char *root = PyBytes_AS_STRING(args[0]);
    size_t root_size = (size_t)PyBytes_GET_SIZE(args[0]);
    char *into = PyBytes_AS_STRING(data);
    Py_ssize_t done = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; done < count; done++) {
        Range *r = &ranges[done];
        r->got = read_one(root, root_size, r, into);
        if (r->got < 0) {
            break;
        }
        into += r->got;
    }
    Py_END_ALLOW_THREADS
    lengths = PyList_New(done);
    if (lengths != NULL) {
        for (Py_ssize_t i = 0; i < done; i++) {
            PyObject *length = PyLong_FromLongLong(ranges[i].got);
            if (length == NULL) {
                Py_CLEAR(lengths);
                break;
            }
            PyList_SET_ITEM(lengths, i, length);
        }
    }
    if (lengths != NULL &&
        _PyBytes_Resize(&data, (Py_ssize_t)(into - PyBytes_AS_STRING(data))) == 0) {
        out = PyTuple_Pack(2, data, lengths);
    }
done:
    if (ranges != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_XDECREF(ranges[i].path);
        }
    }
    PyMem_Free(ranges);
    Py_XDECREF(data);
    Py_XDECREF(lengths);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef METHODS[] = {
    {"read_ranges", (PyCFunction)(void (*)(void))read_ranges, METH_FASTCALL,
     "read_ranges(root, ranges, /)\n--\n\n"
     "Read each (path, offset, length, size, mtime_ns) under root, in order, until one is not "
     "plain (see the module's comment); return the bytes read, one after the other, and the "
     "length read of each range done (fewer than asked at end of file)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_localread", "Small ranges of local files read in one call.", -1,
    METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__localread(void) { return PyModule_Create(&MODULE); }
