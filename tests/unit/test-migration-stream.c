/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "migration/stream.h"
#include "util/error.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#define PAGE MIG_PAGE_SIZE

/* ---- helpers ---- */

/* The receiving guest's RAM, filled with 0xaa; pages past its end are refused. */
typedef struct FakeRam {
    uint8_t *mem;
    size_t size;
    unsigned calls;
} FakeRam;

static FakeRam *fake_ram_new(size_t pages)
{
    FakeRam *ram = g_new0(FakeRam, 1);
    ram->size = pages * PAGE;
    ram->mem = g_malloc(ram->size);
    memset(ram->mem, 0xaa, ram->size);
    return ram;
}

static void fake_ram_free(FakeRam *ram)
{
    g_free(ram->mem);
    g_free(ram);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FakeRam, fake_ram_free)

static bool fake_ram_page(void *opaque, uint64_t gpa, const void *data, GError **error)
{
    FakeRam *ram = opaque;
    if (gpa >= ram->size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "page 0x%" G_GINT64_MODIFIER "x is outside the guest's RAM", gpa);
        return false;
    }
    if (data) {
        memcpy(ram->mem + gpa, data, PAGE);
    } else {
        memset(ram->mem + gpa, 0, PAGE);
    }
    ram->calls++;
    return true;
}

static void fill(uint8_t *page, uint8_t seed)
{
    for (size_t i = 0; i < PAGE; i++) {
        page[i] = (uint8_t)(seed + i * 7);
    }
}

/* A file holding data, positioned at its start. */
static int mem_fd(const void *data, size_t len)
{
    int fd = memfd_create("mig-stream", MFD_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    if (len) {
        g_assert_cmpint(write(fd, data, len), ==, (ssize_t)len);
    }
    g_assert_cmpint(lseek(fd, 0, SEEK_SET), ==, 0);
    return fd;
}

static GByteArray *fd_contents(int fd)
{
    GByteArray *a = g_byte_array_new();
    uint8_t buf[65536];
    ssize_t n;
    g_assert_cmpint(lseek(fd, 0, SEEK_SET), ==, 0);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        g_byte_array_append(a, buf, (guint)n);
    }
    g_assert_cmpint(n, ==, 0);
    return a;
}

static void assert_prefix(const GError *err, const char *prefix)
{
    if (!g_str_has_prefix(err->message, prefix)) {
        g_test_message("message: %s", err->message);
    }
    g_assert_true(g_str_has_prefix(err->message, prefix));
}

/*
 * Reads the stream in data[0..len) record by record; it must fail with
 * QLITE_ERROR_INVALID without ever returning the end marker.
 */
static GError *read_fails(const void *data, size_t len, FakeRam *ram)
{
    int fd = mem_fd(data, len);
    g_autoptr(MigReader) r = mig_reader_new(fd, fake_ram_page, ram);
    GError *err = NULL;
    MigRecord rec;
    if (mig_read_header(r, &err)) {
        while (mig_read_next(r, &rec, &err)) {
            g_assert_cmpint(rec.type, !=, MIG_RECORD_END);
        }
    }
    close(fd);
    g_assert_error(err, QLITE_ERROR, QLITE_ERROR_INVALID);
    return err;
}

static void read_fails_with(const void *data, size_t len, const char *message)
{
    g_autoptr(FakeRam) ram = fake_ram_new(8);
    g_autoptr(GError) err = read_fails(data, len, ram);
    g_assert_cmpstr(err->message, ==, message);
}

/* Encodes records independently of the writer, as docs/migration.md describes them. */
static void put_le32(GByteArray *a, uint32_t v)
{
    uint8_t b[4] = {v, v >> 8, v >> 16, v >> 24};
    g_byte_array_append(a, b, 4);
}

static void put_le64(GByteArray *a, uint64_t v)
{
    put_le32(a, (uint32_t)v);
    put_le32(a, (uint32_t)(v >> 32));
}

static void put_record(GByteArray *a, uint8_t type, const void *body, size_t len)
{
    guint start = a->len;
    g_byte_array_append(a, &type, 1);
    put_le32(a, (uint32_t)len);
    if (len) {
        g_byte_array_append(a, body, (guint)len);
    }
    put_le32(a, (uint32_t)crc32(0, a->data + start, a->len - start));
}

static GByteArray *put_header(uint32_t version)
{
    GByteArray *a = g_byte_array_new();
    g_byte_array_append(a, (const guint8 *)"QLITEMIG", 8);
    put_le32(a, version);
    return a;
}

/* Header and the machine record "pc". */
static GByteArray *put_start(void)
{
    GByteArray *a = put_header(1);
    put_record(a, MIG_RECORD_MACHINE, "pc", 2);
    return a;
}

static void put_state(GByteArray *a, const char *id, const void *data, size_t len)
{
    g_autoptr(GByteArray) body = g_byte_array_new();
    uint8_t id_len = (uint8_t)strlen(id);
    g_byte_array_append(body, &id_len, 1);
    g_byte_array_append(body, (const guint8 *)id, id_len);
    g_byte_array_append(body, data, (guint)len);
    put_record(a, MIG_RECORD_STATE, body->data, body->len);
}

