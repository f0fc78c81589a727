/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "virtio-fake.h"
#include "virtio/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEM_SIZE   (16 * 1024 * 1024)
#define RING_BASE  0x10000
#define QSIZE      256
#define IMAGE_SIZE (1024 * 1024)
#define SECTORS    (IMAGE_SIZE / 512)
#define WAIT_MS    5000

/* §5.2 constants the test speaks in. */
#define T_IN      0
#define T_OUT     1
#define T_FLUSH   4
#define T_GET_ID  8
#define T_DISCARD 11
#define T_WZ      13
#define S_OK      0
#define S_IOERR   1
#define S_UNSUPP  2

#define F_SIZE_MAX     1
#define F_SEG_MAX      2
#define F_RO           5
#define F_BLK_SIZE     6
#define F_FLUSH        9
#define F_MQ           12
#define F_DISCARD      13
#define F_WRITE_ZEROES 14

static unsigned warnings;

typedef struct {
    char *dir;
    char *image;
    GuestMem *mem;
    VirtioDevice *vdev;
    FakeTransport t;
    FakeVq f;
    uint64_t req;  /* request headers + status bytes */
    uint64_t data; /* data buffers */
} Fixture;

static char *make_image(const char *dir, const char *name, size_t size, uint8_t fill)
{
    char *path = g_build_filename(dir, name, NULL);
    g_autofree uint8_t *buf = g_malloc(size);
    for (size_t i = 0; i < size; i++) {
        buf[i] = (uint8_t)(fill ? fill : i * 7 + i / 512);
    }
    g_autoptr(GError) err = NULL;
    g_assert_true(g_file_set_contents(path, (const char *)buf, (gssize)size, &err));
    return path;
}

static uint64_t all_features(VirtioDevice *vdev)
{
    return virtio_get_host_features(vdev, 0) | (uint64_t)virtio_get_host_features(vdev, 1) << 32;
}

/* A device on a fresh image; returns false (and skips) when the host cannot do it. */
static bool fixture_open(Fixture *fx, bool readonly, BlockCacheMode cache)
{
    memset(fx, 0, sizeof(*fx));
    g_autoptr(GError) err = NULL;
    fx->dir = g_dir_make_tmp("qlite-blk-XXXXXX", &err);
    g_assert_no_error(err);
    fx->image = make_image(fx->dir, "disk.img", IMAGE_SIZE, 0);
    fx->mem = guest_mem_new(MEM_SIZE, MEM_SIZE, &err);
    g_assert_no_error(err);
    DriveConfig cfg = {.id = "disk0",
                       .file = fx->image,
                       .readonly = readonly,
                       .cache = cache,
                       .serial = "QLITE-SERIAL-0123456789"};
    fx->vdev = virtio_blk_new(&cfg, fx->mem, &err);
    if (!fx->vdev && cache == BLOCK_CACHE_NONE && strstr(err->message, "O_DIRECT")) {
        g_test_skip(err->message);
        return false;
    }
    g_assert_no_error(err);
    fake_transport_init(&fx->t, fx->vdev);
    fake_vq_init(&fx->f, fx->mem, RING_BASE, QSIZE);
    fx->req = fake_vq_end(&fx->f);
    fx->data = 0x100000;
    return true;
}

static void fixture_start(Fixture *fx)
{
    uint8_t s = fake_virtio_start(fx->vdev, &fx->f, all_features(fx->vdev));
    g_assert_cmphex(s & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK), ==,
                    VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK);
}

static void fixture_close(Fixture *fx)
{
    if (fx->vdev) {
        virtio_device_free(fx->vdev);
        fake_transport_destroy(&fx->t);
    }
    guest_mem_free(fx->mem);
    g_unlink(fx->image);
    g_rmdir(fx->dir);
    g_free(fx->image);
    g_free(fx->dir);
}

static void *gp(Fixture *fx, uint64_t gpa, size_t len)
{
    void *p = guest_mem_ptr(fx->mem, gpa, len);
    g_assert_nonnull(p);
    return p;
}

/* Publishes the chain (already added), kicks, waits for n used entries. */
static void kick_wait(Fixture *fx, unsigned n)
{
    virtio_kick(fx->vdev, 0);
    g_assert_true(fake_vq_wait_used(&fx->f, &fx->t, n, WAIT_MS));
}

