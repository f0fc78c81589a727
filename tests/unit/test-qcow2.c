/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The block layer's qcow2 support, against QEMU's own tools: images made
 * by qemu-img and qemu-io, read and written through the BlockBackend API,
 * then judged by qemu-img check (consistency) and qemu-img compare (a raw
 * image that got the same writes).
 */
#include "block/block.h"
#include "block/file.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB 1024ULL
#define MiB (1024ULL * KiB)

static char *tmpdir;
static BlockCacheMode test_cache = BLOCK_CACHE_WRITEBACK; /* of the images the tests open */
static unsigned warnings; /* the block layer's, about malformed images */

static void count_warning(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                          gpointer opaque)
{
    warnings++;
    if (g_test_verbose()) {
        g_test_message("warning: %s", msg);
    }
}

/* ---- helpers ---- */

static char *path_of(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

/* Runs a command line (no shell); returns its exit status, its output in *out when asked. */
G_GNUC_PRINTF(2, 3)
static int run(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *cmd = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_auto(GStrv) argv = NULL;
    g_autoptr(GError) err = NULL;
    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, &err));
    g_autofree char *sout = NULL, *serr = NULL;
    int status;
    g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &sout, &serr,
                               &status, &err));
    if (out) {
        *out = g_strconcat(sout, serr, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

G_GNUC_PRINTF(1, 2)
static void run_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *cmd = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *out = NULL;
    int rc = run(&out, "%s", cmd);
    if (rc != 0) {
        g_error("'%s' exited with %d: %s", cmd, rc, out);
    }
}

/* qemu-img check: 0 clean, 3 leaks only, 2 corruption. */
static int check_image(const char *img, char **out)
{
    return run(out, "qemu-img check -f qcow2 %s", img);
}

static void assert_clean(const char *img)
{
    g_autofree char *out = NULL;
    int rc = check_image(img, &out);
    if (rc != 0) {
        g_error("qemu-img check %s: %d\n%s", img, rc, out);
    }
}

static void assert_same(const char *img, const char *raw)
{
    g_autofree char *out = NULL;
    int rc = run(&out, "qemu-img compare -f qcow2 -F raw %s %s", img, raw);
    if (rc != 0) {
        g_error("qemu-img compare %s %s: %d\n%s", img, raw, rc, out);
    }
}

/* Runs qemu-io commands on a qcow2 image: they must succeed and no read -P find other bytes. */
static void expect_qemu_io(const char *img, const char *cmds)
{
    g_autofree char *out = NULL;
    g_assert_cmpint(run(&out, "qemu-io -f qcow2 %s %s", cmds, img), ==, 0);
    g_assert_null(strstr(out, "fail"));
}

static BlockBackend *open_image(const char *path, const char *format, bool readonly, GError **error)
{
    DriveConfig cfg = {
        .id = (char *)"disk0",
        .file = (char *)path,
        .format = (char *)format,
        .readonly = readonly,
        .cache = test_cache,
    };
    return block_open(&cfg, error);
}

static BlockBackend *open_ok(const char *path, const char *format)
{
    g_autoptr(GError) err = NULL;
    BlockBackend *bb = open_image(path, format, false, &err);
    g_assert_no_error(err);
    return bb;
}

static void expect_open_error(const char *path, const char *format, bool readonly,
                              const char *needle)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(BlockBackend) bb = open_image(path, format, readonly, &err);
    g_assert_null(bb);
    g_assert_nonnull(err);
    if (!strstr(err->message, needle)) {
        g_error("'%s' does not mention '%s'", err->message, needle);
    }
}

static void done_cb(void *opaque, int ret)
{
    *(int *)opaque = ret;
}

static int bb_read(BlockBackend *bb, uint64_t off, void *buf, size_t len)
{
    int ret = 1;
    struct iovec iov = {buf, len};
    block_readv(bb, off, &iov, 1, done_cb, &ret);
    block_drain(bb);
    g_assert_cmpint(ret, !=, 1);
    return ret;
}

static int bb_write(BlockBackend *bb, uint64_t off, const void *buf, size_t len)
{
    int ret = 1;
    struct iovec iov = {(void *)buf, len};
    block_writev(bb, off, &iov, 1, done_cb, &ret);
    block_drain(bb);
    g_assert_cmpint(ret, !=, 1);
    return ret;
}

static int bb_discard(BlockBackend *bb, uint64_t off, uint64_t len)
{
    int ret = 1;
    block_discard(bb, off, len, done_cb, &ret);
    block_drain(bb);
    g_assert_cmpint(ret, !=, 1);
    return ret;
}

static int bb_write_zeroes(BlockBackend *bb, uint64_t off, uint64_t len, bool may_unmap)
{
    int ret = 1;
    block_write_zeroes(bb, off, len, may_unmap, done_cb, &ret);
    block_drain(bb);
    g_assert_cmpint(ret, !=, 1);
    return ret;
}

static int bb_flush(BlockBackend *bb)
{
    int ret = 1;
    block_flush(bb, done_cb, &ret);
    block_drain(bb);
    return ret;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seed * 31 + i * 7 + i / 512 + 1);
    }
}

/* Bytes written behind the block layer's back: the raw mirror, or a damaged image. */
static void file_write(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, buf, len, (off_t)off), ==, (ssize_t)len);
    close(fd);
}

static void file_read(const char *path, uint64_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, buf, len, (off_t)off), ==, (ssize_t)len);
    close(fd);
}

static void expect_bytes(BlockBackend *bb, uint64_t off, const uint8_t *want, size_t len)
{
    g_autofree uint8_t *got = g_malloc(len);
    g_assert_cmpint(bb_read(bb, off, got, len), ==, 0);
    if (memcmp(got, want, len)) {
        for (size_t i = 0; i < len; i++) {
            if (got[i] != want[i]) {
                g_error("byte %" G_GUINT64_FORMAT ": 0x%02x, expected 0x%02x", off + i, got[i],
                        want[i]);
            }
        }
    }
}

/* The block layer reads what the raw mirror holds there. */
static void expect_as_raw(BlockBackend *bb, const char *raw, uint64_t off, size_t len)
{
    g_autofree uint8_t *want = g_malloc(len);
    file_read(raw, off, want, len);
    expect_bytes(bb, off, want, len);
}

