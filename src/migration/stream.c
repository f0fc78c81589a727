/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "migration/stream.h"
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* The layout is described byte by byte in docs/migration.md. */
#define MIG_MAGIC      "QLITEMIG"
#define MIG_MAGIC_LEN  8
#define MIG_HEADER_LEN (MIG_MAGIC_LEN + 4) /* magic, version */
#define MIG_PREFIX_LEN 5                   /* record type, body length */
#define MIG_CRC_LEN    4
#define MIG_ENTRY_LEN  8 /* a page entry: address | flags */

/* Page entry flags, in the low bits of the page-aligned address. */
#define MIG_PAGE_ZERO  0x1
#define MIG_PAGE_DATA  0x2
#define MIG_PAGE_FLAGS ((uint64_t)MIG_PAGE_SIZE - 1)

#define MIG_STATE_BODY_MAX (1 + MIG_ID_MAX + MIG_DATA_MAX)
#define MIG_RAM_BODY_MAX   (MIG_BATCH_MAX * (MIG_ENTRY_LEN + MIG_PAGE_SIZE))
#define MIG_WRITER_BUF     (64 * 1024)

static void put_le32(uint8_t *p, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return GUINT32_FROM_LE(v);
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return GUINT64_FROM_LE(v);
}

/* zlib's crc32 restarts from its initial value when given no buffer: skip empty parts. */
static uint32_t mig_crc(uint32_t crc, const void *p, size_t n)
{
    return n ? (uint32_t)crc32(crc, p, (uInt)n) : crc;
}

/* Section ids appear in error messages: printable ASCII without spaces. */
static bool mig_id_valid(const char *id, size_t len)
{
    if (len < 1 || len > MIG_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (id[i] <= ' ' || id[i] > '~') {
            return false;
        }
    }
    return true;
}

static bool page_is_zero(const void *page)
{
    const uint8_t *p = page;
    /* Word-wise OR over 256-byte chunks: vectorizes, and stops at the first non-zero chunk. */
    for (size_t off = 0; off < MIG_PAGE_SIZE; off += 256) {
        uint64_t acc = 0;
        for (size_t i = 0; i < 256; i += sizeof(uint64_t)) {
            uint64_t v;
            memcpy(&v, p + off + i, sizeof(v));
            acc |= v;
        }
        if (acc) {
            return false;
        }
    }
    return true;
}

/* ---- writer ---- */

typedef enum {
    MIG_WRITER_NEW,
    MIG_WRITER_HEADER_DONE,
    MIG_WRITER_BODY, /* after the machine record */
    MIG_WRITER_ENDED,
} MigWriterState;

struct MigWriter {
    int fd;
    MigWriterState state;
    uint8_t *buf; /* MIG_WRITER_BUF bytes not yet written */
    size_t used;
    uint8_t *batch; /* the body of the RAM record being filled */
    size_t batch_len;
    unsigned batch_pages;
    MigStats stats;
};

MigWriter *mig_writer_new(int fd)
{
    MigWriter *w = g_new0(MigWriter, 1);
    w->fd = fd;
    w->buf = g_malloc(MIG_WRITER_BUF);
    w->batch = g_malloc(MIG_RAM_BODY_MAX);
    return w;
}

void mig_writer_free(MigWriter *w)
{
    if (!w) {
        return;
    }
    g_free(w->buf);
    g_free(w->batch);
    g_free(w);
}

MigStats mig_writer_get_stats(const MigWriter *w)
{
    return w->stats;
}

static bool mig_write_fd(MigWriter *w, const uint8_t *p, size_t n, GError **error)
{
    while (n > 0) {
        ssize_t done = write(w->fd, p, n);
        if (done < 0 && errno == EINTR) {
            continue;
        }
        if (done < 0) {
            qlite_error_errno(error, errno, "cannot write the migration stream");
            return false;
        }
        p += done;
        n -= (size_t)done;
        w->stats.bytes += (uint64_t)done;
    }
    return true;
}