/* One request, waited for; returns the status and the used length in *used. */
static uint8_t do_req(Fixture *fx, uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t len,
                      bool device_writes, uint32_t *used)
{
    uint16_t head = fake_blk_submit(&fx->f, fx->req, type, sector, data_gpa, len, device_writes, 0);
    kick_wait(fx, 1);
    uint32_t id, used_len;
    g_assert_true(fake_vq_pop_used(&fx->f, &id, &used_len));
    g_assert_cmpuint(id, ==, head);
    if (used) {
        *used = used_len;
    }
    return fake_blk_status(&fx->f, fx->req);
}

static void file_read(Fixture *fx, uint64_t offset, void *buf, size_t len)
{
    int fd = open(fx->image, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, buf, len, (off_t)offset), ==, (ssize_t)len);
    close(fd);
}

static void test_features(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    VirtioDevice *v = fx.vdev;
    uint64_t host = all_features(v);
    uint64_t want = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_INDIRECT_DESC) |
                    (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << F_SEG_MAX) | (1ULL << F_SIZE_MAX) |
                    (1ULL << F_BLK_SIZE) | (1ULL << F_FLUSH) | (1ULL << F_DISCARD) |
                    (1ULL << F_WRITE_ZEROES);
    g_assert_cmphex(host, ==, want);

    /* A feature not offered: FEATURES_OK does not stick (§2.2.2). */
    uint8_t s = fake_virtio_start(v, &fx.f, host | (1ULL << F_MQ));
    g_assert_false(s & VIRTIO_STATUS_FEATURES_OK);
    /* Without VERSION_1. */
    s = fake_virtio_start(v, &fx.f, host & ~(1ULL << VIRTIO_F_VERSION_1));
    g_assert_false(s & VIRTIO_STATUS_FEATURES_OK);
    /* DRIVER_OK without FEATURES_OK is not taken. */
    virtio_set_status(v,
                      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
    g_assert_false(virtio_get_status(v) & VIRTIO_STATUS_DRIVER_OK);
    g_assert_false(v->active);

    /* A subset is fine; feature writes after FEATURES_OK are ignored. */
    uint64_t sub = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << F_FLUSH);
    s = fake_virtio_start(v, &fx.f, sub);
    g_assert_true(s & VIRTIO_STATUS_DRIVER_OK);
    virtio_set_guest_features(v, 0, 0xffffffff);
    g_assert_cmphex(virtio_get_guest_features(v, 0), ==, (uint32_t)sub);
    g_assert_true(virtio_has_feature(v, F_FLUSH));
    g_assert_false(virtio_has_feature(v, VIRTIO_F_EVENT_IDX));
    g_assert_cmpuint(virtio_queue(v, 0)->size, ==, QSIZE);
    g_assert_null(virtio_queue(v, 1));

    /* Reset clears status and features. */
    virtio_set_status(v, 0);
    g_assert_cmpuint(virtio_get_status(v), ==, 0);
    g_assert_cmphex(virtio_get_guest_features(v, 0), ==, 0);
    g_assert_false(virtio_queue(v, 0)->enabled);
    fixture_close(&fx);
}

static void test_config(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    VirtioDevice *v = fx.vdev;
    g_assert_cmpuint(v->config_size, ==, 60);
    g_assert_cmpuint(fake_config_read(v, 0, 8), ==, SECTORS);    /* capacity */
    g_assert_cmpuint(fake_config_read(v, 8, 4), ==, 1 << 20);    /* size_max */
    g_assert_cmpuint(fake_config_read(v, 12, 4), ==, QSIZE - 2); /* seg_max */
    g_assert_cmpuint(fake_config_read(v, 16, 4), ==, 0);         /* geometry: not offered */
    g_assert_cmpuint(fake_config_read(v, 20, 4), ==, 512);       /* blk_size */
    g_assert_cmpuint(fake_config_read(v, 32, 1), ==, 1);         /* writeback */
    g_assert_cmpuint(fake_config_read(v, 33, 1), ==, 0);         /* unused0 */
    g_assert_cmpuint(fake_config_read(v, 34, 2), ==, 1);         /* num_queues */
    g_assert_cmpuint(fake_config_read(v, 36, 4), ==, 1 << 22);   /* max_discard_sectors */
    g_assert_cmpuint(fake_config_read(v, 40, 4), ==, 1);         /* max_discard_seg */
    g_assert_cmpuint(fake_config_read(v, 44, 4), ==, 8);         /* discard_sector_alignment */
    g_assert_cmpuint(fake_config_read(v, 48, 4), ==, 1 << 16);   /* max_write_zeroes_sectors */
    g_assert_cmpuint(fake_config_read(v, 52, 4), ==, 1);         /* max_write_zeroes_seg */
    g_assert_cmpuint(fake_config_read(v, 56, 1), ==, 1);         /* write_zeroes_may_unmap */
    /* Out of range reads zeroes, writes are ignored. */
    g_assert_cmpuint(fake_config_read(v, 58, 4), ==, 0);
    uint8_t junk[4] = {1, 2, 3, 4};
    virtio_config_write(v, 0, junk, 4);
    g_assert_cmpuint(fake_config_read(v, 0, 8), ==, SECTORS);
    fixture_close(&fx);
}

