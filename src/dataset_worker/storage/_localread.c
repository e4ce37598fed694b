/* Local files in bulk: many small ranges read in one call, with the checks of
 * LocalSource.read_range, and one folder listed in one call, for LocalSource's walk.
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
 *
 * Listing has the same shape. With os.scandir, each entry's DirEntry.stat resolved its full path
 * from the root again and built a stat result, and the sort ran a Python key per name: with the
 * entry objects, about half a scan's listing time. list_dir reads, stats (by name, relative to
 * the open folder) and sorts one folder without the GIL and hands back plain tuples; LocalSource
 * decides what each becomes and words every skip, so here too the messages live in one place.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
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

/* What list_dir reports of an entry: what lstat says it is, or why there is nothing to say.
 * BAD_NAME wins over the rest, as LocalSource checks the name before anything else. */
enum { KIND_FILE, KIND_DIR, KIND_SYMLINK, KIND_SPECIAL, KIND_BAD_NAME, KIND_STAT_FAILED };

typedef struct {
    size_t at; /* the name's offset in the names buffer while it grows; then `name` */
    const char *name;
    Py_ssize_t name_size;
    int kind, error; /* error: the errno of a failed fstatat (KIND_STAT_FAILED) */
    long long size, mtime_sec;
    long mtime_nsec;
} Listed;

typedef struct {
    Listed *items;
    size_t count, capacity;
    char *names; /* every name with its NUL, one after the other */
    size_t names_size, names_capacity;
} Listing;

/* Grow `*buffer` to hold at least `need` elements of `size` bytes (doubling). Raw allocator:
 * this runs without the GIL. */
static int grow(void **buffer, size_t *capacity, size_t need, size_t size) {
    if (need <= *capacity) {
        return 0;
    }
    size_t more = *capacity ? *capacity : 64;
    while (more < need) {
        if (more > SIZE_MAX / 2 / size) {
            return -1;
        }
        more *= 2;
    }
    void *bigger = PyMem_RawRealloc(*buffer, more * size);
    if (bigger == NULL) {
        return -1;
    }
    *buffer = bigger;
    *capacity = more;
    return 0;
}

/* Byte order of the names, a name before any longer one it starts: names hold no NUL, so this
 * is strcmp (which compares as unsigned char), the order of sorting by the names' bytes. */
static int by_name(const void *a, const void *b) {
    return strcmp(((const Listed *)a)->name, ((const Listed *)b)->name);
}

/* Read, lstat and sort every entry of `folder` into `out`. Runs without the GIL. 0; or the
 * errno of a failed opendir or readdir, for the caller to raise; or -1 when out of memory. */
static int read_folder(const char *folder, Listing *out) {
    /* opendir, as os.scandir: the same open flags, so the same errors for what is not a
     * readable folder. Entries are then stat'ed relative to its descriptor, with no path to
     * join and resolve per entry. */
    DIR *dir = opendir(folder);
    if (dir == NULL) {
        return errno;
    }
    int fd = dirfd(dir), failure = 0;
    while (1) {
        errno = 0;
        struct dirent *ent = readdir(dir);
        if (ent == NULL) {
            failure = errno; /* 0 at the end of the folder */
            break;
        }
        const char *name = ent->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
            continue;
        }
        size_t length = strlen(name);
        if (grow((void **)&out->items, &out->capacity, out->count + 1, sizeof(Listed)) < 0 ||
            grow((void **)&out->names, &out->names_capacity, out->names_size + length + 1, 1) <
                0) {
            failure = -1;
            break;
        }
        Listed *item = &out->items[out->count++];
        memset(item, 0, sizeof *item);
        item->at = out->names_size;
        item->name_size = (Py_ssize_t)length;
        memcpy(out->names + out->names_size, name, length + 1);
        out->names_size += length + 1;
        struct stat info;
        if (fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) != 0) {
            item->kind = KIND_STAT_FAILED; /* e.g. removed since readdir */
            item->error = errno;
            continue;
        }
        item->kind = S_ISREG(info.st_mode)   ? KIND_FILE
                     : S_ISDIR(info.st_mode) ? KIND_DIR
                     : S_ISLNK(info.st_mode) ? KIND_SYMLINK
                                             : KIND_SPECIAL;
        item->size = (long long)info.st_size;
        item->mtime_sec = (long long)info.st_mtim.tv_sec;
        item->mtime_nsec = info.st_mtim.tv_nsec;
    }
    closedir(dir);
    if (failure != 0) {
        return failure;
    }
    for (size_t i = 0; i < out->count; i++) { /* the names buffer has stopped moving */
        out->items[i].name = out->names + out->items[i].at;
    }
    if (out->count > 1) {
        qsort(out->items, out->count, sizeof(Listed), by_name);
    }
    return 0;
}

/* The name as a str: strict UTF-8 when it is valid; else as os.fsdecode gives it (surrogate
 * escapes), and *bad set, since the scan skips such names. */
static PyObject *decode_name(const Listed *item, int *bad) {
    PyObject *name = PyUnicode_DecodeUTF8(item->name, item->name_size, NULL);
    if (name != NULL || !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        return name;
    }
    PyErr_Clear();
    *bad = 1;
    return PyUnicode_DecodeFSDefaultAndSize(item->name, item->name_size);
}