static bool mig_write_buffered(MigWriter *w, GError **error)
{
    size_t used = w->used;
    w->used = 0;
    return mig_write_fd(w, w->buf, used, error);
}

/* Small pieces are gathered in the buffer; large ones go to the fd directly. */
static bool mig_out(MigWriter *w, const void *p, size_t n, GError **error)
{
    if (w->used + n > MIG_WRITER_BUF && !mig_write_buffered(w, error)) {
        return false;
    }
    if (n >= MIG_WRITER_BUF) {
        return mig_write_fd(w, p, n, error);
    }
    if (n) {
        memcpy(w->buf + w->used, p, n);
        w->used += n;
    }
    return true;
}

/* A record: type, body length, body (head then data), CRC-32 of everything before it. */
static bool mig_emit(MigWriter *w, MigRecordType type, const void *head, size_t head_len,
                     const void *data, size_t len, GError **error)
{
    uint8_t prefix[MIG_PREFIX_LEN];
    prefix[0] = type;
    put_le32(prefix + 1, (uint32_t)(head_len + len));
    uint32_t crc = mig_crc(0, prefix, sizeof(prefix));
    crc = mig_crc(crc, head, head_len);
    crc = mig_crc(crc, data, len);
    uint8_t trailer[MIG_CRC_LEN];
    put_le32(trailer, crc);
    return mig_out(w, prefix, sizeof(prefix), error) && mig_out(w, head, head_len, error) &&
           mig_out(w, data, len, error) && mig_out(w, trailer, sizeof(trailer), error);
}

static bool mig_emit_batch(MigWriter *w, GError **error)
{
    if (!w->batch_pages) {
        return true;
    }
    size_t len = w->batch_len;
    w->batch_len = 0;
    w->batch_pages = 0;
    return mig_emit(w, MIG_RECORD_RAM, NULL, 0, w->batch, len, error);
}

bool mig_write_header(MigWriter *w, GError **error)
{
    g_return_val_if_fail(w->state == MIG_WRITER_NEW, false);
    uint8_t header[MIG_HEADER_LEN];
    memcpy(header, MIG_MAGIC, MIG_MAGIC_LEN);
    put_le32(header + MIG_MAGIC_LEN, MIG_VERSION);
    w->state = MIG_WRITER_HEADER_DONE;
    return mig_out(w, header, sizeof(header), error);
}

bool mig_write_machine(MigWriter *w, const void *cfg, size_t len, GError **error)
{
    g_return_val_if_fail(w->state == MIG_WRITER_HEADER_DONE, false);
    if (len > MIG_DATA_MAX) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "machine configuration of %zu bytes is over the migration stream's limit of "
                    "%d bytes",
                    len, MIG_DATA_MAX);
        return false;
    }
    w->state = MIG_WRITER_BODY;
    return mig_emit(w, MIG_RECORD_MACHINE, NULL, 0, cfg, len, error);
}

bool mig_write_state(MigWriter *w, const char *id, const void *data, size_t len, GError **error)
{
    g_return_val_if_fail(w->state == MIG_WRITER_BODY, false);
    size_t id_len = strlen(id);
    if (!mig_id_valid(id, id_len)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "invalid migration section id '%s' (1 to %d printable characters, no spaces)",
                    id, MIG_ID_MAX);
        return false;
    }
    if (len > MIG_DATA_MAX) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "section '%s' of %zu bytes is over the migration stream's limit of %d bytes",
                    id, len, MIG_DATA_MAX);
        return false;
    }
    uint8_t head[1 + MIG_ID_MAX];
    head[0] = (uint8_t)id_len;
    memcpy(head + 1, id, id_len);
    return mig_emit_batch(w, error) &&
           mig_emit(w, MIG_RECORD_STATE, head, 1 + id_len, data, len, error);
}