static void test_rw(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fixture_start(&fx);
    uint8_t *buf = gp(&fx, fx.data, 8192);
    for (unsigned i = 0; i < 8192; i++) {
        buf[i] = (uint8_t)(i ^ 0x5a);
    }
    uint32_t used;
    g_assert_cmpuint(do_req(&fx, T_OUT, 4, fx.data, 8192, false, &used), ==, S_OK);
    g_assert_cmpuint(used, ==, 1);
    uint8_t file[8192];
    file_read(&fx, 4 * 512, file, sizeof(file));
    g_assert_cmpmem(file, sizeof(file), buf, 8192);

    uint64_t back = fx.data + 0x10000;
    memset(gp(&fx, back, 8192), 0, 8192);
    g_assert_cmpuint(do_req(&fx, T_IN, 4, back, 8192, true, &used), ==, S_OK);
    g_assert_cmpuint(used, ==, 8193);
    g_assert_cmpmem(gp(&fx, back, 8192), 8192, buf, 8192);
    g_assert_cmpuint(fake_transport_queue_irqs(&fx.t), >=, 1);

    /* The last sector is fine, one more is not. */
    g_assert_cmpuint(do_req(&fx, T_IN, SECTORS - 1, back, 512, true, NULL), ==, S_OK);
    g_assert_cmpuint(do_req(&fx, T_IN, SECTORS - 1, back, 1024, true, NULL), ==, S_IOERR);
    /* A length that is not a multiple of 512. */
    g_assert_cmpuint(do_req(&fx, T_OUT, 0, fx.data, 100, false, NULL), ==, S_IOERR);
    g_assert_cmpuint(do_req(&fx, 99, 0, back, 512, true, NULL), ==, S_UNSUPP);
    fixture_close(&fx);
}

/* query-blockstats' counters: what completed, what was refused, how far writes went. */
static void test_stats(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    BlockAcctSnapshot st;
    virtio_blk_stats(fx.vdev, &st);
    g_assert_cmpint(st.idle_ns, ==, -1);
    g_assert_cmpuint(st.c[BLOCK_ACCT_READ].ops + st.c[BLOCK_ACCT_WRITE].ops, ==, 0);
    fixture_start(&fx);
    g_assert_cmpuint(do_req(&fx, T_OUT, 4, fx.data, 8192, false, NULL), ==, S_OK);
    g_assert_cmpuint(do_req(&fx, T_OUT, 40, fx.data, 512, false, NULL), ==, S_OK);
    g_assert_cmpuint(do_req(&fx, T_IN, 0, fx.data, 4096, true, NULL), ==, S_OK);
    g_assert_cmpuint(do_req(&fx, T_FLUSH, 0, 0, 0, false, NULL), ==, S_OK);
    /* Refused before any I/O: past the end, and a length not a multiple of 512. */
    g_assert_cmpuint(do_req(&fx, T_IN, SECTORS, fx.data, 512, true, NULL), ==, S_IOERR);
    g_assert_cmpuint(do_req(&fx, T_OUT, 0, fx.data, 100, false, NULL), ==, S_IOERR);
    uint64_t seg[2] = {GUINT64_TO_LE(8), GUINT64_TO_LE(16)};
    memcpy(gp(&fx, fx.data, 16), seg, 16);
    g_assert_cmpuint(do_req(&fx, T_DISCARD, 0, fx.data, 16, false, NULL), ==, S_OK);
    virtio_blk_stats(fx.vdev, &st);
    const BlockAcctCounters *rd = &st.c[BLOCK_ACCT_READ], *wr = &st.c[BLOCK_ACCT_WRITE];
    g_assert_cmpuint(wr->ops, ==, 2);
    g_assert_cmpuint(wr->bytes, ==, 8192 + 512);
    g_assert_cmpuint(wr->invalid, ==, 1);
    g_assert_cmpuint(wr->total_ns, >, 0);
    g_assert_cmpuint(rd->ops, ==, 1);
    g_assert_cmpuint(rd->bytes, ==, 4096);
    g_assert_cmpuint(rd->invalid, ==, 1);
    g_assert_cmpuint(st.c[BLOCK_ACCT_FLUSH].ops, ==, 1);
    g_assert_cmpuint(st.c[BLOCK_ACCT_UNMAP].ops, ==, 1);
    g_assert_cmpuint(st.c[BLOCK_ACCT_UNMAP].bytes, ==, 16 * 512);
    g_assert_cmpuint(st.wr_highest_offset, ==, 41 * 512);
    g_assert_cmpint(st.idle_ns, >=, 0);
    fixture_close(&fx);
}