static void expect_fill(BlockBackend *bb, uint64_t off, size_t len, uint8_t value)
{
    g_autofree uint8_t *want = g_malloc(len);
    memset(want, value, len);
    expect_bytes(bb, off, want, len);
}

static void write_both(BlockBackend *bb, const char *raw, uint64_t off, size_t len, unsigned seed)
{
    g_autofree uint8_t *buf = g_malloc(len);
    fill(buf, len, seed);
    g_assert_cmpint(bb_write(bb, off, buf, len), ==, 0);
    file_write(raw, off, buf, len);
}

static void patch_be32(const char *img, uint64_t off, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    file_write(img, off, &v, 4);
}

static void patch_be64(const char *img, uint64_t off, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    file_write(img, off, &v, 8);
}

static uint64_t read_be64(const char *img, uint64_t off)
{
    uint64_t v = 0;
    file_read(img, off, &v, 8);
    return GUINT64_FROM_BE(v);
}

/* ---- allocation across formats ---- */

typedef struct {
    const char *name;
    const char *opts; /* qemu-img create -o */
    uint64_t size;
    BlockCacheMode cache;
} Variant;

static const Variant variants[] = {
    {"v3", "compat=1.1", 1024 * MiB},
    {"v2", "compat=0.10", 1024 * MiB},
    {"refcount1", "refcount_bits=1", 1024 * MiB},
    {"refcount64", "refcount_bits=64", 1024 * MiB},
    {"cluster512", "cluster_size=512", 64 * MiB},
    {"cluster2M", "cluster_size=2M", 1024 * MiB},
    /* O_DIRECT: aligned metadata buffers, bounced guest buffers. */
    {"cache-none", "cluster_size=4k", 1024 * MiB, BLOCK_CACHE_NONE},
    /* No write cache: metadata written back after every allocating write. */
    {"writethrough", "compat=1.1", 1024 * MiB, BLOCK_CACHE_WRITETHROUGH},
    {"unsafe", "compat=1.1", 1024 * MiB, BLOCK_CACHE_UNSAFE},
};

static void test_alloc(gconstpointer data)
{
    const Variant *v = data;
    test_cache = v->cache;
    g_autofree char *img = path_of("alloc.qcow2");
    g_autofree char *raw = path_of("alloc.raw");
    run_ok("qemu-img create -f qcow2 -o %s %s %" G_GUINT64_FORMAT, v->opts, img, v->size);
    run_ok("qemu-img create -f raw %s %" G_GUINT64_FORMAT, raw, v->size);
    const struct {
        uint64_t off;
        size_t len;
    } w[] = {
        {0, 512},
        {4096, 8192},
        {64 * KiB - 512, 1024},           /* spans two 64 KiB clusters */
        {1 * MiB + 3 * 512, 200 * KiB},   /* many clusters, unaligned ends */
        {3 * MiB, 5 * MiB},               /* past a 2 MiB cluster */
        {v->size - 600 * KiB, 300 * KiB}, /* past the first L2 table's range */
        {v->size - 512, 512},
        {4096 + 512, 512}, /* into an allocated cluster */
    };
    {
        g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
        g_assert_cmpstr(block_format(bb), ==, "qcow2");
        g_assert_cmpuint(block_length(bb), ==, v->size);
        for (unsigned i = 0; i < G_N_ELEMENTS(w); i++) {
            write_both(bb, raw, w[i].off, w[i].len, i + 1);
        }
        for (unsigned i = 0; i < G_N_ELEMENTS(w); i++) {
            expect_as_raw(bb, raw, w[i].off, w[i].len);
        }
        expect_fill(bb, 20 * MiB, 64 * KiB, 0);
    }
    /* Reopened: everything is still there. */
    {
        g_autoptr(BlockBackend) bb = open_ok(img, NULL);
        g_assert_cmpstr(block_format(bb), ==, "qcow2");
        for (unsigned i = 0; i < G_N_ELEMENTS(w); i++) {
            expect_as_raw(bb, raw, w[i].off, w[i].len);
        }
    }
    test_cache = BLOCK_CACHE_WRITEBACK;
    assert_clean(img);
    assert_same(img, raw);
    g_unlink(img);
    g_unlink(raw);
}

/* ---- images written by QEMU ---- */

static void test_qemu_written(gconstpointer data)
{
    const char *compat = data;
    g_autofree char *img = path_of("qemu.qcow2");
    run_ok("qemu-img create -f qcow2 -o compat=%s %s 16M", compat, img);
    run_ok("qemu-io -f qcow2 -c 'write -P 0xab 0 64k' -c 'write -P 0xcd 100k 8k' "
           "-c 'write -c -P 0x5a 1M 64k' -c 'write -P 0x11 2M 128k' -c 'write -z 2M 64k' %s",
           img);
    g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
    expect_fill(bb, 0, 64 * KiB, 0xab);
    expect_fill(bb, 64 * KiB, 36 * KiB, 0);
    expect_fill(bb, 100 * KiB, 8 * KiB, 0xcd);
    expect_fill(bb, 1 * MiB, 64 * KiB, 0x5a); /* compressed */
    expect_fill(bb, 2 * MiB, 64 * KiB, 0);    /* zero cluster (v3) or zeroes written (v2) */
    expect_fill(bb, 2 * MiB + 64 * KiB, 64 * KiB, 0x11);
    /* Writes into a compressed and a zero cluster allocate and keep the rest. */
    uint8_t buf[4096];
    memset(buf, 0x77, sizeof(buf));
    g_assert_cmpint(bb_write(bb, 1 * MiB + 8192, buf, sizeof(buf)), ==, 0);
    g_assert_cmpint(bb_write(bb, 2 * MiB + 4096, buf, sizeof(buf)), ==, 0);
    expect_fill(bb, 1 * MiB, 8192, 0x5a);
    expect_fill(bb, 1 * MiB + 8192, 4096, 0x77);
    expect_fill(bb, 1 * MiB + 12288, 64 * KiB - 12288, 0x5a);
    expect_fill(bb, 2 * MiB, 4096, 0);
    expect_fill(bb, 2 * MiB + 4096, 4096, 0x77);
    expect_fill(bb, 2 * MiB + 8192, 56 * KiB, 0);
    g_clear_pointer(&bb, block_close);
    assert_clean(img);
    expect_qemu_io(img,
                   "-c 'read -P 0x77 1056768 4k' -c 'read -P 0x5a 1M 8k' -c 'read -P 0 2M 4k'");
    g_unlink(img);
}