bool mig_write_page(MigWriter *w, uint64_t gpa, const void *page, GError **error)
{
    g_return_val_if_fail(w->state == MIG_WRITER_BODY, false);
    g_return_val_if_fail(!(gpa & MIG_PAGE_FLAGS), false);
    uint8_t *entry = w->batch + w->batch_len;
    if (page_is_zero(page)) {
        put_le64(entry, gpa | MIG_PAGE_ZERO);
        w->batch_len += MIG_ENTRY_LEN;
        w->stats.zero_pages++;
    } else {
        put_le64(entry, gpa | MIG_PAGE_DATA);
        memcpy(entry + MIG_ENTRY_LEN, page, MIG_PAGE_SIZE);
        w->batch_len += MIG_ENTRY_LEN + MIG_PAGE_SIZE;
        w->stats.normal_pages++;
    }
    if (++w->batch_pages == MIG_BATCH_MAX) {
        return mig_emit_batch(w, error);
    }
    return true;
}

bool mig_writer_flush(MigWriter *w, GError **error)
{
    return mig_emit_batch(w, error) && mig_write_buffered(w, error);
}

bool mig_write_end(MigWriter *w, GError **error)
{
    g_return_val_if_fail(w->state == MIG_WRITER_BODY, false);
    w->state = MIG_WRITER_ENDED;
    return mig_emit_batch(w, error) && mig_emit(w, MIG_RECORD_END, NULL, 0, NULL, 0, error) &&
           mig_write_buffered(w, error);
}

/* ---- reader ---- */

typedef enum {
    MIG_READER_NEW,
    MIG_READER_MACHINE, /* the header is read, the machine record comes next */
    MIG_READER_BODY,
    MIG_READER_ENDED,
} MigReaderState;

struct MigReader {
    int fd;
    MigReaderState state;
    MigPageFunc *page;
    void *opaque;
    uint8_t *body; /* body and CRC of the last record read */
    size_t body_size;
    char id[MIG_ID_MAX + 1];
    GHashTable *ids; /* section ids seen */
    MigStats stats;
};

MigReader *mig_reader_new(int fd, MigPageFunc *page, void *opaque)
{
    g_return_val_if_fail(page != NULL, NULL);
    MigReader *r = g_new0(MigReader, 1);
    r->fd = fd;
    r->page = page;
    r->opaque = opaque;
    r->ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return r;
}

void mig_reader_free(MigReader *r)
{
    if (!r) {
        return;
    }
    g_free(r->body);
    g_hash_table_unref(r->ids);
    g_free(r);
}

MigStats mig_reader_get_stats(const MigReader *r)
{
    return r->stats;
}

static void G_GNUC_PRINTF(2, 3) mig_corrupted(GError **error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "migration stream corrupted: %s", msg);
}

static void mig_truncated(GError **error, const char *where)
{
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "migration stream truncated %s", where);
}

/* Reads n bytes, fewer (*got) only when the stream ends first. */
static bool mig_read_fd(MigReader *r, void *buf, size_t n, size_t *got, GError **error)
{
    uint8_t *p = buf;
    *got = 0;
    while (*got < n) {
        ssize_t done = read(r->fd, p + *got, n - *got);
        if (done < 0 && errno == EINTR) {
            continue;
        }
        if (done < 0) {
            qlite_error_errno(error, errno, "cannot read the migration stream");
            return false;
        }
        if (done == 0) {
            break;
        }
        *got += (size_t)done;
        r->stats.bytes += (uint64_t)done;
    }
    return true;
}

bool mig_read_header(MigReader *r, GError **error)
{
    g_return_val_if_fail(r->state == MIG_READER_NEW, false);
    uint8_t header[MIG_HEADER_LEN];
    size_t got;
    if (!mig_read_fd(r, header, sizeof(header), &got, error)) {
        return false;
    }
    if (got == 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "migration stream is empty");
        return false;
    }
    if (memcmp(header, MIG_MAGIC, MIN(got, (size_t)MIG_MAGIC_LEN))) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "not a qlite migration stream (bad magic)");
        return false;
    }
    if (got < sizeof(header)) {
        mig_truncated(error, "in the header");
        return false;
    }
    uint32_t version = get_le32(header + MIG_MAGIC_LEN);
    if (version != MIG_VERSION) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "migration stream version %u is not supported (this qlite reads version %d)",
                    version, MIG_VERSION);
        return false;
    }
    r->state = MIG_READER_MACHINE;
    return true;
}