/* §2.6.4: header split over descriptors, data and status sharing one buffer, indirect. */
static void test_layout(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fixture_start(&fx);
    uint8_t hdr[16] = {T_IN, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}; /* IN, sector 2 */
    memcpy(gp(&fx, fx.req, 16), hdr, 16);
    uint64_t buf = fx.data;
    FakeBuf bufs[] = {
        {fx.req, 5, false},
        {fx.req + 5, 11, false},
        {buf, 300, true},
        {buf + 0x1000, 213, true}, /* 212 data bytes + the status byte */
    };
    uint16_t head = fake_vq_add(&fx.f, bufs, G_N_ELEMENTS(bufs));
    kick_wait(&fx, 1);
    uint32_t id, used;
    g_assert_true(fake_vq_pop_used(&fx.f, &id, &used));
    g_assert_cmpuint(id, ==, head);
    g_assert_cmpuint(used, ==, 513);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, buf + 0x1000 + 212, 1), ==, S_OK);
    uint8_t file[512], got[512];
    file_read(&fx, 1024, file, 512);
    memcpy(got, gp(&fx, buf, 300), 300);
    memcpy(got + 300, gp(&fx, buf + 0x1000, 212), 212);
    g_assert_cmpmem(got, 512, file, 512);

    /* The same request through an indirect table. */
    memset(gp(&fx, buf, 300), 0, 300);
    head = fake_vq_add_indirect(&fx.f, fx.data + 0x8000, bufs, G_N_ELEMENTS(bufs));
    kick_wait(&fx, 1);
    g_assert_true(fake_vq_pop_used(&fx.f, &id, &used));
    g_assert_cmpuint(id, ==, head);
    g_assert_cmpuint(used, ==, 513);
    g_assert_cmpmem(gp(&fx, buf, 300), 300, file, 300);
    fixture_close(&fx);
}

static void test_flush_get_id(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fixture_start(&fx);
    uint32_t used;
    g_assert_cmpuint(do_req(&fx, T_FLUSH, 0, 0, 0, false, &used), ==, S_OK);
    g_assert_cmpuint(used, ==, 1);
    memset(gp(&fx, fx.data, 32), 0xee, 32);
    g_assert_cmpuint(do_req(&fx, T_GET_ID, 0, fx.data, 20, true, &used), ==, S_OK);
    g_assert_cmpuint(used, ==, 21);
    g_assert_cmpmem(gp(&fx, fx.data, 20), 20, "QLITE-SERIAL-0123456", 20);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, fx.data + 20, 1), ==, 0xee);
    fixture_close(&fx);
}

static void test_discard_write_zeroes(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fixture_start(&fx);
    struct {
        uint32_t type;
        uint64_t sector;
        uint32_t num;
        uint32_t flags;
    } cases[] = {
        {T_DISCARD, 8, 16, 0}, {T_WZ, 64, 9, 0}, {T_WZ, 128, 24, 1}, /* unmap allowed */
    };
    uint8_t zero[24 * 512] = {0};
    uint8_t file[24 * 512];
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint64_t seg[2] = {GUINT64_TO_LE(cases[i].sector),
                           GUINT64_TO_LE((uint64_t)cases[i].num | (uint64_t)cases[i].flags << 32)};
        memcpy(gp(&fx, fx.data, 16), seg, 16);
        g_assert_cmpuint(do_req(&fx, cases[i].type, 0, fx.data, 16, false, NULL), ==, S_OK);
        /* Write zeroes must read back as zeroes; a discarded range may read as
         * anything (virtio 1.2 5.2.6.1), e.g. where the file system cannot
         * punch holes. */
        if (cases[i].type == T_WZ) {
            size_t len = cases[i].num * 512;
            file_read(&fx, cases[i].sector * 512, file, len);
            g_assert_cmpmem(file, len, zero, len);
        }
        /* The sector after the range is untouched (the pattern is never all zero). */
        file_read(&fx, (cases[i].sector + cases[i].num) * 512, file, 512);
        g_assert_cmpint(memcmp(file, zero, 512), !=, 0);
    }
    /* unmap on a discard and unknown flags are unsupported; out of range is an error. */
    uint64_t seg[2] = {GUINT64_TO_LE(0), GUINT64_TO_LE(1 | (1ULL << 32))};
    memcpy(gp(&fx, fx.data, 16), seg, 16);
    g_assert_cmpuint(do_req(&fx, T_DISCARD, 0, fx.data, 16, false, NULL), ==, S_UNSUPP);
    seg[1] = GUINT64_TO_LE(1 | (2ULL << 32));
    memcpy(gp(&fx, fx.data, 16), seg, 16);
    g_assert_cmpuint(do_req(&fx, T_WZ, 0, fx.data, 16, false, NULL), ==, S_UNSUPP);
    seg[0] = GUINT64_TO_LE(SECTORS - 1);
    seg[1] = GUINT64_TO_LE(2);
    memcpy(gp(&fx, fx.data, 16), seg, 16);
    g_assert_cmpuint(do_req(&fx, T_WZ, 0, fx.data, 16, false, NULL), ==, S_IOERR);
    fixture_close(&fx);
}