/* An image made by qemu-img convert -c: every cluster compressed. */
static void test_convert_compressed(void)
{
    g_autofree char *raw = path_of("conv.raw");
    g_autofree char *img = path_of("conv.qcow2");
    run_ok("qemu-img create -f raw %s 4M", raw);
    {
        g_autofree uint8_t *buf = g_malloc(3 * MiB);
        fill(buf, 3 * MiB, 9);
        file_write(raw, 512 * KiB, buf, 3 * MiB);
    }
    run_ok("qemu-img convert -c -f raw -O qcow2 %s %s", raw, img);
    g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
    g_autofree uint8_t *all = g_malloc(4 * MiB);
    g_autofree uint8_t *want = g_malloc0(4 * MiB);
    fill(want + 512 * KiB, 3 * MiB, 9);
    g_assert_cmpint(bb_read(bb, 0, all, 4 * MiB), ==, 0);
    g_assert_true(memcmp(all, want, 4 * MiB) == 0);
    /* Overwrite part of the compressed data: copy on write, then the old cluster is freed. */
    write_both(bb, raw, 600 * KiB, 4096, 3);
    g_clear_pointer(&bb, block_close);
    assert_clean(img);
    assert_same(img, raw);
}

/* ---- backing chains ---- */

/* A raw image of size bytes of fill(seed); returns those bytes. */
static uint8_t *make_base(const char *path, size_t size, unsigned seed)
{
    run_ok("qemu-img create -f raw %s %" G_GSIZE_FORMAT, path, size);
    uint8_t *b = g_malloc(size);
    fill(b, size, seed);
    file_write(path, 0, b, size);
    return b;
}

static void test_backing(void)
{
    g_autofree char *base = path_of("base.raw");
    g_autofree char *mid = path_of("mid.qcow2");
    g_autofree char *top = path_of("top.qcow2");
    g_autofree char *mirror = path_of("mirror.raw");
    /* base (2 MiB, shorter than the overlays) <- mid (8 MiB) <- top (8 MiB), relative names. */
    g_autofree uint8_t *b = make_base(base, 2 * MiB, 1);
    run_ok("qemu-img create -f qcow2 -b base.raw -F raw %s 8M", mid);
    run_ok("qemu-io -f qcow2 -c 'write -P 0x22 64k 64k' -c 'write -P 0x23 4M 64k' %s", mid);
    run_ok("qemu-img create -f qcow2 -b mid.qcow2 -F qcow2 %s 8M", top);
    g_autofree char *sum_before = NULL;
    run(&sum_before, "sha256sum %s %s", base, mid);

    run_ok("qemu-img create -f raw %s 8M", mirror);
    file_write(mirror, 0, b, 2 * MiB);
    uint8_t c[64 * KiB];
    memset(c, 0x22, sizeof(c));
    file_write(mirror, 64 * KiB, c, sizeof(c));
    memset(c, 0x23, sizeof(c));
    file_write(mirror, 4 * MiB, c, sizeof(c));

    {
        g_autoptr(BlockBackend) bb = open_ok(top, NULL);
        g_assert_cmpuint(block_backing_depth(bb), ==, 2);
        expect_bytes(bb, 0, b, 64 * KiB);          /* from the base */
        expect_fill(bb, 64 * KiB, 64 * KiB, 0x22); /* from mid */
        expect_bytes(bb, 128 * KiB, b + 128 * KiB, 2 * MiB - 128 * KiB);
        expect_fill(bb, 2 * MiB, 2 * MiB, 0); /* past the base's end */
        expect_fill(bb, 4 * MiB, 64 * KiB, 0x23);
        /* A read across the base's end. */
        g_autofree uint8_t *want = g_malloc0(128 * KiB);
        memcpy(want, b + 2 * MiB - 64 * KiB, 64 * KiB);
        expect_bytes(bb, 2 * MiB - 64 * KiB, want, 128 * KiB);
        /* Partial writes copy the rest of the cluster from below. */
        write_both(bb, mirror, 4096, 512, 5);
        write_both(bb, mirror, 64 * KiB + 1024, 2048, 6);
        write_both(bb, mirror, 2 * MiB - 4096, 8192, 7); /* across the base's end */
        write_both(bb, mirror, 4 * MiB + 512, 512, 8);
        write_both(bb, mirror, 6 * MiB, 4096, 9);
    }
    g_autofree char *sum_after = NULL;
    run(&sum_after, "sha256sum %s %s", base, mid);
    g_assert_cmpstr(sum_before, ==, sum_after);
    assert_clean(top);
    assert_same(top, mirror);

    /* Discard and write-zeroes over a backing file: the backing file must not show (v3). */
    {
        g_autoptr(BlockBackend) bb = open_ok(top, "qcow2");
        g_assert_cmpint(bb_discard(bb, 0, 128 * KiB), ==, 0);
        g_assert_cmpint(bb_write_zeroes(bb, 1 * MiB, 256 * KiB, true), ==, 0);
        expect_fill(bb, 0, 128 * KiB, 0);
        expect_fill(bb, 1 * MiB, 256 * KiB, 0);
    }
    assert_clean(top);
    g_autofree uint8_t *z = g_malloc0(256 * KiB);
    file_write(mirror, 0, z, 128 * KiB);
    file_write(mirror, 1 * MiB, z, 256 * KiB);
    assert_same(top, mirror);
}