/* The id of a (possibly partial) state body, if it has a whole valid one. */
static const char *mig_state_id(MigReader *r, const uint8_t *body, size_t len)
{
    if (len < 1 || len < 1 + (size_t)body[0] || !mig_id_valid((const char *)body + 1, body[0])) {
        return NULL;
    }
    memcpy(r->id, body + 1, body[0]);
    r->id[body[0]] = '\0';
    return r->id;
}

/* Names the record in a truncation or checksum message; got is how much of body arrived. */
static char *mig_describe(MigReader *r, uint8_t type, const uint8_t *body, size_t got,
                          bool truncated)
{
    if (type == MIG_RECORD_MACHINE) {
        return g_strdup("in the machine configuration");
    }
    if (type == MIG_RECORD_END) {
        return g_strdup("in the end marker");
    }
    if (type == MIG_RECORD_STATE) {
        const char *id = mig_state_id(r, body, got);
        return id ? g_strdup_printf("in section '%s'", id) : g_strdup("in a section header");
    }
    /* RAM: a cut inside a page's data names the page. */
    for (size_t off = 0; truncated && off + MIG_ENTRY_LEN <= got;) {
        uint64_t entry = get_le64(body + off);
        off += MIG_ENTRY_LEN;
        if ((entry & MIG_PAGE_FLAGS) == MIG_PAGE_DATA) {
            if (off + MIG_PAGE_SIZE > got) {
                return g_strdup_printf("in RAM page at 0x%" G_GINT64_MODIFIER "x",
                                       entry & ~MIG_PAGE_FLAGS);
            }
            off += MIG_PAGE_SIZE;
        }
    }
    return g_strdup("in a RAM record");
}

static bool mig_parse_state(MigReader *r, MigRecord *rec, size_t len, GError **error)
{
    const char *id = mig_state_id(r, r->body, len);
    if (!id) {
        mig_corrupted(error, "invalid section id");
        return false;
    }
    if (g_hash_table_contains(r->ids, id)) {
        mig_corrupted(error, "section '%s' appears twice", id);
        return false;
    }
    g_hash_table_add(r->ids, g_strdup(id));
    size_t head_len = 1 + (size_t)r->body[0];
    rec->id = id;
    rec->data = r->body + head_len;
    rec->len = len - head_len;
    return true;
}

static bool mig_parse_ram(MigReader *r, MigRecord *rec, size_t len, GError **error)
{
    for (size_t off = 0; off < len;) {
        if (len - off < MIG_ENTRY_LEN) {
            mig_corrupted(error, "RAM record ends inside a page entry");
            return false;
        }
        uint64_t entry = get_le64(r->body + off);
        uint64_t gpa = entry & ~MIG_PAGE_FLAGS;
        unsigned flags = (unsigned)(entry & MIG_PAGE_FLAGS);
        const uint8_t *data = NULL;
        off += MIG_ENTRY_LEN;
        if (flags == MIG_PAGE_DATA) {
            if (len - off < MIG_PAGE_SIZE) {
                mig_corrupted(error, "RAM record ends inside page 0x%" G_GINT64_MODIFIER "x", gpa);
                return false;
            }
            data = r->body + off;
            off += MIG_PAGE_SIZE;
        } else if (flags != MIG_PAGE_ZERO) {
            mig_corrupted(error, "invalid flags 0x%x for RAM page at 0x%" G_GINT64_MODIFIER "x",
                          flags, gpa);
            return false;
        }
        if (rec->pages == MIG_BATCH_MAX) {
            mig_corrupted(error, "RAM record of more than %d pages", MIG_BATCH_MAX);
            return false;
        }
        if (!r->page(r->opaque, gpa, data, error)) {
            return false;
        }
        rec->pages++;
        if (data) {
            r->stats.normal_pages++;
        } else {
            r->stats.zero_pages++;
        }
    }
    return true;
}

