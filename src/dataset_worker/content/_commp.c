/*
 * Native commP core (docs/formats.md#piece-size-and-padding): Fr32 expansion (127 input bytes -> four 32-byte
 * leaves holding 254 data bits each) and the sha2-256-trunc254 binary tree (parent =
 * sha256(left || right) with the last byte & 0x3F), zero-filled up to the power-of-two size
 * from a table of all-zero subtree roots. Byte-compatible with go-fil-commp-hashhash.
 *
 * Streaming with constant memory: one batch of 256 leaves is reduced in place to one node of
 * level 8, and one pending node per level above that is kept (a binary counter of batches).
 *
 * Every tree node hashes a 64-byte message, i.e. two SHA-256 blocks: the data block and a
 * padding block that is the same for every node, so its message schedule is precomputed.
 * Two backends: SHA-NI intrinsics hashing two nodes interleaved (chosen when CPUID reports
 * the SHA extensions; compiled with a per-function target attribute, never -march=native),
 * and a portable one on OpenSSL's SHA256_Transform with a reused context (the one-shot
 * SHA256() looks the algorithm up on every call and is 4x slower per node).
 */
#define PY_SSIZE_T_CLEAN
/* SHA256_Init/SHA256_Transform are deprecated in OpenSSL 3 but remain the cheapest portable way
 * to run single compressions; EVP has no per-block entry point. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <pythread.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define COMMP_HAVE_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define NODE 32
#define CHUNK_IN 127
#define MAX_LEVELS 31 /* log2(64 GiB / 32 bytes): the largest Filecoin piece */
#define MIN_PAYLOAD 65
#define MAX_PAYLOAD ((UINT64_C(1) << MAX_LEVELS) * 32 / 128 * 127)
#define BATCH_LEVEL 8
#define BATCH_LEAVES (1u << BATCH_LEVEL)
/* Below this size the GIL round trip costs more than it lets other threads gain (as hashlib). */
#define GIL_RELEASE_MIN 2048

/* ------------------------------------------------------------------------------------------ */
/* SHA-256 constants and the constant second block of every node message                      */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static const uint32_t IV256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

/* The padding block of a 64-byte message: 0x80, zeros, then the bit length 512 big-endian. */
static uint8_t PAD_BLOCK[64];
/* Its message schedule plus the round constants, W[t] + K[t], computed once at import. */
static uint32_t PAD_WK[64];