static void test_beyond_capacity(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fixture_start(&fx);
    uint8_t before[IMAGE_SIZE / 4], after[IMAGE_SIZE / 4];
    file_read(&fx, IMAGE_SIZE - sizeof(before), before, sizeof(before));
    memset(gp(&fx, fx.data, 4096), 0xab, 4096);
    uint64_t sectors[] = {SECTORS, SECTORS - 7, UINT64_MAX, UINT64_MAX / 512 + 1, UINT64_MAX - 3};
    for (unsigned i = 0; i < G_N_ELEMENTS(sectors); i++) {
        g_assert_cmpuint(do_req(&fx, T_OUT, sectors[i], fx.data, 4096, false, NULL), ==, S_IOERR);
        g_assert_cmpuint(do_req(&fx, T_IN, sectors[i], fx.data, 4096, true, NULL), ==, S_IOERR);
    }
    file_read(&fx, IMAGE_SIZE - sizeof(after), after, sizeof(after));
    g_assert_cmpmem(before, sizeof(before), after, sizeof(after));
    struct stat st;
    g_assert_cmpint(g_stat(fx.image, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, IMAGE_SIZE);
    fixture_close(&fx);
}

static void test_readonly(void)
{
    Fixture fx;
    fixture_open(&fx, true, BLOCK_CACHE_WRITEBACK);
    g_assert_true(virtio_get_host_features(fx.vdev, 0) & (1u << F_RO));
    g_assert_false(virtio_get_host_features(fx.vdev, 0) & (1u << F_DISCARD));
    fixture_start(&fx);
    uint8_t before[4096], after[4096];
    file_read(&fx, 0, before, sizeof(before));
    memset(gp(&fx, fx.data, 4096), 0xcd, 4096);
    g_assert_cmpuint(do_req(&fx, T_OUT, 0, fx.data, 4096, false, NULL), ==, S_IOERR);
    uint64_t seg[2] = {0, GUINT64_TO_LE(8)};
    memcpy(gp(&fx, fx.data + 8192, 16), seg, 16);
    g_assert_cmpuint(do_req(&fx, T_WZ, 0, fx.data + 8192, 16, false, NULL), ==, S_IOERR);
    g_assert_cmpuint(do_req(&fx, T_DISCARD, 0, fx.data + 8192, 16, false, NULL), ==, S_IOERR);
    file_read(&fx, 0, after, sizeof(after));
    g_assert_cmpmem(before, sizeof(before), after, sizeof(after));
    /* Reads work. */
    g_assert_cmpuint(do_req(&fx, T_IN, 0, fx.data, 4096, true, NULL), ==, S_OK);
    g_assert_cmpmem(gp(&fx, fx.data, 4096), 4096, before, 4096);
    fixture_close(&fx);
}

static void test_malformed_reset(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fixture_start(&fx);
    unsigned warned = warnings;
    unsigned config_irqs = fake_transport_config_irqs(&fx.t);
    /* Only a status byte, no header: the device cannot even parse it. */
    FakeBuf b = {fx.req + 16, 1, true};
    fake_vq_add(&fx.f, &b, 1);
    virtio_kick(fx.vdev, 0);
    gint64 deadline = g_get_monotonic_time() + WAIT_MS * 1000;
    while (!(virtio_get_status(fx.vdev) & VIRTIO_STATUS_NEEDS_RESET) &&
           g_get_monotonic_time() < deadline) {
        g_usleep(1000);
    }
    g_assert_true(virtio_get_status(fx.vdev) & VIRTIO_STATUS_NEEDS_RESET);
    g_assert_cmpuint(fake_transport_config_irqs(&fx.t), ==, config_irqs + 1);
    g_assert_cmpuint(warnings, ==, warned + 1);
    /* Status writes by the driver keep NEEDS_RESET (§2.1.1). */
    virtio_set_status(fx.vdev, virtio_get_status(fx.vdev) & ~VIRTIO_STATUS_NEEDS_RESET);
    g_assert_true(virtio_get_status(fx.vdev) & VIRTIO_STATUS_NEEDS_RESET);
    /* A broken ring (avail index far ahead) after reset and restart is also caught. */
    fake_vq_init(&fx.f, fx.mem, RING_BASE, QSIZE);
    fixture_start(&fx);
    g_assert_false(virtio_get_status(fx.vdev) & VIRTIO_STATUS_NEEDS_RESET);
    g_assert_cmpuint(do_req(&fx, T_IN, 0, fx.data, 512, true, NULL), ==, S_OK);
    fake_vq_set_avail_idx(&fx.f, fx.f.avail_idx + QSIZE + 1);
    virtio_kick(fx.vdev, 0);
    deadline = g_get_monotonic_time() + WAIT_MS * 1000;
    while (!(virtio_get_status(fx.vdev) & VIRTIO_STATUS_NEEDS_RESET) &&
           g_get_monotonic_time() < deadline) {
        g_usleep(1000);
    }
    g_assert_true(virtio_get_status(fx.vdev) & VIRTIO_STATUS_NEEDS_RESET);
    g_assert_cmpuint(fake_transport_config_irqs(&fx.t), ==, config_irqs + 2);
    /* Reset and start again: the device works. */
    fake_vq_init(&fx.f, fx.mem, RING_BASE, QSIZE);
    fixture_start(&fx);
    g_assert_cmpuint(do_req(&fx, T_IN, 0, fx.data, 512, true, NULL), ==, S_OK);
    fixture_close(&fx);
}

/* Requests published before DRIVER_OK are served once the device is live. */
static void test_kick_before_driver_ok(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fake_blk_submit(&fx.f, fx.req, T_IN, 0, fx.data, 512, true, 0);
    virtio_kick(fx.vdev, 0);
    fixture_start(&fx);
    g_assert_true(fake_vq_wait_used(&fx.f, &fx.t, 1, WAIT_MS));
    g_assert_cmpuint(fake_blk_status(&fx.f, fx.req), ==, S_OK);
    fixture_close(&fx);
}

/* A paused device takes no request until resumed, then serves what was kicked meanwhile. */
static void test_pause_resume(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fixture_start(&fx);
    virtio_device_pause(fx.vdev);
    fake_blk_submit(&fx.f, fx.req, T_IN, 0, fx.data, 512, true, 0);
    virtio_kick(fx.vdev, 0);
    g_assert_false(fake_vq_wait_used(&fx.f, &fx.t, 1, 300));
    virtio_device_resume(fx.vdev);
    g_assert_true(fake_vq_wait_used(&fx.f, &fx.t, 1, WAIT_MS));
    g_assert_cmpuint(fake_blk_status(&fx.f, fx.req), ==, S_OK);
    fixture_close(&fx);
}

typedef struct {
    Fixture *fx;
    unsigned irqs; /* queue interrupts when the pause returned */
} PauseInFlight;

/* On the IoThread: takes the published request (now in flight), then pauses mid-request. */
static void notify_then_pause(void *opaque)
{
    PauseInFlight *p = opaque;
    VirtioDevice *vdev = p->fx->vdev;
    vdev->ops->queue_notify(vdev, &vdev->queues[0]);
    g_assert_cmpuint(vdev->queues[0].inflight, ==, 1);
    virtio_device_pause(vdev);
    p->irqs = fake_transport_queue_irqs(&p->fx->t);
}

/*
 * A request in flight when the VM stops completes in the pause's drain, and
 * its interrupt goes out before the pause returns: the caller saves the
 * interrupt controller's state next, and a migration's destination knows
 * nothing of a notification the source still owed (the guest would wait on
 * that request forever).
 */
static void test_pause_in_flight(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fixture_start(&fx);
    fake_blk_submit(&fx.f, fx.req, T_IN, 0, fx.data, 512, true, 0);
    PauseInFlight p = {.fx = &fx};
    unsigned before = fake_transport_queue_irqs(&fx.t);
    iothread_run_sync(fx.vdev->iothread, notify_then_pause, &p);
    g_assert_cmpuint(fake_vq_used_idx(&fx.f), ==, 1);
    g_assert_cmpuint(fake_blk_status(&fx.f, fx.req), ==, S_OK);
    g_assert_cmpuint(p.irqs, ==, before + 1);
    virtio_device_resume(fx.vdev);
    fixture_close(&fx);
}

/* More requests than the AIO depth at once, completing in any order. */
static void test_many(void)
{
    Fixture fx;
    fixture_open(&fx, false, BLOCK_CACHE_WRITEBACK);
    fixture_start(&fx);
    const unsigned n = 200;
    for (unsigned i = 0; i < n; i++) {
        fake_blk_submit(&fx.f, fx.req + 128 * i, i % 2 ? T_OUT : T_IN, i % SECTORS,
                        fx.data + 4096 * i, 4096, !(i % 2), fx.req + 128 * i + 32);
    }
    kick_wait(&fx, n);
    for (unsigned i = 0; i < n; i++) {
        uint32_t id, used;
        g_assert_true(fake_vq_pop_used(&fx.f, &id, &used));
        g_assert_cmpuint(fake_blk_status(&fx.f, fx.req + 128 * i), ==, S_OK);
    }
    fixture_close(&fx);
}

/* cache=none: buffers not 512-aligned go through the bounce buffer. */
static void test_bounce(void)
{
    Fixture fx;
    if (!fixture_open(&fx, false, BLOCK_CACHE_NONE)) {
        fixture_close(&fx);
        return;
    }
    fixture_start(&fx);
    uint64_t a = fx.data + 1, b = fx.data + 0x3003;
    uint8_t *pa = gp(&fx, a, 700), *pb = gp(&fx, b, 324);
    for (unsigned i = 0; i < 700; i++) {
        pa[i] = (uint8_t)(i * 3);
    }
    for (unsigned i = 0; i < 324; i++) {
        pb[i] = (uint8_t)(i * 5 + 1);
    }
    uint8_t hdr[16] = {T_OUT, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0};
    memcpy(gp(&fx, fx.req, 16), hdr, 16);
    FakeBuf bufs[] = {
        {fx.req, 16, false}, {a, 700, false}, {b, 324, false}, {fx.req + 16, 1, true}};
    fake_vq_add(&fx.f, bufs, G_N_ELEMENTS(bufs));
    kick_wait(&fx, 1);
    uint32_t id, used;
    g_assert_true(fake_vq_pop_used(&fx.f, &id, &used));
    g_assert_cmpuint(fake_blk_status(&fx.f, fx.req), ==, S_OK);
    uint8_t file[1024];
    file_read(&fx, 10 * 512, file, sizeof(file));
    g_assert_cmpmem(file, 700, pa, 700);
    g_assert_cmpmem(file + 700, 324, pb, 324);

    /* And back into misaligned buffers. */
    uint64_t c = fx.data + 0x8007;
    memset(gp(&fx, c, 1024), 0, 1024);
    g_assert_cmpuint(do_req(&fx, T_IN, 10, c, 1024, true, &used), ==, S_OK);
    g_assert_cmpuint(used, ==, 1025);
    g_assert_cmpmem(gp(&fx, c, 1024), 1024, file, 1024);
    g_assert_cmpuint(do_req(&fx, T_FLUSH, 0, 0, 0, false, NULL), ==, S_OK);
    fixture_close(&fx);
}

static void expect_open_error(const DriveConfig *cfg, const char *msg1, const char *msg2)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(BlockBackend) bb = block_open(cfg, &err);
    g_assert_null(bb);
    g_assert_nonnull(err);
    if (!strstr(err->message, msg1) || (msg2 && !strstr(err->message, msg2))) {
        g_error("'%s' does not mention '%s' and '%s'", err->message, msg1, msg2 ? msg2 : "");
    }
}

