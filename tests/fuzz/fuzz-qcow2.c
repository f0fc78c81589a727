/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qcow2 images: the input is the image file. Opening it must end in a
 * BlockBackend or an error; reads, writes (allocating, copying on write,
 * growing refcounts), discard, write-zeroes and flush on whatever opened must
 * complete with a result, never a crash, and close cleanly.
 */
#include "block/block.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void done(void *opaque, int ret)
{
    *(int *)opaque = ret;
}

static void quiet(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer opaque)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *path;
    static uint8_t *buf;
    if (!path) {
        /* The image's own warnings (a malformed table) are expected: not a finding. */
        g_log_set_handler("qlite-block", G_LOG_LEVEL_WARNING, quiet, NULL);
        path = g_strdup_printf("%s/qlite-fuzz-qcow2-%d.img", g_get_tmp_dir(), (int)getpid());
        buf = g_malloc(256 * 1024);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    g_assert(fd >= 0);
    g_assert(write(fd, data, size) == (ssize_t)size);
    close(fd);

    /* unsafe: no fdatasync, the fuzzer's time goes to the parsing and the tables. */
    DriveConfig cfg = {
        .id = (char *)"fuzz", .file = path, .format = (char *)"qcow2", .cache = BLOCK_CACHE_UNSAFE};
    g_autoptr(GError) err = NULL;
    BlockBackend *bb = block_open(&cfg, &err);
    g_assert((bb == NULL) == (err != NULL));
    if (bb) {
        uint64_t len = block_length(bb);
        uint64_t offs[] = {0, 65536, len / 3, len / 2, len - MIN(len, 8192)};
        for (size_t i = 0; i < G_N_ELEMENTS(offs); i++) {
            uint64_t off = offs[i] & ~511ULL;
            size_t n = (size_t)MIN(len - MIN(len, off), 8192);
            struct iovec iov = {buf, n};
            int ret = 1;
            memset(buf, (int)i, n);
            if (i % 2) {
                block_writev(bb, off, &iov, 1, done, &ret);
            } else {
                block_readv(bb, off, &iov, 1, done, &ret);
            }
            block_drain(bb);
            g_assert(ret <= 0);
        }
        int ret = 1;
        block_discard(bb, 0, MIN(len, 1 << 20), done, &ret);
        block_drain(bb);
        ret = 1;
        block_write_zeroes(bb, len / 2 & ~511ULL, MIN(len - (len / 2 & ~511ULL), 4096), true, done,
                           &ret);
        block_drain(bb);
        ret = 1;
        block_flush(bb, done, &ret);
        block_drain(bb);
        g_assert(ret <= 0);
        block_close(bb);
    }
    g_unlink(path);
    return 0;
}