/* v2 has no zero flag: over a backing file, write-zeroes writes zeroes (copy on write around). */
static void test_backing_v2_zeroes(void)
{
    g_autofree char *base = path_of("base2.raw");
    g_autofree char *img = path_of("over2.qcow2");
    g_autofree char *mirror = path_of("mirror2.raw");
    g_autofree uint8_t *b = make_base(base, 4 * MiB, 2);
    run_ok("qemu-img create -f qcow2 -o compat=0.10 -b base2.raw -F raw %s 4M", img);
    run_ok("cp %s %s", base, mirror);
    {
        g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
        g_assert_cmpint(bb_write_zeroes(bb, 64 * KiB + 512, 3 * MiB, true), ==, 0);
        expect_bytes(bb, 0, b, 64 * KiB + 512);
        expect_fill(bb, 64 * KiB + 512, 3 * MiB, 0);
        expect_bytes(bb, 3 * MiB + 64 * KiB + 512, b + 3 * MiB + 64 * KiB + 512,
                     1 * MiB - 64 * KiB - 512);
        /* Discard lets the backing file show again: a hint, as in QEMU. */
        g_assert_cmpint(bb_discard(bb, 1 * MiB, 1 * MiB), ==, 0);
        expect_bytes(bb, 1 * MiB, b + 1 * MiB, 1 * MiB);
    }
    g_autofree uint8_t *z = g_malloc0(3 * MiB);
    file_write(mirror, 64 * KiB + 512, z, 3 * MiB);
    file_write(mirror, 1 * MiB, b + 1 * MiB, 1 * MiB);
    assert_clean(img);
    assert_same(img, mirror);
}

static void test_backing_errors(void)
{
    g_autofree char *a = path_of("loop-a.qcow2");
    g_autofree char *b = path_of("loop-b.qcow2");
    run_ok("qemu-img create -f qcow2 %s 1M", a);
    run_ok("qemu-img create -f qcow2 -b loop-a.qcow2 -F qcow2 %s 1M", b);
    run_ok("qemu-img rebase -u -f qcow2 -b loop-b.qcow2 -F qcow2 %s", a);
    expect_open_error(b, "qcow2", false, "loops");

    /* A chain of 20: longer than qlite opens. */
    for (int i = 0; i < 20; i++) {
        g_autofree char *p = g_strdup_printf("%s/chain%d.qcow2", tmpdir, i);
        if (i == 0) {
            run_ok("qemu-img create -f qcow2 %s 1M", p);
        } else {
            run_ok("qemu-img create -f qcow2 -b chain%d.qcow2 -F qcow2 %s 1M", i - 1, p);
        }
    }
    g_autofree char *last = path_of("chain19.qcow2");
    expect_open_error(last, "qcow2", false, "longer than");
    g_autofree char *ok = path_of("chain10.qcow2");
    g_autoptr(BlockBackend) bb = open_ok(ok, "qcow2");
    g_assert_cmpuint(block_backing_depth(bb), ==, 10);

    g_autofree char *c = path_of("missing-backing.qcow2");
    run_ok("qemu-img create -f qcow2 -u -b nowhere.qcow2 -F qcow2 %s 1M", c);
    expect_open_error(c, "qcow2", false, "nowhere.qcow2");
}

/* ---- a full image ---- */

static void fill_image(const char *opts, uint64_t size, size_t chunk)
{
    g_autofree char *img = path_of("full.qcow2");
    g_autofree char *raw = path_of("full.raw");
    run_ok("qemu-img create -f qcow2 -o %s %s %" G_GUINT64_FORMAT, opts, img, size);
    run_ok("qemu-img create -f raw %s %" G_GUINT64_FORMAT, raw, size);
    {
        g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
        g_autofree uint8_t *buf = g_malloc(chunk);
        int fd = open(raw, O_WRONLY);
        /* Every cluster, in an order that is not sequential. */
        uint64_t n = size / chunk;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t k = (i * 7919) % n;
            fill(buf, chunk, (unsigned)k);
            g_assert_cmpint(bb_write(bb, k * chunk, buf, chunk), ==, 0);
            g_assert_cmpint(pwrite(fd, buf, chunk, (off_t)(k * chunk)), ==, (ssize_t)chunk);
        }
        close(fd);
        g_assert_cmpint(bb_flush(bb), ==, 0);
    }
    assert_clean(img);
    assert_same(img, raw);
    g_unlink(img);
    g_unlink(raw);
}

static void test_full(void)
{
    /* 64 MiB of 4 KiB clusters: eight more refcount blocks. */
    fill_image("cluster_size=4k", 64 * MiB, 64 * KiB);
    /* 512-byte clusters with 64-bit refcounts: the refcount table grows, twice. */
    fill_image("cluster_size=512,refcount_bits=64", 5 * MiB, 4 * KiB);
}

/* ---- discard and write-zeroes ---- */

static void test_discard(gconstpointer data)
{
    const char *compat = data;
    g_autofree char *img = path_of("discard.qcow2");
    run_ok("qemu-img create -f qcow2 -o compat=%s %s 16M", compat, img);
    {
        g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
        g_autofree uint8_t *buf = g_malloc(4 * MiB);
        fill(buf, 4 * MiB, 3);
        g_assert_cmpint(bb_write(bb, 0, buf, 4 * MiB), ==, 0);
        g_assert_cmpint(bb_discard(bb, 1 * MiB, 1 * MiB), ==, 0);
        g_assert_cmpint(bb_write_zeroes(bb, 2 * MiB + 512, 1 * MiB, true), ==, 0);
        g_assert_cmpint(bb_write_zeroes(bb, 3 * MiB + 512 * KiB, 64 * KiB, false), ==, 0);
        expect_bytes(bb, 0, buf, 1 * MiB);
        expect_fill(bb, 1 * MiB, 1 * MiB, 0);
        expect_bytes(bb, 2 * MiB, buf + 2 * MiB, 512);
        expect_fill(bb, 2 * MiB + 512, 1 * MiB, 0);
        expect_bytes(bb, 3 * MiB + 512, buf + 3 * MiB + 512, 512 * KiB - 512);
        expect_fill(bb, 3 * MiB + 512 * KiB, 64 * KiB, 0);
        /* A discard of what was never written, and writes into discarded clusters. */
        g_assert_cmpint(bb_discard(bb, 8 * MiB, 4 * MiB), ==, 0);
        g_assert_cmpint(bb_flush(bb), ==, 0);
        g_assert_cmpint(bb_write(bb, 1 * MiB + 4096, buf, 4096), ==, 0);
        expect_bytes(bb, 1 * MiB + 4096, buf, 4096);
        expect_fill(bb, 1 * MiB, 4096, 0);
    }
    /* No leaks: the discarded clusters' refcounts went back to 0. */
    assert_clean(img);
    g_autofree char *map = NULL;
    run(&map, "qemu-img map -f qcow2 --output=json %s", img);
    g_unlink(img);
}