static uint32_t rotr32(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void init_pad_schedule(void)
{
    uint32_t w[64];
    memset(PAD_BLOCK, 0, sizeof PAD_BLOCK);
    PAD_BLOCK[0] = 0x80;
    PAD_BLOCK[62] = 0x02; /* 512 = 0x0200 */
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)PAD_BLOCK[4 * t] << 24 | (uint32_t)PAD_BLOCK[4 * t + 1] << 16 |
               (uint32_t)PAD_BLOCK[4 * t + 2] << 8 | PAD_BLOCK[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr32(w[t - 15], 7) ^ rotr32(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr32(w[t - 2], 17) ^ rotr32(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    for (int t = 0; t < 64; t++)
        PAD_WK[t] = w[t] + K256[t];
}

/* ------------------------------------------------------------------------------------------ */
/* Backends. hash_level(in, out, pairs): out[i] = H(in[2i] || in[2i+1]) for i < pairs, nodes of */
/* 32 bytes. out may equal in: every implementation reads a pair before writing its result,    */
/* and result i never lands beyond input pair i.                                                */

typedef void (*hash_level_fn)(const uint8_t *in, uint8_t *out, size_t pairs);

typedef struct {
    const char *name;
    hash_level_fn hash_level;
} Backend;

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void openssl_hash_level(const uint8_t *in, uint8_t *out, size_t pairs)
{
    SHA256_CTX ctx;
    for (size_t i = 0; i < pairs; i++) {
        /* Only h[] matters to SHA256_Transform; the byte counters are never finalized. */
        memcpy(ctx.h, IV256, sizeof IV256);
        SHA256_Transform(&ctx, in + 64 * i);
        SHA256_Transform(&ctx, PAD_BLOCK);
        uint8_t *o = out + NODE * i;
        for (int j = 0; j < 8; j++)
            store_be32(o + 4 * j, ctx.h[j]);
        o[31] &= 0x3F;
    }
}

static const Backend OPENSSL_BACKEND = {"openssl", openssl_hash_level};

#ifdef COMMP_HAVE_SHANI
#define SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* SHA-NI keeps the state as two vectors, lanes high to low: ABEF and CDGH. */

SHANI_TARGET static inline __m128i bswap_lanes(__m128i v)
{
    const __m128i mask = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    return _mm_shuffle_epi8(v, mask);
}

/* Next four schedule words from the previous sixteen (m0 oldest ... m3 newest). */
SHANI_TARGET static inline __m128i schedule4(__m128i m0, __m128i m1, __m128i m2, __m128i m3)
{
    __m128i t = _mm_add_epi32(_mm_sha256msg1_epu32(m0, m1), _mm_alignr_epi8(m3, m2, 4));
    return _mm_sha256msg2_epu32(t, m3);
}

/* Four rounds with W+K in wk; afterwards abef/cdgh hold the new state again. */
#define SHANI_ROUNDS4(abef, cdgh, wk)                                                   \
    do {                                                                                \
        (cdgh) = _mm_sha256rnds2_epu32((cdgh), (abef), (wk));                           \
        (abef) = _mm_sha256rnds2_epu32((abef), (cdgh), _mm_shuffle_epi32((wk), 0x0E)); \
    } while (0)

SHANI_TARGET static inline void shani_store(__m128i abef, __m128i cdgh, uint8_t *out)
{
    const __m128i trunc254 = _mm_set_epi32(0x3FFFFFFF, -1, -1, -1);
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    __m128i abcd = _mm_blend_epi16(feba, dchg, 0xF0);
    __m128i efgh = _mm_alignr_epi8(dchg, feba, 8);
    _mm_storeu_si128((__m128i *)out, bswap_lanes(abcd));
    _mm_storeu_si128((__m128i *)(out + 16), _mm_and_si128(bswap_lanes(efgh), trunc254));
}

/* Two independent 64-byte messages at once: their dependency chains interleave, which keeps
 * the SHA unit busy while each round waits on the previous one. */
SHANI_TARGET static inline void shani_node2(const uint8_t *in0, const uint8_t *in1, uint8_t *out0,
                                            uint8_t *out1)
{
    const __m128i iv_abef = _mm_set_epi32((int)IV256[0], (int)IV256[1], (int)IV256[4],
                                          (int)IV256[5]);
    const __m128i iv_cdgh = _mm_set_epi32((int)IV256[2], (int)IV256[3], (int)IV256[6],
                                          (int)IV256[7]);
    __m128i m[4], n[4];
    for (int j = 0; j < 4; j++) {
        m[j] = bswap_lanes(_mm_loadu_si128((const __m128i *)(in0 + 16 * j)));
        n[j] = bswap_lanes(_mm_loadu_si128((const __m128i *)(in1 + 16 * j)));
    }
    __m128i a0 = iv_abef, a1 = iv_cdgh, b0 = iv_abef, b1 = iv_cdgh;
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        if (g >= 4) {
            m[g & 3] = schedule4(m[g & 3], m[(g + 1) & 3], m[(g + 2) & 3], m[(g + 3) & 3]);
            n[g & 3] = schedule4(n[g & 3], n[(g + 1) & 3], n[(g + 2) & 3], n[(g + 3) & 3]);
        }
        const __m128i k = _mm_loadu_si128((const __m128i *)(K256 + 4 * g));
        __m128i wa = _mm_add_epi32(m[g & 3], k);
        __m128i wb = _mm_add_epi32(n[g & 3], k);
        SHANI_ROUNDS4(a0, a1, wa);
        SHANI_ROUNDS4(b0, b1, wb);
    }
    a0 = _mm_add_epi32(a0, iv_abef);
    a1 = _mm_add_epi32(a1, iv_cdgh);
    b0 = _mm_add_epi32(b0, iv_abef);
    b1 = _mm_add_epi32(b1, iv_cdgh);
    __m128i sa0 = a0, sa1 = a1, sb0 = b0, sb1 = b1;
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        const __m128i wk = _mm_loadu_si128((const __m128i *)(PAD_WK + 4 * g));
        SHANI_ROUNDS4(a0, a1, wk);
        SHANI_ROUNDS4(b0, b1, wk);
    }
    a0 = _mm_add_epi32(a0, sa0);
    a1 = _mm_add_epi32(a1, sa1);
    b0 = _mm_add_epi32(b0, sb0);
    b1 = _mm_add_epi32(b1, sb1);
    shani_store(a0, a1, out0);
    shani_store(b0, b1, out1);
}

SHANI_TARGET static void shani_hash_level(const uint8_t *in, uint8_t *out, size_t pairs)
{
    size_t i = 0;
    for (; i + 2 <= pairs; i += 2)
        shani_node2(in + 64 * i, in + 64 * (i + 1), out + NODE * i, out + NODE * (i + 1));
    if (i < pairs) {
        /* A lone node: hash it twice over rather than keep a one-lane copy of the code. */
        uint8_t spare[NODE];
        shani_node2(in + 64 * i, in + 64 * i, out + NODE * i, spare);
    }
}

static const Backend SHANI_BACKEND = {"sha-ni", shani_hash_level};

static int cpu_has_sha_ni(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
        return 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1; /* CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29] */
}
#endif /* COMMP_HAVE_SHANI */

static const Backend *AVAILABLE[2];
static int N_AVAILABLE;
static const Backend *DEFAULT_BACKEND;

/* Roots of all-zero subtrees: ZERO_ROOT[i] covers 2^i zero leaves. */
static uint8_t ZERO_ROOT[MAX_LEVELS + 1][NODE];

/* ------------------------------------------------------------------------------------------ */
/* Fr32: 127 bytes = 1016 bits = 4 x 254 bits. Leaf k takes input bits 254k .. 254k+253 (as a  */
/* little-endian bit stream) and leaves its top two bits zero. 254k = 8 * (31k + ...) + 6k mod */
/* 8, so leaves 1, 2, 3 are the input shifted right by 6, 4 and 2 bits.                        */

static void fr32_expand(const uint8_t *in, uint8_t *out)
{
    memcpy(out, in, 32);
    out[31] &= 0x3F;
    for (int i = 32; i < 64; i++)
        out[i] = (uint8_t)(in[i] << 2 | in[i - 1] >> 6);
    out[63] &= 0x3F;
    for (int i = 64; i < 96; i++)
        out[i] = (uint8_t)(in[i] << 4 | in[i - 1] >> 4);
    out[95] &= 0x3F;
    for (int i = 96; i < 127; i++)
        out[i] = (uint8_t)(in[i] << 6 | in[i - 1] >> 2);
    out[127] = in[126] >> 2;
}

/* ------------------------------------------------------------------------------------------ */
/* A stack of pending nodes, one per level, for a count of leaves read as a binary counter.    */

typedef struct {
    uint64_t count; /* leaves covered; bit i set <=> node[i] is pending */
    uint8_t node[MAX_LEVELS + 2][NODE];
} Stack;

/* Add a complete subtree of 2^level leaves; count must have no bit set below level. */
static void stack_push(const Backend *b, Stack *s, int level, const uint8_t *root)
{
    uint8_t pair[2 * NODE];
    memcpy(pair + NODE, root, NODE);
    int j = level;
    while ((s->count >> j) & 1) {
        memcpy(pair, s->node[j], NODE);
        b->hash_level(pair, pair + NODE, 1);
        j++;
    }
    memcpy(s->node[j], pair + NODE, NODE);
    s->count += UINT64_C(1) << level;
}

/* Fill with zero subtrees up to the next power of two and return the root. */
static void stack_close(const Backend *b, Stack *s, uint8_t *out)
{
    while (s->count & (s->count - 1)) {
        int level = __builtin_ctzll(s->count);
        stack_push(b, s, level, ZERO_ROOT[level]);
    }
    memcpy(out, s->node[__builtin_ctzll(s->count)], NODE);
}

/* ------------------------------------------------------------------------------------------ */
/* The streaming state                                                                          */

typedef struct {
    const Backend *backend;
    uint64_t payload;    /* bytes accepted */
    size_t carry_len;    /* bytes of an incomplete 127-byte chunk */
    size_t nleaves;      /* leaves of the current batch, a multiple of 4 below BATCH_LEAVES */
    Stack batches;       /* in units of whole batches: level i here is tree level BATCH_LEVEL+i */
    uint8_t carry[CHUNK_IN];
    uint8_t leaves[BATCH_LEAVES * NODE];
} State;

static void state_fold_batch(State *st)
{
    for (size_t n = BATCH_LEAVES; n > 1; n /= 2)
        st->backend->hash_level(st->leaves, st->leaves, n / 2);
    stack_push(st->backend, &st->batches, 0, st->leaves);
    st->nleaves = 0;
}

static void state_add_chunk(State *st, const uint8_t *chunk)
{
    fr32_expand(chunk, st->leaves + NODE * st->nleaves);
    st->nleaves += 4;
    if (st->nleaves == BATCH_LEAVES)
        state_fold_batch(st);
}

static void state_absorb(State *st, const uint8_t *p, size_t n)
{
    if (st->carry_len) {
        size_t take = CHUNK_IN - st->carry_len;
        if (take > n)
            take = n;
        memcpy(st->carry + st->carry_len, p, take);
        st->carry_len += take;
        p += take;
        n -= take;
        if (st->carry_len < CHUNK_IN)
            return;
        state_add_chunk(st, st->carry);
        st->carry_len = 0;
    }
    for (; n >= CHUNK_IN; p += CHUNK_IN, n -= CHUNK_IN)
        state_add_chunk(st, p);
    memcpy(st->carry, p, n);
    st->carry_len = n;
}

/* The commitment of everything absorbed so far; leaves the state untouched (like hashlib). */
static void state_digest(const State *st, uint8_t *out)
{
    const Backend *b = st->backend;
    Stack s;
    uint8_t tail[(BATCH_LEAVES + 4) * NODE];
    memset(&s, 0, sizeof s);
    for (int i = 0; i + BATCH_LEVEL <= MAX_LEVELS + 1; i++)
        if ((st->batches.count >> i) & 1)
            memcpy(s.node[i + BATCH_LEVEL], st->batches.node[i], NODE);
    s.count = st->batches.count << BATCH_LEVEL;
    size_t n = st->nleaves;
    memcpy(tail, st->leaves, NODE * n);
    if (st->carry_len) {
        uint8_t chunk[CHUNK_IN] = {0}; /* Fr32 of zero bytes is zero leaves, as Calc pads */
        memcpy(chunk, st->carry, st->carry_len);
        fr32_expand(chunk, tail + NODE * n);
        n += 4;
    }
    for (size_t i = 0; i < n; i++)
        stack_push(b, &s, 0, tail + NODE * i);
    stack_close(b, &s, out);
}

/* ------------------------------------------------------------------------------------------ */
/* Python objects                                                                               */

static PyObject *CommPError;

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    State *state;
} Hasher;