/*
 * The sample stream: machine, a RAM pass (pages 0 and 2 with data, page 1
 * zero), a second pass (page 2 with other data, page 0 now zero), states
 * cpu0, cpu1, serial0 (empty), end. Offsets are where each record starts.
 */
#define SAMPLE_MACHINE "ram=32K,devices=cpu0,cpu1,serial0"

typedef struct Sample {
    GByteArray *bytes;
    size_t machine, ram1, ram2, cpu0, cpu1, serial0, end;
} Sample;

static void sample_write(MigWriter *w, Sample *s)
{
    uint8_t a[PAGE], b[PAGE], c[PAGE], zero[PAGE] = {0}, cpu0[100], cpu1[50];
    fill(a, 1);
    fill(b, 2);
    fill(c, 3);
    memset(cpu0, 0x11, sizeof(cpu0));
    memset(cpu1, 0x22, sizeof(cpu1));
    g_autoptr(GError) err = NULL;
    /* Flushing after each record makes the stats give the record boundaries. */
    g_assert_true(mig_write_header(w, &err) && mig_writer_flush(w, &err));
    s->machine = mig_writer_get_stats(w).bytes;
    g_assert_true(mig_write_machine(w, SAMPLE_MACHINE, strlen(SAMPLE_MACHINE), &err));
    g_assert_true(mig_writer_flush(w, &err));
    s->ram1 = mig_writer_get_stats(w).bytes;
    g_assert_true(mig_write_page(w, 0, a, &err) && mig_write_page(w, PAGE, zero, &err) &&
                  mig_write_page(w, 2 * PAGE, b, &err) && mig_writer_flush(w, &err));
    s->ram2 = mig_writer_get_stats(w).bytes;
    g_assert_true(mig_write_page(w, 2 * PAGE, c, &err) && mig_write_page(w, 0, zero, &err) &&
                  mig_writer_flush(w, &err));
    s->cpu0 = mig_writer_get_stats(w).bytes;
    g_assert_true(mig_write_state(w, "cpu0", cpu0, sizeof(cpu0), &err) &&
                  mig_writer_flush(w, &err));
    s->cpu1 = mig_writer_get_stats(w).bytes;
    g_assert_true(mig_write_state(w, "cpu1", cpu1, sizeof(cpu1), &err) &&
                  mig_writer_flush(w, &err));
    s->serial0 = mig_writer_get_stats(w).bytes;
    g_assert_true(mig_write_state(w, "serial0", NULL, 0, &err) && mig_writer_flush(w, &err));
    s->end = mig_writer_get_stats(w).bytes;
    g_assert_true(mig_write_end(w, &err));
    g_assert_no_error(err);
}

static Sample sample_new(void)
{
    Sample s;
    int fd = mem_fd(NULL, 0);
    g_autoptr(MigWriter) w = mig_writer_new(fd);
    sample_write(w, &s);
    s.bytes = fd_contents(fd);
    g_assert_cmpuint(s.bytes->len, ==, mig_writer_get_stats(w).bytes);
    close(fd);
    return s;
}

/* ---- encoding and decoding ---- */

static void test_round_trip(void)
{
    g_autoptr(FakeRam) ram = fake_ram_new(8);
    g_autoptr(GError) err = NULL;
    int fd = mem_fd(NULL, 0);
    g_autoptr(MigWriter) w = mig_writer_new(fd);
    Sample s;
    sample_write(w, &s);
    MigStats ws = mig_writer_get_stats(w);
    g_assert_cmpuint(ws.normal_pages, ==, 3);
    g_assert_cmpuint(ws.zero_pages, ==, 2);
    g_assert_cmpint(write(fd, "TRAILER", 7), ==, 7);
    g_assert_cmpint(lseek(fd, 0, SEEK_SET), ==, 0);

    g_autoptr(MigReader) r = mig_reader_new(fd, fake_ram_page, ram);
    MigRecord rec;
    g_assert_true(mig_read_header(r, &err));
    g_assert_true(mig_read_next(r, &rec, &err));
    g_assert_cmpint(rec.type, ==, MIG_RECORD_MACHINE);
    g_assert_cmpmem(rec.data, rec.len, SAMPLE_MACHINE, strlen(SAMPLE_MACHINE));
    g_assert_true(mig_read_next(r, &rec, &err));
    g_assert_cmpint(rec.type, ==, MIG_RECORD_RAM);
    g_assert_cmpuint(rec.pages, ==, 3);
    g_assert_cmpuint(ram->calls, ==, 3);
    g_assert_true(mig_read_next(r, &rec, &err));
    g_assert_cmpint(rec.type, ==, MIG_RECORD_RAM);
    g_assert_cmpuint(rec.pages, ==, 2);

    const struct {
        const char *id;
        size_t len;
        uint8_t byte;
    } states[] = {{"cpu0", 100, 0x11}, {"cpu1", 50, 0x22}, {"serial0", 0, 0}};
    for (unsigned i = 0; i < G_N_ELEMENTS(states); i++) {
        g_assert_true(mig_read_next(r, &rec, &err));
        g_assert_cmpint(rec.type, ==, MIG_RECORD_STATE);
        g_assert_cmpstr(rec.id, ==, states[i].id);
        g_assert_cmpuint(rec.len, ==, states[i].len);
        for (size_t j = 0; j < rec.len; j++) {
            g_assert_cmphex(((const uint8_t *)rec.data)[j], ==, states[i].byte);
        }
    }
    g_assert_true(mig_read_next(r, &rec, &err));
    g_assert_cmpint(rec.type, ==, MIG_RECORD_END);
    g_assert_no_error(err);

    /* Page 0 was overridden by a zero page, page 2 by its second copy; the rest is untouched. */
    uint8_t zero[PAGE] = {0}, c[PAGE], untouched[PAGE];
    fill(c, 3);
    memset(untouched, 0xaa, PAGE);
    g_assert_cmpmem(ram->mem, PAGE, zero, PAGE);
    g_assert_cmpmem(ram->mem + PAGE, PAGE, zero, PAGE);
    g_assert_cmpmem(ram->mem + 2 * PAGE, PAGE, c, PAGE);
    for (size_t p = 3; p < 8; p++) {
        g_assert_cmpmem(ram->mem + p * PAGE, PAGE, untouched, PAGE);
    }

    MigStats rs = mig_reader_get_stats(r);
    g_assert_cmpuint(rs.bytes, ==, ws.bytes);
    g_assert_cmpuint(rs.normal_pages, ==, 3);
    g_assert_cmpuint(rs.zero_pages, ==, 2);
    /* The reader stopped right after the end marker. */
    g_assert_cmpint(lseek(fd, 0, SEEK_CUR), ==, (off_t)ws.bytes);
    char rest[16];
    g_assert_cmpint(read(fd, rest, sizeof(rest)), ==, 7);
    g_assert_cmpmem(rest, 7, "TRAILER", 7);
    close(fd);
}