/* ---- concurrency ---- */

typedef struct {
    int ret;
    uint8_t *buf;
} AsyncWrite;

static void async_done(void *opaque, int ret)
{
    ((AsyncWrite *)opaque)->ret = ret;
}

static void async_write(BlockBackend *bb, AsyncWrite *w, uint64_t off, size_t len, uint8_t value)
{
    w->ret = 1;
    w->buf = g_malloc(len);
    memset(w->buf, value, len);
    struct iovec iov = {w->buf, len};
    block_writev(bb, off, &iov, 1, async_done, w);
}

static void test_concurrent(void)
{
    g_autofree char *img = path_of("conc.qcow2");
    run_ok("qemu-img create -f qcow2 %s 64M", img);
    g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
    /* 16 writes of 4 KiB into one unallocated cluster, all in flight at once. */
    AsyncWrite w[16];
    for (unsigned i = 0; i < 16; i++) {
        async_write(bb, &w[i], i * 4096, 4096, 0x40 + i);
    }
    block_drain(bb);
    for (unsigned i = 0; i < 16; i++) {
        g_assert_cmpint(w[i].ret, ==, 0);
        expect_fill(bb, i * 4096, 4096, 0x40 + i);
        g_free(w[i].buf);
    }
    /*
     * Overlapping writes spanning unallocated clusters: each cluster must end
     * up as if the writes touching it ran one after the other.
     */
    enum { N = 24 };
    uint64_t base = 8 * MiB;
    AsyncWrite o[N];
    uint64_t off[N], len[N];
    for (unsigned i = 0; i < N; i++) {
        off[i] = base + (uint64_t)g_test_rand_int_range(0, 512) * 1024;
        len[i] = (uint64_t)g_test_rand_int_range(1, 160) * 1024;
        async_write(bb, &o[i], off[i], len[i], 0x80 + i);
    }
    block_drain(bb);
    g_autofree uint8_t *got = g_malloc(2 * MiB);
    g_assert_cmpint(bb_read(bb, base, got, 2 * MiB), ==, 0);
    for (uint64_t c = 0; c < 2 * MiB / (64 * KiB); c++) {
        /* The writer that ended each sector's content: consistent within the cluster means
         * one order of the writers explains every sector. Check every sector holds 0 or the
         * byte of a writer that covers it. */
        for (uint64_t s = 0; s < 128; s++) {
            uint64_t pos = c * 64 * KiB + s * 512;
            uint8_t v = got[pos];
            bool ok = v == 0;
            for (unsigned i = 0; i < N && !ok; i++) {
                ok = v == 0x80 + i && base + pos >= off[i] && base + pos < off[i] + len[i];
            }
            g_assert_true(ok);
            for (unsigned k = 1; k < 512; k++) {
                g_assert_cmpuint(got[pos + k], ==, v);
            }
        }
    }
    for (unsigned i = 0; i < N; i++) {
        g_assert_cmpint(o[i].ret, ==, 0);
        g_free(o[i].buf);
    }
    /* Writes issued in order to the same sectors of one new cluster: the last one wins here
     * (each waits for the allocation of the one before). */
    AsyncWrite wa, wb;
    async_write(bb, &wa, 32 * MiB, 4096, 0xaa);
    async_write(bb, &wb, 32 * MiB, 4096, 0xbb);
    block_drain(bb);
    g_assert_cmpint(wa.ret, ==, 0);
    g_assert_cmpint(wb.ret, ==, 0);
    g_free(wa.buf);
    g_free(wb.buf);
    expect_fill(bb, 32 * MiB, 4096, 0xbb);
    g_clear_pointer(&bb, block_close);
    assert_clean(img);
}

/* ---- snapshots: shared clusters are copied, not written ---- */

static void test_snapshot_cow(void)
{
    g_autofree char *img = path_of("snap.qcow2");
    run_ok("qemu-img create -f qcow2 %s 16M", img);
    run_ok("qemu-io -f qcow2 -c 'write -P 0x31 0 1M' %s", img);
    run_ok("qemu-img snapshot -c first %s", img);
    {
        g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
        uint8_t buf[4096];
        memset(buf, 0x32, sizeof(buf));
        g_assert_cmpint(bb_write(bb, 8192, buf, sizeof(buf)), ==, 0);
        g_assert_cmpint(bb_write(bb, 4 * MiB, buf, sizeof(buf)), ==, 0);
        expect_fill(bb, 0, 8192, 0x31);
        expect_fill(bb, 8192, 4096, 0x32);
        expect_fill(bb, 12288, 1 * MiB - 12288, 0x31);
    }
    assert_clean(img);
    /* The snapshot still reads as it was. */
    run_ok("qemu-img snapshot -a first %s", img);
    expect_qemu_io(img, "-c 'read -P 0x31 0 1M' -c 'read -P 0 4M 4k'");
    assert_clean(img);
}

/* ---- probing and formats ---- */

static void test_probe(void)
{
    g_autofree char *img = path_of("probe.qcow2");
    g_autofree char *raw = path_of("probe.raw");
    run_ok("qemu-img create -f qcow2 %s 1M", img);
    run_ok("qemu-img create -f raw %s 1M", raw);
    {
        g_autoptr(BlockBackend) bb = open_ok(img, NULL);
        g_assert_cmpstr(block_format(bb), ==, "qcow2");
    }
    {
        /* Probed raw: QEMU's warning, and no write may make block 0 look like qcow2. */
        g_autoptr(BlockBackend) bb = open_ok(raw, NULL);
        g_assert_cmpstr(block_format(bb), ==, "raw");
        uint8_t buf[512] = {'Q', 'F', 'I', 0xfb};
        g_assert_cmpint(bb_write(bb, 0, buf, sizeof(buf)), ==, -EPERM);
        g_assert_cmpint(bb_write(bb, 512, buf, sizeof(buf)), ==, 0);
    }
    {
        g_autoptr(BlockBackend) bb = open_ok(raw, "raw");
        uint8_t buf[512] = {'Q', 'F', 'I', 0xfb};
        g_assert_cmpint(bb_write(bb, 0, buf, sizeof(buf)), ==, 0);
    }
    expect_open_error(img, "vmdk", false, "Unsupported image format 'vmdk'");
    /* Read-only: writes refused, reads fine; and a second reader may open it. */
    g_autoptr(GError) err = NULL;
    g_autoptr(BlockBackend) r1 = open_image(img, "qcow2", true, &err);
    g_assert_no_error(err);
    g_autoptr(BlockBackend) r2 = open_image(img, "qcow2", true, &err);
    g_assert_no_error(err);
    g_assert_nonnull(r2);
    expect_open_error(img, "qcow2", false, "lock");
    uint8_t buf[512] = {0};
    g_assert_cmpint(bb_write(r1, 0, buf, sizeof(buf)), <, 0);
    expect_fill(r1, 0, 64 * KiB, 0);
}

