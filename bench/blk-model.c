/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Throughput of the virtio-blk device model alone: the fake driver from the
 * unit tests submits 4 KiB requests at random offsets, the device serves them
 * on its IoThread through the raw AIO backend. Driver and IoThread are pinned
 * to one core, so the figure is requests per second per core.
 *
 *   blk-model [IMAGE-DIR] [CACHE-MODE]   (default: /dev/shm, writeback)
 */
#include "virtio-fake.h"
#include "virtio/blk.h"

#include <glib/gstdio.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MEM_SIZE         (64 * 1024 * 1024)
#define RING_BASE        0x10000
#define REQ_BASE         0x100000 /* 128 bytes per slot: header, status, indirect table */
#define DATA_BASE        0x200000
#define IMAGE_SIZE       (256ULL * 1024 * 1024)
#define BLOCK            4096
#define MAX_DEPTH        32
#define RUN_SECONDS      2
#define VIRTIO_BLK_T_IN  0
#define VIRTIO_BLK_T_OUT 1

typedef struct {
    VirtioDevice *vdev;
    FakeTransport t;
    FakeVq f;
    int slot_of_head[VIRTQ_MAX_SIZE];
} Bench;

static uint64_t random_sector(void)
{
    return (uint64_t)g_random_int_range(0, (int)(IMAGE_SIZE / BLOCK)) * (BLOCK / 512);
}

static void submit(Bench *b, unsigned slot, uint32_t type)
{
    uint64_t req = REQ_BASE + 128 * (uint64_t)slot;
    uint16_t head =
        fake_blk_submit(&b->f, req, type, random_sector(), DATA_BASE + BLOCK * (uint64_t)slot,
                        BLOCK, type == VIRTIO_BLK_T_IN, req + 32);
    b->slot_of_head[head] = (int)slot;
}

/* Keeps depth requests in flight for RUN_SECONDS; returns requests per second. */
static double run(Bench *b, uint32_t type, unsigned depth)
{
    for (unsigned s = 0; s < depth; s++) {
        submit(b, s, type);
    }
    virtio_kick(b->vdev, 0);
    guint64 done = 0;
    gint64 start = g_get_monotonic_time();
    gint64 end = start + RUN_SECONDS * G_USEC_PER_SEC;
    gint64 now = start;
    while (now < end) {
        if (!fake_vq_wait_used(&b->f, &b->t, 1, 5000)) {
            g_error("no completion within 5 s");
        }
        uint32_t id, len;
        unsigned resubmitted = 0;
        while (fake_vq_pop_used(&b->f, &id, &len)) {
            unsigned slot = (unsigned)b->slot_of_head[id];
            if (fake_blk_status(&b->f, REQ_BASE + 128 * (uint64_t)slot) != 0) {
                g_error("request failed");
            }
            done++;
            submit(b, slot, type);
            resubmitted++;
        }
        if (resubmitted) {
            virtio_kick(b->vdev, 0);
        }
        now = g_get_monotonic_time();
    }
    /* Let the last requests finish so the next run starts from an idle queue. */
    if (!fake_vq_wait_used(&b->f, &b->t, depth, 5000)) {
        g_error("queue did not drain");
    }
    uint32_t id, len;
    while (fake_vq_pop_used(&b->f, &id, &len)) {
    }
    return (double)done * G_USEC_PER_SEC / (double)(now - start);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/dev/shm";
    BlockCacheMode cache = BLOCK_CACHE_WRITEBACK;
    g_autoptr(GError) err = NULL;
    if (argc > 2 && !block_cache_mode_parse(argv[2], &cache, &err)) {
        fprintf(stderr, "blk-model: %s\n", err->message);
        return 1;
    }
    /* One core for the driver and the device thread (inherited by the IoThread). */
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(sched_getcpu(), &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0) {
        perror("blk-model: sched_setaffinity");
    }

    g_autofree char *image = g_build_filename(dir, "qlite-blk-model-XXXXXX", NULL);
    int fd = g_mkstemp(image);
    if (fd < 0 || ftruncate(fd, (off_t)IMAGE_SIZE) < 0) {
        perror("blk-model: image");
        return 1;
    }
    /* Allocate the image so reads hit data rather than holes. */
    g_autofree uint8_t *fill = g_malloc0(1 << 20);
    for (uint64_t off = 0; off < IMAGE_SIZE; off += 1 << 20) {
        if (pwrite(fd, fill, 1 << 20, (off_t)off) != 1 << 20) {
            perror("blk-model: fill image");
            return 1;
        }
    }
    close(fd);

    g_autoptr(GuestMem) mem = guest_mem_new(MEM_SIZE, MEM_SIZE, &err);
    DriveConfig cfg = {.id = "bench", .file = image, .cache = cache};
    Bench b = {0};
    b.vdev = mem ? virtio_blk_new(&cfg, mem, &err) : NULL;
    if (!b.vdev) {
        fprintf(stderr, "blk-model: %s\n", err->message);
        g_unlink(image);
        return 1;
    }
    fake_transport_init(&b.t, b.vdev);
    fake_vq_init(&b.f, mem, RING_BASE, 256);
    uint64_t features =
        virtio_get_host_features(b.vdev, 0) | (uint64_t)virtio_get_host_features(b.vdev, 1) << 32;
    if (!(fake_virtio_start(b.vdev, &b.f, features) & VIRTIO_STATUS_DRIVER_OK)) {
        fprintf(stderr, "blk-model: device did not start\n");
        return 1;
    }

    printf("virtio-blk device model, 4 KiB random I/O, %s (cache=%s), one core\n", dir,
           argc > 2 ? argv[2] : "writeback");
    printf("%-6s %5s %12s %10s\n", "op", "depth", "requests/s", "MiB/s");
    const unsigned depths[] = {1, MAX_DEPTH};
    const struct {
        const char *name;
        uint32_t type;
    } ops[] = {{"read", VIRTIO_BLK_T_IN}, {"write", VIRTIO_BLK_T_OUT}};
    for (unsigned o = 0; o < G_N_ELEMENTS(ops); o++) {
        for (unsigned d = 0; d < G_N_ELEMENTS(depths); d++) {
            double rps = run(&b, ops[o].type, depths[d]);
            printf("%-6s %5u %12.0f %10.1f\n", ops[o].name, depths[d], rps,
                   rps * BLOCK / (1024 * 1024));
        }
    }
    virtio_device_free(b.vdev);
    fake_transport_destroy(&b.t);
    g_unlink(image);
    return 0;
}