/* Serialize users of one hasher; wait without the GIL so the holder can finish. */
static void hasher_lock(Hasher *self)
{
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

static const Backend *find_backend(const char *name)
{
    if (name == NULL)
        return DEFAULT_BACKEND;
    for (int i = 0; i < N_AVAILABLE; i++)
        if (strcmp(AVAILABLE[i]->name, name) == 0)
            return AVAILABLE[i];
    PyErr_Format(PyExc_ValueError, "unknown or unavailable commP backend \"%s\" (available: %s%s%s)",
                 name, AVAILABLE[0]->name, N_AVAILABLE > 1 ? ", " : "",
                 N_AVAILABLE > 1 ? AVAILABLE[1]->name : "");
    return NULL;
}

static int Hasher_init(Hasher *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"backend", NULL};
    const char *name = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|z:Hasher", kwlist, &name))
        return -1;
    const Backend *b = find_backend(name);
    if (b == NULL)
        return -1;
    if (self->lock == NULL && (self->lock = PyThread_allocate_lock()) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (self->state == NULL && (self->state = PyMem_RawMalloc(sizeof(State))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    hasher_lock(self);
    memset(self->state, 0, sizeof(State));
    self->state->backend = b;
    PyThread_release_lock(self->lock);
    return 0;
}

static void Hasher_dealloc(Hasher *self)
{
    if (self->lock)
        PyThread_free_lock(self->lock);
    PyMem_RawFree(self->state);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int hasher_ready(Hasher *self)
{
    if (self->state == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Hasher.__init__ was not called");
        return 0;
    }
    return 1;
}

static PyObject *Hasher_update(Hasher *self, PyObject *data)
{
    Py_buffer view;
    if (!hasher_ready(self))
        return NULL;
    if (PyUnicode_Check(data) || PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        if (PyUnicode_Check(data) || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError,
                         "commP input must be bytes, bytearray or memoryview, not %.100s",
                         Py_TYPE(data)->tp_name);
        }
        return NULL;
    }
    hasher_lock(self);
    State *st = self->state;
    uint64_t len = (uint64_t)view.len;
    if (len > MAX_PAYLOAD - st->payload) {
        PyThread_release_lock(self->lock);
        PyBuffer_Release(&view);
        PyErr_Format(CommPError,
                     "commP input exceeds the 64 GiB piece limit: at most %llu bytes "
                     "(2^31*32/128*127) can be hashed, got %llu + %llu",
                     (unsigned long long)MAX_PAYLOAD, (unsigned long long)st->payload,
                     (unsigned long long)len);
        return NULL;
    }
    st->payload += len;
    if (view.len >= GIL_RELEASE_MIN) {
        Py_BEGIN_ALLOW_THREADS state_absorb(st, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
    }
    else {
        state_absorb(st, view.buf, (size_t)view.len);
    }
    PyThread_release_lock(self->lock);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *Hasher_digest(Hasher *self, PyObject *Py_UNUSED(ignored))
{
    uint8_t out[NODE];
    if (!hasher_ready(self))
        return NULL;
    hasher_lock(self);
    uint64_t payload = self->state->payload;
    if (payload < MIN_PAYLOAD) {
        PyThread_release_lock(self->lock);
        PyErr_Format(CommPError,
                     "commP needs at least %d bytes of input (Filecoin refuses smaller pieces), "
                     "got %llu",
                     MIN_PAYLOAD, (unsigned long long)payload);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS state_digest(self->state, out);
    Py_END_ALLOW_THREADS
    PyThread_release_lock(self->lock);
    return Py_BuildValue("(y#K)", (const char *)out, (Py_ssize_t)NODE, (unsigned long long)payload);
}

static PyObject *Hasher_get_payload_size(Hasher *self, void *Py_UNUSED(closure))
{
    if (!hasher_ready(self))
        return NULL;
    hasher_lock(self);
    uint64_t payload = self->state->payload;
    PyThread_release_lock(self->lock);
    return PyLong_FromUnsignedLongLong(payload);
}

static PyObject *Hasher_get_backend(Hasher *self, void *Py_UNUSED(closure))
{
    if (!hasher_ready(self))
        return NULL;
    return PyUnicode_FromString(self->state->backend->name);
}

static PyMethodDef Hasher_methods[] = {
    {"update", (PyCFunction)Hasher_update, METH_O,
     "update(data) -> None\n\nAppend bytes (any contiguous buffer); hashes without the GIL."},
    {"digest", (PyCFunction)Hasher_digest, METH_NOARGS,
     "digest() -> (bytes, int)\n\nThe 32-byte commitment of the bytes so far and their count, "
     "taken together (the state is kept)."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Hasher_getset[] = {
    {"payload_size", (getter)Hasher_get_payload_size, NULL, "Bytes accepted so far.", NULL},
    {"backend", (getter)Hasher_get_backend, NULL, "Name of the SHA-256 backend in use.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject HasherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dataset_worker.content._commp.Hasher",
    .tp_doc = "Hasher(backend=None)\n\nStreaming Filecoin piece commitment (commP) of a byte "
              "stream.",
    .tp_basicsize = sizeof(Hasher),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Hasher_init,
    .tp_dealloc = (destructor)Hasher_dealloc,
    .tp_methods = Hasher_methods,
    .tp_getset = Hasher_getset,
};

/* ------------------------------------------------------------------------------------------ */
/* Module functions                                                                             */

static PyObject *mod_backend(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    return PyUnicode_FromString(DEFAULT_BACKEND->name);
}

static PyObject *mod_backends(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    PyObject *t = PyTuple_New(N_AVAILABLE);
    if (t == NULL)
        return NULL;
    for (int i = 0; i < N_AVAILABLE; i++) {
        PyObject *s = PyUnicode_FromString(AVAILABLE[i]->name);
        if (s == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

static int parse_level(PyObject *obj, const char *what, int *level)
{
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred())
        return 0;
    if (v < 0 || v > MAX_LEVELS) {
        PyErr_Format(PyExc_ValueError, "%s must be a tree level from 0 to %d, got %ld", what,
                     MAX_LEVELS, v);
        return 0;
    }
    *level = (int)v;
    return 1;
}

static PyObject *mod_zero_root(PyObject *Py_UNUSED(m), PyObject *arg)
{
    int level;
    if (!parse_level(arg, "level", &level))
        return NULL;
    return PyBytes_FromStringAndSize((const char *)ZERO_ROOT[level], NODE);
}

static PyObject *mod_pad(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer commitment;
    PyObject *from_obj, *to_obj;
    int from, to;
    if (!PyArg_ParseTuple(args, "y*OO:pad", &commitment, &from_obj, &to_obj))
        return NULL;
    if (commitment.len != NODE) {
        PyErr_Format(PyExc_ValueError, "a piece commitment is 32 bytes, got %zd", commitment.len);
        PyBuffer_Release(&commitment);
        return NULL;
    }
    if (!parse_level(from_obj, "from_level", &from) || !parse_level(to_obj, "to_level", &to)) {
        PyBuffer_Release(&commitment);
        return NULL;
    }
    uint8_t pair[2 * NODE];
    memcpy(pair + NODE, commitment.buf, NODE);
    PyBuffer_Release(&commitment);
    /* PadCommP: the commitment is the left child, the zero subtree of its level the right. */
    for (int level = from; level < to; level++) {
        memcpy(pair, pair + NODE, NODE);
        memcpy(pair + NODE, ZERO_ROOT[level], NODE);
        DEFAULT_BACKEND->hash_level(pair, pair + NODE, 1);
    }
    return PyBytes_FromStringAndSize((const char *)pair + NODE, NODE);
}

static PyMethodDef module_methods[] = {
    {"backend", mod_backend, METH_NOARGS,
     "backend() -> str\n\nThe SHA-256 backend a Hasher uses by default: \"sha-ni\" or "
     "\"openssl\"."},
    {"backends", mod_backends, METH_NOARGS,
     "backends() -> tuple[str, ...]\n\nBackends usable on this CPU, the default first."},
    {"zero_root", mod_zero_root, METH_O,
     "zero_root(level) -> bytes\n\nRoot of an all-zero subtree of 2**level leaves."},
    {"pad", mod_pad, METH_VARARGS,
     "pad(commitment, from_level, to_level) -> bytes\n\nLift a commitment of a 2**from_level "
     "leaf tree to a 2**to_level leaf tree whose remainder is zeros (PadCommP)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef commp_module = {
    PyModuleDef_HEAD_INIT, "_commp",
    "Native Filecoin piece commitment (commP): Fr32 + sha2-256-trunc254 binary tree.", -1,
    module_methods, NULL, NULL, NULL, NULL};

#ifdef COMMP_HAVE_SHANI
/* Guard against a CPU or compiler surprise: SHA-NI must agree with OpenSSL bit for bit. */
static int shani_self_test(void)
{
    uint8_t in[4 * NODE], a[2 * NODE], b[2 * NODE];
    for (int i = 0; i < (int)sizeof in; i++)
        in[i] = (uint8_t)(i * 37 + 11);
    openssl_hash_level(in, a, 2);
    shani_hash_level(in, b, 2);
    if (memcmp(a, b, sizeof a) != 0)
        return 0;
    openssl_hash_level(in, a, 1);
    shani_hash_level(in, b, 1);
    return memcmp(a, b, NODE) == 0;
}
#endif

PyMODINIT_FUNC PyInit__commp(void)
{
    init_pad_schedule();
    N_AVAILABLE = 0;
#ifdef COMMP_HAVE_SHANI
    if (cpu_has_sha_ni() && shani_self_test())
        AVAILABLE[N_AVAILABLE++] = &SHANI_BACKEND;
#endif
    AVAILABLE[N_AVAILABLE++] = &OPENSSL_BACKEND;
    DEFAULT_BACKEND = AVAILABLE[0];

    memset(ZERO_ROOT[0], 0, NODE);
    for (int i = 1; i <= MAX_LEVELS; i++) {
        uint8_t pair[2 * NODE];
        memcpy(pair, ZERO_ROOT[i - 1], NODE);
        memcpy(pair + NODE, ZERO_ROOT[i - 1], NODE);
        OPENSSL_BACKEND.hash_level(pair, ZERO_ROOT[i], 1);
    }

    if (PyType_Ready(&HasherType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&commp_module);
    if (m == NULL)
        return NULL;
    CommPError = PyErr_NewExceptionWithDoc(
        "dataset_worker.content.commp.CommPError",
        "Input that has no piece commitment: too short, too long, or a bad size.",
        PyExc_ValueError, NULL);
    if (CommPError == NULL || PyModule_AddObjectRef(m, "CommPError", CommPError) < 0 ||
        PyModule_AddObjectRef(m, "Hasher", (PyObject *)&HasherType) < 0 ||
        PyModule_AddIntConstant(m, "MIN_PAYLOAD", MIN_PAYLOAD) < 0 ||
        PyModule_AddObject(m, "MAX_PAYLOAD", PyLong_FromUnsignedLongLong(MAX_PAYLOAD)) < 0 ||
        PyModule_AddIntConstant(m, "MAX_LEVELS", MAX_LEVELS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