/* The writer's bytes are exactly those of docs/migration.md. */
static void test_layout(void)
{
    /* The checksum is the CRC-32 of zlib and gzip; this is its check value. */
    g_assert_cmphex(crc32(0, (const Bytef *)"123456789", 9), ==, 0xcbf43926);

    int fd = mem_fd(NULL, 0);
    g_autoptr(MigWriter) w = mig_writer_new(fd);
    g_autoptr(GError) err = NULL;
    uint8_t page[PAGE] = {0};
    g_assert_true(mig_write_header(w, &err) && mig_write_machine(w, "pc", 2, &err) &&
                  mig_write_page(w, 0x5000, page, &err));
    page[0] = 0x5a;
    g_assert_true(mig_write_page(w, 0x123456789000, page, &err) &&
                  mig_write_state(w, "a", "xy", 2, &err) && mig_write_end(w, &err));
    g_autoptr(GByteArray) got = fd_contents(fd);
    close(fd);

    g_autoptr(GByteArray) want = put_start();
    g_autoptr(GByteArray) ram = g_byte_array_new();
    put_le64(ram, 0x5000 | 0x1);
    put_le64(ram, 0x123456789000 | 0x2);
    g_byte_array_append(ram, page, PAGE);
    put_record(want, MIG_RECORD_RAM, ram->data, ram->len);
    put_state(want, "a", "xy", 2);
    static const uint8_t end[] = {0x04, 0, 0, 0, 0, 0xdd, 0x51, 0xa2, 0x33};
    g_byte_array_append(want, end, sizeof(end));
    g_assert_cmpmem(got->data, got->len, want->data, want->len);
}

/* The example of docs/migration.md. */
static void test_doc_example(void)
{
    static const uint8_t example[] = {
        0x51, 0x4c, 0x49, 0x54, 0x45, 0x4d, 0x49, 0x47, 0x01, 0x00, 0x00, 0x00,       /* header */
        0x01, 0x02, 0x00, 0x00, 0x00, 0x70, 0x63, 0xd5, 0x3c, 0x57, 0x8d,             /* MACHINE */
        0x03, 0x08, 0x00, 0x00, 0x00, 0x01, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* RAM */
        0x9b, 0xb5, 0xcd, 0x5b,                                                       /* its CRC */
        0x02, 0x04, 0x00, 0x00, 0x00, 0x01, 0x61, 0x78, 0x79, 0xc6, 0xce, 0x23, 0x73, /* STATE */
        0x04, 0x00, 0x00, 0x00, 0x00, 0xdd, 0x51, 0xa2, 0x33,                         /* END */
    };
    int fd = mem_fd(NULL, 0);
    g_autoptr(MigWriter) w = mig_writer_new(fd);
    g_autoptr(GError) err = NULL;
    static const uint8_t zero[PAGE];
    g_assert_true(mig_write_header(w, &err) && mig_write_machine(w, "pc", 2, &err) &&
                  mig_write_page(w, 0x5000, zero, &err) && mig_write_state(w, "a", "xy", 2, &err) &&
                  mig_write_end(w, &err));
    g_autoptr(GByteArray) got = fd_contents(fd);
    close(fd);
    g_assert_cmpmem(got->data, got->len, example, sizeof(example));
}