/* st_mtime_ns as os.stat_result has it. Python ints have no range: beyond long long's
 * (before 1677 or after 2262) it is computed with them. */
static PyObject *mtime_ns(const Listed *item) {
    const long long limit = LLONG_MAX / 1000000000LL - 1;
    if (item->mtime_sec > -limit && item->mtime_sec < limit) {
        return PyLong_FromLongLong(item->mtime_sec * 1000000000LL + item->mtime_nsec);
    }
    PyObject *sec = PyLong_FromLongLong(item->mtime_sec), *billion = NULL, *scaled = NULL,
             *nsec = NULL, *out = NULL;
    if (sec != NULL && (billion = PyLong_FromLong(1000000000L)) != NULL &&
        (scaled = PyNumber_Multiply(sec, billion)) != NULL &&
        (nsec = PyLong_FromLong(item->mtime_nsec)) != NULL) {
        out = PyNumber_Add(scaled, nsec);
    }
    Py_XDECREF(sec);
    Py_XDECREF(billion);
    Py_XDECREF(scaled);
    Py_XDECREF(nsec);
    return out;
}

/* One entry as (name, kind, size, mtime_ns, error). */
static PyObject *entry_tuple(const Listed *item) {
    int bad = 0;
    PyObject *entry = PyTuple_New(5);
    if (entry == NULL) {
        return NULL;
    }
    PyObject *name = decode_name(item, &bad);
    PyTuple_SET_ITEM(entry, 0, name); /* each slot as soon as made: one DECREF frees all */
    PyObject *kind = name != NULL ? PyLong_FromLong(bad ? KIND_BAD_NAME : item->kind) : NULL;
    PyTuple_SET_ITEM(entry, 1, kind);
    PyObject *size = kind != NULL ? PyLong_FromLongLong(item->size) : NULL;
    PyTuple_SET_ITEM(entry, 2, size);
    PyObject *mtime = size != NULL ? mtime_ns(item) : NULL;
    PyTuple_SET_ITEM(entry, 3, mtime);
    PyObject *error = mtime != NULL ? PyLong_FromLong(item->error) : NULL;
    PyTuple_SET_ITEM(entry, 4, error);
    if (error == NULL) {
        Py_DECREF(entry);
        return NULL;
    }
    return entry;
}

/* list_dir(folder) -> [(name, kind, size, mtime_ns, error), ...] */
static PyObject *list_dir(PyObject *module, PyObject *arg) {
    (void)module;
    PyObject *encoded = NULL; /* str, bytes or path-like, encoded like os.fsencode */
    if (!PyUnicode_FSConverter(arg, &encoded)) {
        return NULL;
    }
    Listing listing = {0};
    int failure;
    const char *folder = PyBytes_AS_STRING(encoded);
    Py_BEGIN_ALLOW_THREADS
    failure = read_folder(folder, &listing);
    Py_END_ALLOW_THREADS
    Py_DECREF(encoded);
    PyObject *out = NULL;
    if (failure < 0) {
        PyErr_NoMemory();
    } else if (failure != 0) {
        /* The folder as given in the error, as os.scandir names it. */
        errno = failure;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
    } else if ((out = PyList_New((Py_ssize_t)listing.count)) != NULL) {
        for (size_t i = 0; i < listing.count; i++) {
            PyObject *entry = entry_tuple(&listing.items[i]);
            if (entry == NULL) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, (Py_ssize_t)i, entry);
        }
    }
    PyMem_RawFree(listing.items);
    PyMem_RawFree(listing.names);
    return out;
}

static PyMethodDef METHODS[] = {
    {"read_ranges", (PyCFunction)(void (*)(void))read_ranges, METH_FASTCALL,
     "read_ranges(root, ranges, /)\n--\n\n"
     "Read each (path, offset, length, size, mtime_ns) under root, in order, until one is not "
     "plain (see the module's comment); return the bytes read, one after the other, and the "
     "length read of each range done (fewer than asked at end of file)."},
    {"list_dir", list_dir, METH_O,
     "list_dir(folder, /)\n--\n\n"
     "The entries of folder (not '.' and '..'), sorted by the bytes of their names, each as "
     "(name, kind, size, mtime_ns, error): kind is FILE, DIR, SYMLINK or SPECIAL as lstat "
     "says, BAD_NAME for a name that is not valid UTF-8 (then decoded like os.fsdecode), or "
     "STAT_FAILED with the errno in error. Raises OSError, like os.scandir, when the folder "
     "cannot be read."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_localread",
    "Local files in bulk: small ranges read in one call, a folder listed in one call.", -1,
    METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__localread(void) {
    PyObject *module = PyModule_Create(&MODULE);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "FILE", KIND_FILE) < 0 ||
        PyModule_AddIntConstant(module, "DIR", KIND_DIR) < 0 ||
        PyModule_AddIntConstant(module, "SYMLINK", KIND_SYMLINK) < 0 ||
        PyModule_AddIntConstant(module, "SPECIAL", KIND_SPECIAL) < 0 ||
        PyModule_AddIntConstant(module, "BAD_NAME", KIND_BAD_NAME) < 0 ||
        PyModule_AddIntConstant(module, "STAT_FAILED", KIND_STAT_FAILED) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