/* ---- malformed images ---- */

static char *fresh(const char *name)
{
    char *img = path_of(name);
    g_unlink(img);
    run_ok("qemu-img create -f qcow2 %s 8M", img);
    run_ok("qemu-io -f qcow2 -c 'write -P 0x61 0 64k' -c 'write -P 0x62 1M 64k' %s", img);
    return img;
}

static void test_malformed(void)
{
    struct {
        const char *what;
        uint64_t off;
        unsigned width; /* 4 or 8 */
        uint64_t value;
        const char *needle;
    } cases[] = {
        {"magic", 0, 4, 0x12345678, "bad magic"},
        {"version", 4, 4, 4, "version 4"},
        {"small clusters", 20, 4, 8, "cluster_bits 8"},
        {"big clusters", 20, 4, 22, "cluster_bits 22"},
        {"huge size", 24, 8, 1ULL << 63, "too large"},
        {"odd size", 24, 8, 8 * MiB + 100, "multiple of 512"},
        {"encryption", 32, 4, 1, "encryption is not supported"},
        {"huge L1", 36, 4, 0x1000000, "L1 table too large"},
        {"small L1", 36, 4, 0, "L1 table too small"},
        {"L1 past the end", 40, 8, 1ULL << 40, "L1 table is past the end"},
        {"L1 unaligned", 40, 8, 0x30200, "not cluster-aligned"},
        {"refcount table past the end", 48, 8, 1ULL << 40, "refcount table is past the end"},
        {"refcount table unaligned", 48, 8, 0x10200, "not cluster-aligned"},
        {"huge refcount table", 56, 4, 0x100000, "refcount table too large"},
        {"empty refcount table", 56, 4, 0, "refcount table is empty"},
        {"dirty", 72, 8, 1, "dirty"},
        {"corrupt", 72, 8, 2, "corrupt"},
        {"data file", 72, 8, 4, "external data file"},
        {"compression type", 72, 8, 8, "compression type"},
        {"extended L2", 72, 8, 16, "extended L2"},
        {"unknown feature", 72, 8, 32, "unknown incompatible features 0x20"},
        {"refcount order", 96, 4, 7, "refcount_order 7"},
        {"header length", 100, 4, 64, "header_length 64"},
        {"backing name", 8, 8, 0x20000, "backing file name"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *img = fresh("bad.qcow2");
        if (cases[i].width == 4) {
            patch_be32(img, cases[i].off, (uint32_t)cases[i].value);
        } else {
            patch_be64(img, cases[i].off, cases[i].value);
        }
        if (!strcmp(cases[i].what, "backing name")) {
            patch_be32(img, 16, 16);
        }
        if (g_test_verbose()) {
            g_test_message("%s", cases[i].what);
        }
        expect_open_error(img, "qcow2", false, cases[i].needle);
    }

    /* zstd compression named. */
    {
        g_autofree char *img = fresh("zstd.qcow2");
        patch_be64(img, 72, 8);
        uint8_t one = 1;
        file_write(img, 104, &one, 1);
        expect_open_error(img, "qcow2", false, "zstd");
    }
    /* Dirty and corrupt images may still be read. */
    {
        g_autofree char *img = fresh("dirty.qcow2");
        patch_be64(img, 72, 1);
        g_autoptr(GError) err = NULL;
        g_autoptr(BlockBackend) bb = open_image(img, "qcow2", true, &err);
        g_assert_no_error(err);
        expect_fill(bb, 0, 64 * KiB, 0x61);
    }
    g_autofree char *model = fresh("model.qcow2");
    uint64_t rt = read_be64(model, 48);
    uint64_t l1 = read_be64(model, 40);
    /* A refcount table entry pointing at the table itself. */
    {
        g_autofree char *img = fresh("rt-self.qcow2");
        patch_be64(img, rt, rt);
        expect_open_error(img, "qcow2", false, "overlaps the refcount table");
    }
    {
        /* Two entries, one block: its refcounts would count two ranges of clusters. */
        g_autofree char *img = fresh("rt-twice.qcow2");
        patch_be64(img, rt + 8, read_be64(img, rt));
        expect_open_error(img, "qcow2", false, "also another refcount block");
    }
    {
        g_autofree char *img = fresh("rt-unaligned.qcow2");
        patch_be64(img, rt, 0x10200);
        expect_open_error(img, "qcow2", false, "not cluster-aligned");
    }
    {
        g_autofree char *img = fresh("rt-past.qcow2");
        patch_be64(img, rt, 1ULL << 40);
        expect_open_error(img, "qcow2", false, "past the end of the file");
    }
    {
        g_autofree char *img = fresh("l1-unaligned.qcow2");
        patch_be64(img, l1, 0x8000000000010200ULL);
        expect_open_error(img, "qcow2", false, "not cluster-aligned");
    }
    {
        /* L1 and refcount table overlap. */
        g_autofree char *img = fresh("overlap.qcow2");
        patch_be64(img, 40, rt);
        expect_open_error(img, "qcow2", false, "overlap");
    }
    /* An L2 table past the end of the file: that range fails, the image opens. */
    {
        g_autofree char *img = fresh("l2-past.qcow2");
        patch_be64(img, l1, (1ULL << 40) | (1ULL << 63));
        g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
        uint8_t buf[4096];
        unsigned warned = warnings;
        g_assert_cmpint(bb_read(bb, 0, buf, sizeof(buf)), ==, -EIO);
        g_assert_cmpint(bb_write(bb, 0, buf, sizeof(buf)), ==, -EIO);
        g_assert_cmpuint(warnings, >, warned);
    }
    /* A data cluster past the end of the file: -EIO for it, the rest reads. */
    {
        g_autofree char *img = fresh("data-past.qcow2");
        uint64_t l2 = read_be64(img, l1) & 0x00fffffffffffe00ULL;
        patch_be64(img, l2, (1ULL << 40) | (1ULL << 63));
        g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
        uint8_t buf[4096];
        g_assert_cmpint(bb_read(bb, 0, buf, sizeof(buf)), ==, -EIO);
        expect_fill(bb, 1 * MiB, 64 * KiB, 0x62);
        /* An unaligned data cluster offset. */
        g_clear_pointer(&bb, block_close);
        patch_be64(img, l2, 0x30200 | (1ULL << 63));
        bb = open_ok(img, "qcow2");
        g_assert_cmpint(bb_read(bb, 0, buf, sizeof(buf)), ==, -EIO);
    }
    /* A compressed cluster that does not inflate. */
    {
        g_autofree char *img = path_of("badz.qcow2");
        g_unlink(img);
        run_ok("qemu-img create -f qcow2 %s 1M", img);
        run_ok("qemu-io -f qcow2 -c 'write -c -P 0x44 0 64k' %s", img);
        uint64_t l2 = read_be64(img, l1) & 0x00fffffffffffe00ULL;
        uint64_t e = read_be64(img, l2);
        uint64_t coff = e & ((1ULL << 54) - 1);
        uint8_t junk[64];
        memset(junk, 0xff, sizeof(junk));
        file_write(img, coff, junk, sizeof(junk));
        g_autoptr(BlockBackend) bb = open_ok(img, "qcow2");
        uint8_t buf[4096];
        g_assert_cmpint(bb_read(bb, 0, buf, sizeof(buf)), ==, -EIO);
    }
}

/* ---- crash consistency ---- */

static void crash_load(const char *img, unsigned seed, BlockCacheMode cache)
{
    g_autoptr(GError) err = NULL;
    DriveConfig cfg = {
        .id = (char *)"crash", .file = (char *)img, .format = (char *)"qcow2", .cache = cache};
    BlockBackend *bb = block_open(&cfg, &err);
    if (!bb) {
        _exit(2);
    }
    GRand *rand = g_rand_new_with_seed(seed);
    uint64_t size = block_length(bb);
    static uint8_t bufs[8][256 * 1024];
    int rets[8];
    for (unsigned i = 0; i < 8; i++) {
        memset(bufs[i], (int)i + 1, sizeof(bufs[i]));
    }
    for (;;) {
        unsigned n = (unsigned)g_rand_int_range(rand, 1, 9);
        for (unsigned i = 0; i < n; i++) {
            unsigned op = (unsigned)g_rand_int_range(rand, 0, 20);
            uint64_t len = (uint64_t)g_rand_int_range(rand, 1, 512) * 512;
            uint64_t off = (uint64_t)g_rand_int_range(rand, 0, (gint32)((size - len) / 512)) * 512;
            if (op < 14) {
                struct iovec iov = {bufs[i], len};
                block_writev(bb, off, &iov, 1, done_cb, &rets[i]);
            } else if (op < 17) {
                block_discard(bb, off, len * 8 > size - off ? len : len * 8, done_cb, &rets[i]);
            } else if (op < 18) {
                block_write_zeroes(bb, off, len, true, done_cb, &rets[i]);
            } else {
                block_flush(bb, done_cb, &rets[i]);
            }
        }
        block_drain(bb);
    }
}

/* After a child's death: qemu-img check may find leaks (repaired here), never corruption. */
static bool crash_check(const char *img, const char *what, unsigned round)
{
    g_autofree char *out = NULL;
    int rc = check_image(img, &out);
    if (rc == 3) {
        run_ok("qemu-img check -r leaks -f qcow2 %s", img);
    } else if (rc != 0) {
        g_test_message("%s %u: qemu-img check exited %d:\n%s", what, round, rc, out);
        /* Start the next round from a sound image. */
        run_ok("qemu-img create -f qcow2 -o cluster_size=4k %s 64M", img);
        return false;
    }
    return true;
}

/* SIGKILL at random moments. */
static void test_crash_kill(void)
{
    g_autofree char *img = path_of("crash.qcow2");
    run_ok("qemu-img create -f qcow2 -o cluster_size=4k %s 64M", img);
    unsigned corrupt = 0;
    const char *env = g_getenv("QLITE_QCOW2_CRASH_ROUNDS"); /* more, by hand */
    unsigned rounds = env ? (unsigned)atoi(env) : 20;
    for (unsigned round = 0; round < rounds; round++) {
        pid_t pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
            /*
             * Every other round without a write cache: each metadata write is then synchronous
             * (O_DSYNC) and slow, so a kill often lands between two of them.
             */
            crash_load(img, round, round % 2 ? BLOCK_CACHE_WRITETHROUGH : BLOCK_CACHE_WRITEBACK);
        }
        g_usleep((gulong)g_test_rand_int_range(20, 400) * 1000);
        kill(pid, SIGKILL);
        int status;
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFSIGNALED(status));
        corrupt += !crash_check(img, "kill round", round);
    }
    g_assert_cmpuint(corrupt, ==, 0);
}