/* Pages are batched MIG_BATCH_MAX at a time, all-zero pages sent as markers. */
static void test_batches(void)
{
    const size_t pages = 2 * MIG_BATCH_MAX + 88;
    g_autofree uint8_t *src = g_malloc0(pages * PAGE);
    for (size_t i = 0; i < pages; i++) {
        /* One non-zero byte, near the start or near the end of the page. */
        if (i % 3) {
            src[i * PAGE + (i % 2 ? PAGE - 1 - i : i)] = (uint8_t)i | 1;
        }
    }
    int fd = mem_fd(NULL, 0);
    g_autoptr(MigWriter) w = mig_writer_new(fd);
    g_autoptr(GError) err = NULL;
    g_assert_true(mig_write_header(w, &err) && mig_write_machine(w, "pc", 2, &err));
    for (size_t i = 0; i < pages; i++) {
        g_assert_true(mig_write_page(w, i * PAGE, src + i * PAGE, &err));
    }
    g_assert_true(mig_write_end(w, &err));
    MigStats ws = mig_writer_get_stats(w);
    g_assert_cmpuint(ws.zero_pages, ==, pages / 3);
    g_assert_cmpuint(ws.normal_pages, ==, pages - pages / 3);
    /* Zero pages cost an 8-byte entry, not a page of zeroes. */
    g_assert_cmpuint(ws.bytes, <, (pages - pages / 3 + 1) * (PAGE + 8) + 100);

    g_autoptr(FakeRam) ram = fake_ram_new(pages);
    g_assert_cmpint(lseek(fd, 0, SEEK_SET), ==, 0);
    g_autoptr(MigReader) r = mig_reader_new(fd, fake_ram_page, ram);
    MigRecord rec;
    unsigned batches[4], n = 0;
    g_assert_true(mig_read_header(r, &err));
    while (mig_read_next(r, &rec, &err) && rec.type != MIG_RECORD_END) {
        if (rec.type == MIG_RECORD_RAM) {
            g_assert_cmpuint(n, <, G_N_ELEMENTS(batches));
            batches[n++] = rec.pages;
        }
    }
    g_assert_no_error(err);
    g_assert_cmpuint(n, ==, 3);
    g_assert_cmpuint(batches[0], ==, MIG_BATCH_MAX);
    g_assert_cmpuint(batches[1], ==, MIG_BATCH_MAX);
    g_assert_cmpuint(batches[2], ==, 88);
    g_assert_cmpmem(ram->mem, ram->size, src, pages * PAGE);
    close(fd);
}

static bool machine_is_sample(void *opaque, const void *cfg, size_t len, GError **error)
{
    (*(unsigned *)opaque)++;
    if (len != strlen(SAMPLE_MACHINE) || memcmp(cfg, SAMPLE_MACHINE, len)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "machine differs");
        return false;
    }
    return true;
}

static bool machine_differs(void *opaque, const void *cfg, size_t len, GError **error)
{
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                "the stream's machine has 32 KiB of RAM, this one 64 KiB");
    return false;
}

static bool machine_any(void *opaque, const void *cfg, size_t len, GError **error)
{
    return true;
}

static bool section_any(void *opaque, const char *id, size_t len, GError **error)
{
    return true;
}

static void test_read_all(void)
{
    Sample s = sample_new();
    g_autoptr(GByteArray) bytes = s.bytes;
    g_autoptr(GError) err = NULL;
    g_autoptr(FakeRam) ram = fake_ram_new(8);

    int fd = mem_fd(bytes->data, bytes->len);
    g_autoptr(MigReader) r = mig_reader_new(fd, fake_ram_page, ram);
    unsigned machine_calls = 0;
    g_autoptr(GHashTable) states =
        mig_read_all(r, machine_is_sample, section_any, &machine_calls, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(machine_calls, ==, 1);
    g_assert_cmpuint(ram->calls, ==, 5);
    g_assert_cmpuint(g_hash_table_size(states), ==, 3);
    g_assert_cmpuint(g_bytes_get_size(g_hash_table_lookup(states, "cpu0")), ==, 100);
    g_assert_cmpuint(g_bytes_get_size(g_hash_table_lookup(states, "cpu1")), ==, 50);
    g_assert_cmpuint(g_bytes_get_size(g_hash_table_lookup(states, "serial0")), ==, 0);
    close(fd);

    /* A machine that does not match is refused before any page is stored. */
    fd = mem_fd(bytes->data, bytes->len);
    g_autoptr(MigReader) r2 = mig_reader_new(fd, fake_ram_page, ram);
    ram->calls = 0;
    g_assert_null(mig_read_all(r2, machine_differs, section_any, NULL, &err));
    g_assert_error(err, QLITE_ERROR, QLITE_ERROR_INVALID);
    g_assert_cmpstr(err->message, ==, "the stream's machine has 32 KiB of RAM, this one 64 KiB");
    g_assert_cmpuint(ram->calls, ==, 0);
    g_clear_error(&err);
    close(fd);

    /* Without its end marker, no state is returned. */
    fd = mem_fd(bytes->data, s.end);
    g_autoptr(MigReader) r3 = mig_reader_new(fd, fake_ram_page, ram);
    g_assert_null(mig_read_all(r3, machine_is_sample, section_any, &machine_calls, &err));
    g_assert_cmpstr(err->message, ==, "migration stream truncated before the end marker");
    close(fd);
}

/* A receiver with sections cpu0 (64 bytes at most) and serial0. */
static bool section_known(void *opaque, const char *id, size_t len, GError **error)
{
    (*(unsigned *)opaque)++;
    if (strcmp(id, "cpu0") != 0 && strcmp(id, "serial0") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "no section '%s' here", id);
        return false;
    }
    if (len > 64) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "'%s' too big", id);
        return false;
    }
    return true;
}