static void test_open_errors(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("qlite-blk-XXXXXX", &err);
    g_autofree char *missing = g_build_filename(dir, "missing.img", NULL);
    g_autofree char *odd = make_image(dir, "odd.img", 1000, 1);
    g_autofree char *good = make_image(dir, "good.img", 4096, 1);

    DriveConfig cfg = {.file = missing};
    expect_open_error(&cfg, missing, "No such file");
    cfg = (DriveConfig){.file = good, .format = "vmdk"};
    expect_open_error(&cfg, "Unsupported image format 'vmdk'", "raw");
    cfg = (DriveConfig){.file = odd};
    expect_open_error(&cfg, odd, "multiple of 512");
    BlockCacheMode mode;
    g_assert_false(block_cache_mode_parse("fast", &mode, &err));
    g_assert_nonnull(strstr(err->message, "'fast'"));
    g_clear_error(&err);
    g_assert_true(block_cache_mode_parse("directsync", &mode, &err));
    g_assert_cmpint(mode, ==, BLOCK_CACHE_DIRECTSYNC);

    /* Locks: one writer, or any number of readers (OFD locks conflict within a process). */
    cfg = (DriveConfig){.file = good};
    g_autoptr(BlockBackend) w = block_open(&cfg, &err);
    g_assert_no_error(err);
    expect_open_error(&cfg, "Failed to get \"write\" lock", good);
    /* QEMU's locks: QEMU's tools see the image in use; libvirt's metadata byte is free. */
    g_autofree char *out = NULL;
    g_autofree char *cmd = g_strdup_printf("qemu-io -f raw -c 'read 0 512' %s", good);
    gint status;
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, &out, &status, &err));
    g_assert_no_error(err);
    g_assert_false(g_spawn_check_wait_status(status, NULL));
    g_assert_nonnull(strstr(out, "Failed to get \"write\" lock"));
    int other = open(good, O_RDWR);
    struct flock meta = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    g_assert_cmpint(fcntl(other, F_OFD_SETLK, &meta), ==, 0);
    close(other);
    DriveConfig ro = {.file = good, .readonly = true};
    expect_open_error(&ro, "lock", good);
    g_clear_pointer(&w, block_close);
    g_autoptr(BlockBackend) r1 = block_open(&ro, &err);
    g_assert_no_error(err);
    g_autoptr(BlockBackend) r2 = block_open(&ro, &err);
    g_assert_no_error(err);
    expect_open_error(&cfg, "Failed to get \"write\" lock", good);
    g_clear_pointer(&r1, block_close);
    g_clear_pointer(&r2, block_close);

    /*
     * Migration's handover: the destination opens without the lock while
     * the source holds it, the source lets go, the destination takes it;
     * the source cannot take it back then.
     */
    g_autoptr(BlockBackend) src = block_open(&cfg, &err);
    g_assert_no_error(err);
    DriveConfig in = {.file = good, .inactive = true};
    g_autoptr(BlockBackend) dst = block_open(&in, &err);
    g_assert_no_error(err);
    g_assert_false(block_set_owned(dst, true, &err));
    g_assert_nonnull(strstr(err->message, "Failed to get \"write\" lock"));
    g_clear_error(&err);
    g_assert_true(block_set_owned(src, false, &err));
    g_assert_true(block_set_owned(dst, true, &err));
    g_assert_no_error(err);
    g_assert_false(block_set_owned(src, true, &err));
    g_assert_nonnull(strstr(err->message, "Failed to get \"write\" lock"));
    g_clear_error(&err);
    g_clear_pointer(&dst, block_close);
    g_assert_true(block_set_owned(src, true, &err));
    g_clear_pointer(&src, block_close);

    /* No permission: root opens anything, so only checked for other users. */
    if (geteuid() != 0) {
        g_assert_cmpint(g_chmod(good, 0), ==, 0);
        cfg = (DriveConfig){.file = good};
        expect_open_error(&cfg, good, "Permission denied");
        g_chmod(good, 0600);
    }

    /* virtio_blk_new passes the backend's error on. */
    cfg = (DriveConfig){.file = missing};
    g_autoptr(GuestMem) mem = guest_mem_new(1 << 20, 1 << 20, &err);
    g_assert_null(virtio_blk_new(&cfg, mem, &err));
    g_assert_nonnull(strstr(err->message, missing));
    g_unlink(odd);
    g_unlink(good);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    fake_count_virtio_warnings(&warnings);
    g_test_add_func("/virtio/blk/features", test_features);
    g_test_add_func("/virtio/blk/config", test_config);
    g_test_add_func("/virtio/blk/rw", test_rw);
    g_test_add_func("/virtio/blk/stats", test_stats);
    g_test_add_func("/virtio/blk/layout", test_layout);
    g_test_add_func("/virtio/blk/flush-get-id", test_flush_get_id);
    g_test_add_func("/virtio/blk/discard-write-zeroes", test_discard_write_zeroes);
    g_test_add_func("/virtio/blk/beyond-capacity", test_beyond_capacity);
    g_test_add_func("/virtio/blk/readonly", test_readonly);
    g_test_add_func("/virtio/blk/malformed-reset", test_malformed_reset);
    g_test_add_func("/virtio/blk/kick-before-driver-ok", test_kick_before_driver_ok);
    g_test_add_func("/virtio/blk/many", test_many);
    g_test_add_func("/virtio/blk/pause-resume", test_pause_resume);
    g_test_add_func("/virtio/blk/pause-in-flight", test_pause_in_flight);
    g_test_add_func("/virtio/blk/bounce", test_bounce);
    g_test_add_func("/virtio/blk/open-errors", test_open_errors);
    return g_test_run();
}