/*
 * Death right after each of the first writes, one round per write: every
 * boundary between two writes of the load (data and metadata) is a place
 * where the image must be consistent.
 */
static void test_crash_points(void)
{
    g_autofree char *img = path_of("points.qcow2");
    run_ok("qemu-img create -f qcow2 -o cluster_size=4k %s 64M", img);
    unsigned corrupt = 0;
    /* Every one of the first 50 writes, then every 10th up to the 400th (more, by hand). */
    const char *env = g_getenv("QLITE_QCOW2_CRASH_POINTS");
    unsigned points = env ? (unsigned)atoi(env) : 400;
    for (unsigned n = 1; n <= points; n += n < 50 || env ? 1 : 10) {
        pid_t pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
            block_file_set_crash_point(n, 42);
            crash_load(img, n, n % 3 ? BLOCK_CACHE_WRITEBACK : BLOCK_CACHE_UNSAFE);
        }
        int status;
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 42);
        corrupt += !crash_check(img, "crash point", n);
    }
    g_assert_cmpuint(corrupt, ==, 0);
}

/* ---- migration hand-over ---- */

static void test_handover(void)
{
    g_autofree char *img = path_of("mig.qcow2");
    run_ok("qemu-img create -f qcow2 %s 32M", img);
    g_autoptr(GError) err = NULL;
    g_autoptr(BlockBackend) src = open_ok(img, "qcow2");
    DriveConfig cfg = {
        .id = (char *)"dst", .file = img, .format = (char *)"qcow2", .inactive = true};
    g_autoptr(BlockBackend) dst = block_open(&cfg, &err);
    g_assert_no_error(err);
    /* The destination may not take the image while the source has it. */
    g_assert_false(block_set_owned(dst, true, &err));
    g_clear_error(&err);

    g_autofree uint8_t *buf = g_malloc(3 * MiB);
    fill(buf, 3 * MiB, 42);
    g_assert_cmpint(bb_write(src, 1 * MiB + 512, buf, 3 * MiB), ==, 0);
    g_assert_true(block_set_owned(src, false, &err));
    g_assert_no_error(err);
    g_assert_true(block_set_owned(dst, true, &err));
    g_assert_no_error(err);
    expect_bytes(dst, 1 * MiB + 512, buf, 3 * MiB);
    /* The destination writes on; the source's stale view is gone with it. */
    g_assert_cmpint(bb_write(dst, 8 * MiB, buf, 64 * KiB), ==, 0);
    g_clear_pointer(&src, block_close);
    g_clear_pointer(&dst, block_close);
    assert_clean(img);
}

