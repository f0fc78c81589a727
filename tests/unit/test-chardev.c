/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A file chardev on a descriptor handed in with -add-fd (/dev/fdset/N): the
 * set's descriptor is found by access mode, and a non-blocking pipe whose
 * reader is slow loses no byte (the writer waits, as QEMU's does).
 */
#include "chardev/chardev.h"
#include "util/fdset.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define TOTAL (1 << 20) /* far more than a pipe holds */

typedef struct {
    Chardev *chr;
    uint8_t *data;
} Writer;

static gpointer write_all(gpointer opaque)
{
    Writer *w = opaque;
    for (size_t off = 0; off < TOTAL; off += 4096) {
        chardev_write(w->chr, w->data + off, 4096);
    }
    return NULL;
}

static void test_fdset_pipe(void)
{
    int p[2];
    g_assert_cmpint(pipe2(p, O_NONBLOCK | O_CLOEXEC), ==, 0);
    g_autoptr(GError) err = NULL;
    g_assert_true(fdset_add(7, p[1], "serial0-source", &err));
    g_assert_false(fdset_add(8, p[1], NULL, NULL)); /* one set per descriptor */

    errno = 0;
    g_assert_cmpint(qlite_open("/dev/fdset/7", O_RDONLY, 0), ==, -1);
    g_assert_cmpint(errno, ==, EACCES); /* only a write end is in the set */
    g_assert_cmpint(qlite_open("/dev/fdset/9", O_WRONLY, 0), ==, -1);
    g_assert_cmpint(errno, ==, ENOENT);

    Chardev *chr = chardev_new("file:/dev/fdset/7", true, "t", NULL, &err);
    g_assert_no_error(err);
    Writer w = {.chr = chr, .data = g_malloc(TOTAL)};
    for (size_t i = 0; i < TOTAL; i++) {
        w.data[i] = (uint8_t)(i * 7 + i / 4096);
    }
    GThread *t = g_thread_new("writer", write_all, &w);
    uint8_t *got = g_malloc(TOTAL);
    size_t have = 0;
    gint64 progress = g_get_monotonic_time();
    while (have < TOTAL) {
        g_usleep(have % 65536 ? 100 : 2000); /* a slow reader: the pipe fills */
        ssize_t n = read(p[0], got + have, TOTAL - have);
        if (n > 0) {
            have += (size_t)n;
            progress = g_get_monotonic_time();
        } else {
            g_assert_true(n < 0 && errno == EAGAIN);
            /* Nothing for 5 s: the writer is done and bytes were dropped. */
            g_assert_cmpint(g_get_monotonic_time() - progress, <, 5 * G_USEC_PER_SEC);
        }
    }
    g_thread_join(t);
    g_assert_true(memcmp(got, w.data, TOTAL) == 0);
    chardev_free(chr);
    g_free(got);
    g_free(w.data);
    close(p[0]);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/chardev/fdset-pipe", test_fdset_pipe);
    return g_test_run();
}