/* A stream of sections serial0 then second is refused by section_known with message. */
static void refuse_sections(const char *second, const char *message)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(FakeRam) ram = fake_ram_new(8);
    unsigned calls = 0;
    int fd = mem_fd(NULL, 0);
    g_autoptr(MigWriter) w = mig_writer_new(fd);
    g_assert_true(mig_write_header(w, &err) && mig_write_machine(w, "pc", 2, &err));
    g_assert_true(mig_write_state(w, "serial0", "ab", 2, &err));
    g_assert_true(mig_write_state(w, second, "c", 1, &err));
    g_assert_true(mig_write_end(w, &err));
    g_assert_cmpint(lseek(fd, 0, SEEK_SET), ==, 0);
    g_autoptr(MigReader) r = mig_reader_new(fd, fake_ram_page, ram);
    g_assert_null(mig_read_all(r, machine_any, section_known, &calls, &err));
    g_assert_cmpstr(err->message, ==, message);
    close(fd);
}

/*
 * What a stream makes the reader keep is bounded by the receiver: each
 * section is vetted before it is kept (one the receiver does not have, or
 * larger than it can need, is refused), and a section sent twice is refused.
 */
static void test_read_all_sections(void)
{
    Sample s = sample_new();
    g_autoptr(GByteArray) bytes = s.bytes;
    g_autoptr(FakeRam) ram = fake_ram_new(8);
    g_autoptr(GError) err = NULL;
    unsigned calls = 0;
    int fd = mem_fd(bytes->data, bytes->len);
    g_autoptr(MigReader) r = mig_reader_new(fd, fake_ram_page, ram);
    g_assert_null(mig_read_all(r, machine_any, section_known, &calls, &err));
    g_assert_cmpstr(err->message, ==, "'cpu0' too big"); /* the sample's cpu0 has 100 bytes */
    g_assert_cmpuint(calls, ==, 1);
    close(fd);

    refuse_sections("rtc", "no section 'rtc' here");
    refuse_sections("serial0", "migration stream corrupted: section 'serial0' appears twice");
}

/* Larger than the pipe buffer, so the writer blocks and the reader gets partial reads. */
#define PIPE_PAGES 1024

typedef struct PipeJob {
    int fd;
    const uint8_t *src;
} PipeJob;

static gpointer pipe_writer(gpointer opaque)
{
    PipeJob *job = opaque;
    g_autoptr(MigWriter) w = mig_writer_new(job->fd);
    g_autoptr(GError) err = NULL;
    g_assert_true(mig_write_header(w, &err) && mig_write_machine(w, "pc", 2, &err));
    for (size_t i = 0; i < PIPE_PAGES; i++) {
        g_assert_true(mig_write_page(w, i * PAGE, job->src + i * PAGE, &err));
    }
    g_assert_true(mig_write_state(w, "big", job->src, 300 * 1024, &err));
    g_assert_true(mig_write_end(w, &err));
    g_assert_cmpint(write(job->fd, "after", 5), ==, 5);
    close(job->fd);
    return NULL;
}

static void test_pipe(void)
{
    g_autofree uint8_t *src = g_malloc(PIPE_PAGES * PAGE);
    for (size_t i = 0; i < PIPE_PAGES; i++) {
        if (i % 4) {
            fill(src + i * PAGE, (uint8_t)i);
        } else {
            memset(src + i * PAGE, 0, PAGE);
        }
    }
    int fds[2];
    g_assert_cmpint(pipe(fds), ==, 0);
    PipeJob job = {.fd = fds[1], .src = src};
    GThread *t = g_thread_new("mig-writer", pipe_writer, &job);

    g_autoptr(FakeRam) ram = fake_ram_new(PIPE_PAGES);
    g_autoptr(MigReader) r = mig_reader_new(fds[0], fake_ram_page, ram);
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) states = mig_read_all(r, machine_any, section_any, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpmem(ram->mem, ram->size, src, PIPE_PAGES * PAGE);
    GBytes *big = g_hash_table_lookup(states, "big");
    g_assert_nonnull(big);
    g_assert_cmpmem(g_bytes_get_data(big, NULL), g_bytes_get_size(big), src, 300 * 1024);
    MigStats rs = mig_reader_get_stats(r);
    g_assert_cmpuint(rs.zero_pages, ==, PIPE_PAGES / 4);
    g_assert_cmpuint(rs.normal_pages, ==, PIPE_PAGES - PIPE_PAGES / 4);

    /* What follows the end marker is still in the pipe. */
    char rest[16];
    size_t got = 0;
    ssize_t n;
    while ((n = read(fds[0], rest + got, sizeof(rest) - got)) > 0) {
        got += (size_t)n;
    }
    g_assert_cmpmem(rest, got, "after", 5);
    g_thread_join(t);
    close(fds[0]);
}

/* ---- refusal ---- */

static void test_bad_magic(void)
{
    read_fails_with("", 0, "migration stream is empty");
    read_fails_with("QEVM\x01\0\0\0\0\0\0\0", 12, "not a qlite migration stream (bad magic)");
    read_fails_with("QLITEMIX\x01\0\0\0", 12, "not a qlite migration stream (bad magic)");
    read_fails_with("\x7f"
                    "ELF",
                    4, "not a qlite migration stream (bad magic)");
    read_fails_with("QLITE", 5, "migration stream truncated in the header");
    read_fails_with("QLITEMIG\x01\0", 10, "migration stream truncated in the header");
}