/* ---- the file layer's synchronous calls ---- */

/* O_DIRECT with an unaligned buffer, offset and length: through an aligned copy (file.c). */
static void test_file_bounce(void)
{
    g_autofree char *path = path_of("bounce.raw");
    const size_t size = 64 * KiB;
    g_autofree uint8_t *want = g_malloc0(size + 4 * KiB);
    fill(want, size, 11);
    g_assert_true(g_file_set_contents(path, (const char *)want, (gssize)size, NULL));
    g_autoptr(GError) err = NULL;
    g_autoptr(BlockAio) aio = block_aio_new(&err);
    g_assert_no_error(err);
    g_autoptr(BlockFile) f = block_file_open(path, aio, false, BLOCK_CACHE_NONE, true, false, &err);
    g_assert_no_error(err);
    g_assert_true(block_file_is_direct(f));
    uint8_t space[1001];
    uint8_t *buf = space + 1;
    g_assert_cmpint(block_file_pread(f, buf, 1000, 700), ==, 1000);
    g_assert_true(memcmp(buf, want + 700, 1000) == 0);
    /* Past the end of the file: the bytes there, then zeroes. */
    memset(buf, 0xff, 1000);
    g_assert_cmpint(block_file_pread(f, buf, 1000, size - 300), ==, 300);
    g_assert_true(memcmp(buf, want + size - 300, 1000) == 0);
    /* Writes keep the bytes around them, also across the end of the file. */
    memset(buf, 0x5a, 1000);
    g_assert_cmpint(block_file_pwrite(f, buf, 1000, 3000), ==, 0);
    memset(want + 3000, 0x5a, 1000);
    g_assert_cmpint(block_file_pwrite(f, buf, 1000, size - 200), ==, 0);
    memset(want + size - 200, 0x5a, 1000);
    g_clear_pointer(&f, block_file_close);
    g_autofree char *got = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &got, &len, NULL));
    g_assert_cmpuint(len, >=, size + 800);
    g_assert_true(memcmp(got, want, size + 800) == 0);
    g_unlink(path);
}

static void test_no_qemu_img(void)
{
    g_test_skip("qemu-img and qemu-io are not installed (Debian: qemu-utils)");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    g_log_set_handler("qlite-block", G_LOG_LEVEL_WARNING, count_warning, NULL);
    g_autofree char *img = g_find_program_in_path("qemu-img");
    g_autofree char *io = g_find_program_in_path("qemu-io");
    g_autoptr(GError) err = NULL;
    tmpdir = g_dir_make_tmp("qlite-qcow2-XXXXXX", &err);
    g_assert_no_error(err);
    g_test_add_func("/qcow2/file-bounce", test_file_bounce);
    if (!img || !io) {
        g_test_add_func("/qcow2/skipped", test_no_qemu_img);
    } else {
        for (unsigned i = 0; i < G_N_ELEMENTS(variants); i++) {
            g_autofree char *name = g_strdup_printf("/qcow2/alloc/%s", variants[i].name);
            g_test_add_data_func(name, &variants[i], test_alloc);
        }
        g_test_add_data_func("/qcow2/qemu-written/v3", "1.1", test_qemu_written);
        g_test_add_data_func("/qcow2/qemu-written/v2", "0.10", test_qemu_written);
        g_test_add_func("/qcow2/convert-compressed", test_convert_compressed);
        g_test_add_func("/qcow2/backing", test_backing);
        g_test_add_func("/qcow2/backing-v2-zeroes", test_backing_v2_zeroes);
        g_test_add_func("/qcow2/backing-errors", test_backing_errors);
        g_test_add_func("/qcow2/full", test_full);
        g_test_add_data_func("/qcow2/discard/v3", "1.1", test_discard);
        g_test_add_data_func("/qcow2/discard/v2", "0.10", test_discard);
        g_test_add_func("/qcow2/concurrent", test_concurrent);
        g_test_add_func("/qcow2/snapshot-cow", test_snapshot_cow);
        g_test_add_func("/qcow2/probe", test_probe);
        g_test_add_func("/qcow2/malformed", test_malformed);
        g_test_add_func("/qcow2/crash/kill", test_crash_kill);
        g_test_add_func("/qcow2/crash/points", test_crash_points);
        g_test_add_func("/qcow2/handover", test_handover);
    }
    int rc = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf %s", tmpdir);
    (void)!system(cmd);
    return rc;
}