bool mig_read_next(MigReader *r, MigRecord *rec, GError **error)
{
    g_return_val_if_fail(r->state == MIG_READER_MACHINE || r->state == MIG_READER_BODY, false);
    *rec = (MigRecord){0};
    uint8_t prefix[MIG_PREFIX_LEN];
    size_t got;
    if (!mig_read_fd(r, prefix, sizeof(prefix), &got, error)) {
        return false;
    }
    if (got < sizeof(prefix)) {
        mig_truncated(error, "before the end marker");
        return false;
    }
    uint8_t type = prefix[0];
    uint32_t len = get_le32(prefix + 1);
    const char *name;
    size_t max;
    switch (type) {
    case MIG_RECORD_MACHINE:
        name = "machine configuration";
        max = MIG_DATA_MAX;
        break;
    case MIG_RECORD_STATE:
        name = "state section";
        max = MIG_STATE_BODY_MAX;
        break;
    case MIG_RECORD_RAM:
        name = "RAM record";
        max = MIG_RAM_BODY_MAX;
        break;
    case MIG_RECORD_END:
        name = "end marker";
        max = 0;
        break;
    default:
        mig_corrupted(error, "unknown record type 0x%02x", type);
        return false;
    }
    if (len > max) {
        mig_corrupted(error, "%s too long (%u bytes, at most %zu)", name, len, max);
        return false;
    }
    if (r->state == MIG_READER_MACHINE && type != MIG_RECORD_MACHINE) {
        mig_corrupted(error, "it does not begin with the machine configuration");
        return false;
    }
    if (r->state == MIG_READER_BODY && type == MIG_RECORD_MACHINE) {
        mig_corrupted(error, "a second machine configuration");
        return false;
    }

    size_t need = len + MIG_CRC_LEN;
    if (r->body_size < need) {
        r->body = g_realloc(r->body, need);
        r->body_size = need;
    }
    if (!mig_read_fd(r, r->body, need, &got, error)) {
        return false;
    }
    if (got < need) {
        g_autofree char *where = mig_describe(r, type, r->body, got, true);
        mig_truncated(error, where);
        return false;
    }
    uint32_t crc = mig_crc(mig_crc(0, prefix, sizeof(prefix)), r->body, len);
    if (crc != get_le32(r->body + len)) {
        g_autofree char *where = mig_describe(r, type, r->body, len, false);
        mig_corrupted(error, "checksum mismatch %s", where);
        return false;
    }

    rec->type = type;
    switch (type) {
    case MIG_RECORD_MACHINE:
        rec->data = r->body;
        rec->len = len;
        r->state = MIG_READER_BODY;
        return true;
    case MIG_RECORD_STATE:
        return mig_parse_state(r, rec, len, error);
    case MIG_RECORD_RAM:
        return mig_parse_ram(r, rec, len, error);
    default:
        r->state = MIG_READER_ENDED;
        return true;
    }
}

GHashTable *mig_read_all(MigReader *r, MigMachineFunc *machine, MigSectionFunc *section,
                         void *opaque, GError **error)
{
    g_autoptr(GHashTable) states =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
    if (!mig_read_header(r, error)) {
        return NULL;
    }
    MigRecord rec;
    do {
        if (!mig_read_next(r, &rec, error)) {
            return NULL;
        }
        if (rec.type == MIG_RECORD_MACHINE && !machine(opaque, rec.data, rec.len, error)) {
            return NULL;
        }
        if (rec.type == MIG_RECORD_STATE) {
            if (!section(opaque, rec.id, rec.len, error)) {
                return NULL;
            }
            g_hash_table_insert(states, g_strdup(rec.id), g_bytes_new(rec.data, rec.len));
        }
    } while (rec.type != MIG_RECORD_END);
    return g_steal_pointer(&states);
}