static void test_version(void)
{
    for (uint32_t v = 0; v < 4; v++) {
        if (v == MIG_VERSION) {
            continue;
        }
        g_autoptr(GByteArray) a = put_header(v);
        put_record(a, MIG_RECORD_MACHINE, "pc", 2);
        put_record(a, MIG_RECORD_END, NULL, 0);
        g_autofree char *want = g_strdup_printf(
            "migration stream version %u is not supported (this qlite reads version 1)", v);
        read_fails_with(a->data, a->len, want);
    }
    g_autoptr(GByteArray) a = put_header(0x01000000); /* version 1 in the wrong byte order */
    read_fails_with(a->data, a->len,
                    "migration stream version 16777216 is not supported (this qlite reads "
                    "version 1)");
}

/* Cut anywhere, a stream is refused as truncated, and no page of a partial record is stored. */
static void test_truncated(void)
{
    Sample s = sample_new();
    g_autoptr(GByteArray) bytes = s.bytes;
    for (size_t cut = 0; cut < bytes->len; cut++) {
        g_autoptr(FakeRam) ram = fake_ram_new(8);
        g_autoptr(GError) err = read_fails(bytes->data, cut, ram);
        assert_prefix(err, cut ? "migration stream truncated" : "migration stream is empty");
        g_assert_cmpuint(ram->calls, ==, (cut >= s.ram2 ? 3 : 0) + (cut >= s.cpu0 ? 2 : 0));
    }

    const size_t page0_data = s.ram1 + 5 + 8;
    const size_t page2_data = page0_data + PAGE + 8 + 8;
    const struct {
        size_t cut;
        const char *where;
    } cases[] = {
        {5, "in the header"},
        {s.machine, "before the end marker"},
        {s.machine + 3, "before the end marker"},
        {s.machine + 7, "in the machine configuration"},
        {s.ram1 + 5 + 3, "in a RAM record"},
        {page0_data + 100, "in RAM page at 0x0"},
        {page2_data, "in RAM page at 0x2000"},
        {page2_data + PAGE - 1, "in RAM page at 0x2000"},
        {page2_data + PAGE + 2, "in a RAM record"},
        {s.cpu0 + 5 + 2, "in a section header"},
        {s.cpu0 + 5 + 5 + 50, "in section 'cpu0'"},
        {s.serial0 - 1, "in section 'cpu1'"},
        {s.end, "before the end marker"},
        {s.end + 6, "in the end marker"},
        {bytes->len - 1, "in the end marker"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *want = g_strdup_printf("migration stream truncated %s", cases[i].where);
        read_fails_with(bytes->data, cases[i].cut, want);
    }
}

/* Any single changed byte is refused; a changed body is named by its checksum. */
static void test_corrupted(void)
{
    Sample s = sample_new();
    g_autoptr(GByteArray) bytes = s.bytes;
    g_autoptr(GByteArray) copy = g_byte_array_new();
    g_byte_array_append(copy, bytes->data, bytes->len);
    static const uint8_t flips[] = {0x01, 0x80, 0xff};
    for (size_t off = 0; off < bytes->len; off++) {
        for (unsigned f = 0; f < G_N_ELEMENTS(flips); f++) {
            g_autoptr(FakeRam) ram = fake_ram_new(8);
            copy->data[off] ^= flips[f];
            g_autoptr(GError) err = read_fails(copy->data, copy->len, ram);
            copy->data[off] ^= flips[f];
            if (off < 8) {
                g_assert_cmpstr(err->message, ==, "not a qlite migration stream (bad magic)");
            } else if (off < 12) {
                assert_prefix(err, "migration stream version");
            }
        }
    }

    const struct {
        size_t off;
        const char *message;
        unsigned calls; /* pages stored before the error */
    } cases[] = {
        {s.machine + 5 + 3, "checksum mismatch in the machine configuration", 0},
        {s.machine + 1, "checksum mismatch in the machine configuration", 0},
        {s.ram1 + 5 + 8 + 10, "checksum mismatch in a RAM record", 0},
        {s.ram1 + 5, "checksum mismatch in a RAM record", 0},
        {s.ram2 + 5 + 8 + 10, "checksum mismatch in a RAM record", 3},
        {s.cpu0 + 5 + 5 + 99, "checksum mismatch in section 'cpu0'", 5},
        {s.serial0 - 1, "checksum mismatch in section 'cpu1'", 5},
        {s.end - 4, "checksum mismatch in section 'serial0'", 5},
        {s.end, "unknown record type 0x05", 5},
        {s.end + 5, "checksum mismatch in the end marker", 5},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(FakeRam) ram = fake_ram_new(8);
        copy->data[cases[i].off] ^= 0x01;
        g_autoptr(GError) err = read_fails(copy->data, copy->len, ram);
        copy->data[cases[i].off] ^= 0x01;
        g_autofree char *want = g_strdup_printf("migration stream corrupted: %s", cases[i].message);
        g_assert_cmpstr(err->message, ==, want);
        g_assert_cmpuint(ram->calls, ==, cases[i].calls);
        if (cases[i].calls == 3) {
            /* The second pass's copy of page 2 was not stored. */
            uint8_t b[PAGE];
            fill(b, 2);
            g_assert_cmpmem(ram->mem + 2 * PAGE, PAGE, b, PAGE);
        }
    }
}

static void test_unknown_type(void)
{
    static const uint8_t types[] = {0x00, 0x05, 0x7f, 0xff};
    for (unsigned i = 0; i < G_N_ELEMENTS(types); i++) {
        g_autoptr(GByteArray) a = put_start();
        put_record(a, types[i], "x", 1);
        put_record(a, MIG_RECORD_END, NULL, 0);
        g_autofree char *want =
            g_strdup_printf("migration stream corrupted: unknown record type 0x%02x", types[i]);
        read_fails_with(a->data, a->len, want);
    }
}

/* A length over the limit is refused from the record's first five bytes. */
static void test_oversize(void)
{
    const struct {
        uint8_t type;
        uint32_t len;
        const char *message;
    } cases[] = {
        {MIG_RECORD_STATE, 0xffffffff,
         "state section too long (4294967295 bytes, at most "
         "67109120)"},
        {MIG_RECORD_STATE, 1 + 255 + MIG_DATA_MAX + 1,
         "state section too long (67109121 bytes, at most 67109120)"},
        {MIG_RECORD_RAM, MIG_BATCH_MAX * (8 + PAGE) + 1,
         "RAM record too long (1050625 bytes, at most 1050624)"},
        {MIG_RECORD_END, 1, "end marker too long (1 bytes, at most 0)"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GByteArray) a = put_start();
        g_byte_array_append(a, &cases[i].type, 1);
        put_le32(a, cases[i].len);
        g_autofree char *want = g_strdup_printf("migration stream corrupted: %s", cases[i].message);
        read_fails_with(a->data, a->len, want);
    }
    g_autoptr(GByteArray) a = put_header(1);
    uint8_t type = MIG_RECORD_MACHINE;
    g_byte_array_append(a, &type, 1);
    put_le32(a, MIG_DATA_MAX + 1);
    read_fails_with(a->data, a->len,
                    "migration stream corrupted: machine configuration too long (67108865 bytes, "
                    "at most 67108864)");

    /* 257 zero pages fit in the byte limit but not in the page limit. */
    g_autoptr(GByteArray) b = put_start();
    g_autoptr(GByteArray) ram = g_byte_array_new();
    for (unsigned i = 0; i <= MIG_BATCH_MAX; i++) {
        put_le64(ram, 0x1);
    }
    put_record(b, MIG_RECORD_RAM, ram->data, ram->len);
    put_record(b, MIG_RECORD_END, NULL, 0);
    read_fails_with(b->data, b->len,
                    "migration stream corrupted: RAM record of more than 256 pages");
}

static void test_machine_first(void)
{
    g_autoptr(GByteArray) a = put_header(1);
    put_state(a, "cpu0", "x", 1);
    put_record(a, MIG_RECORD_END, NULL, 0);
    read_fails_with(a->data, a->len,
                    "migration stream corrupted: it does not begin with the machine configuration");

    g_autoptr(GByteArray) b = put_header(1);
    put_record(b, MIG_RECORD_END, NULL, 0);
    read_fails_with(b->data, b->len,
                    "migration stream corrupted: it does not begin with the machine configuration");

    g_autoptr(GByteArray) c = put_start();
    put_record(c, MIG_RECORD_MACHINE, "pc", 2);
    put_record(c, MIG_RECORD_END, NULL, 0);
    read_fails_with(c->data, c->len, "migration stream corrupted: a second machine configuration");
}

/* Records with a valid checksum but a malformed body. */
static void test_bad_records(void)
{
    const struct {
        uint8_t type;
        const char *body;
        size_t len;
        const char *message;
    } cases[] = {
        {MIG_RECORD_STATE, "", 0, "invalid section id"},
        {MIG_RECORD_STATE, "\0xyz", 4, "invalid section id"},
        {MIG_RECORD_STATE,
         "\x03"
         "a b",
         4, "invalid section id"},
        {MIG_RECORD_STATE,
         "\x02"
         "a\n",
         3, "invalid section id"},
        {MIG_RECORD_STATE,
         "\x05"
         "ab",
         3, "invalid section id"},
        {MIG_RECORD_RAM, "\x01\x10\0\0\0", 5, "RAM record ends inside a page entry"},
        {MIG_RECORD_RAM, "\x02\x10\0\0\0\0\0\0xyz", 11, "RAM record ends inside page 0x1000"},
        {MIG_RECORD_RAM, "\x03\x10\0\0\0\0\0\0", 8, "invalid flags 0x3 for RAM page at 0x1000"},
        {MIG_RECORD_RAM, "\x00\x10\0\0\0\0\0\0", 8, "invalid flags 0x0 for RAM page at 0x1000"},
        {MIG_RECORD_RAM, "\x05\x10\0\0\0\0\0\0", 8, "invalid flags 0x5 for RAM page at 0x1000"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GByteArray) a = put_start();
        put_record(a, cases[i].type, cases[i].body, cases[i].len);
        put_record(a, MIG_RECORD_END, NULL, 0);
        g_autofree char *want = g_strdup_printf("migration stream corrupted: %s", cases[i].message);
        read_fails_with(a->data, a->len, want);
    }

    g_autoptr(GByteArray) a = put_start();
    put_state(a, "cpu0", "x", 1);
    put_state(a, "cpu1", "y", 1);
    put_state(a, "cpu0", "z", 1);
    put_record(a, MIG_RECORD_END, NULL, 0);
    read_fails_with(a->data, a->len, "migration stream corrupted: section 'cpu0' appears twice");
}

/* The page function decides which addresses are guest RAM. */
static void test_page_refused(void)
{
    g_autoptr(GByteArray) a = put_start();
    g_autoptr(GByteArray) ram = g_byte_array_new();
    put_le64(ram, 0x7000 | 0x1);
    put_le64(ram, 0x8000 | 0x1);
    put_record(a, MIG_RECORD_RAM, ram->data, ram->len);
    put_record(a, MIG_RECORD_END, NULL, 0);
    g_autoptr(FakeRam) fake = fake_ram_new(8);
    g_autoptr(GError) err = read_fails(a->data, a->len, fake);
    g_assert_cmpstr(err->message, ==, "page 0x8000 is outside the guest's RAM");
    g_assert_cmpuint(fake->calls, ==, 1);
}

static void test_writer_errors(void)
{
    int fd = mem_fd(NULL, 0);
    g_autoptr(MigWriter) w = mig_writer_new(fd);
    g_autoptr(GError) err = NULL;
    static const uint8_t tiny[1];
    g_assert_true(mig_write_header(w, &err));
    /* The limit is checked before the data is read: tiny stands for 64 MiB and a byte. */
    g_assert_false(mig_write_machine(w, tiny, MIG_DATA_MAX + 1, &err));
    g_assert_error(err, QLITE_ERROR, QLITE_ERROR_INVALID);
    g_assert_cmpstr(err->message, ==,
                    "machine configuration of 67108865 bytes is over the migration stream's "
                    "limit of 67108864 bytes");
    g_clear_error(&err);
    g_assert_true(mig_write_machine(w, "pc", 2, &err));

    g_autofree char *long_id = g_strnfill(MIG_ID_MAX + 1, 'x');
    const char *bad_ids[] = {"", "a b", "tab\t", "\xc3\xa9", long_id};
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_ids); i++) {
        g_assert_false(mig_write_state(w, bad_ids[i], "x", 1, &err));
        g_autofree char *want = g_strdup_printf(
            "invalid migration section id '%s' (1 to 255 printable characters, no spaces)",
            bad_ids[i]);
        g_assert_cmpstr(err->message, ==, want);
        g_clear_error(&err);
    }
    g_autofree char *max_id = g_strnfill(MIG_ID_MAX, 'x');
    g_assert_true(mig_write_state(w, max_id, "x", 1, &err));
    g_assert_false(mig_write_state(w, "big", tiny, MIG_DATA_MAX + 1, &err));
    g_assert_cmpstr(err->message, ==,
                    "section 'big' of 67108865 bytes is over the migration stream's limit of "
                    "67108864 bytes");
    g_clear_error(&err);
    g_assert_true(mig_write_end(w, &err));

    /* What was refused left nothing in the stream. */
    g_autoptr(GByteArray) got = fd_contents(fd);
    close(fd);
    g_autoptr(GByteArray) want = put_start();
    put_state(want, max_id, "x", 1);
    put_record(want, MIG_RECORD_END, NULL, 0);
    g_assert_cmpmem(got->data, got->len, want->data, want->len);

    int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(ro, >=, 0);
    g_autoptr(MigWriter) w2 = mig_writer_new(ro);
    g_assert_true(mig_write_header(w2, &err));
    g_assert_false(mig_writer_flush(w2, &err));
    g_assert_error(err, QLITE_ERROR, QLITE_ERROR_FAILED);
    g_assert_cmpstr(err->message, ==, "cannot write the migration stream: Bad file descriptor");
    close(ro);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/stream/round-trip", test_round_trip);
    g_test_add_func("/migration/stream/layout", test_layout);
    g_test_add_func("/migration/stream/doc-example", test_doc_example);
    g_test_add_func("/migration/stream/batches", test_batches);
    g_test_add_func("/migration/stream/read-all", test_read_all);
    g_test_add_func("/migration/stream/read-all-sections", test_read_all_sections);
    g_test_add_func("/migration/stream/pipe", test_pipe);
    g_test_add_func("/migration/stream/bad-magic", test_bad_magic);
    g_test_add_func("/migration/stream/version", test_version);
    g_test_add_func("/migration/stream/truncated", test_truncated);
    g_test_add_func("/migration/stream/corrupted", test_corrupted);
    g_test_add_func("/migration/stream/unknown-type", test_unknown_type);
    g_test_add_func("/migration/stream/oversize", test_oversize);
    g_test_add_func("/migration/stream/machine-first", test_machine_first);
    g_test_add_func("/migration/stream/bad-records", test_bad_records);
    g_test_add_func("/migration/stream/page-refused", test_page_refused);
    g_test_add_func("/migration/stream/writer-errors", test_writer_errors);
    return g_test_run();
}
