/* SPDX-License-Identifier: GPL-2.0-or-later */
/* virtio-rng (virtio 1.2 §5.4) through the fake driver. */
#include "virtio-fake.h"
#include "virtio/rng.h"

#include <string.h>

#define MEM_SIZE  (4 * 1024 * 1024)
#define RING_BASE 0x10000
#define QSIZE     64
#define BUF       0x100000
#define WAIT_MS   5000

static unsigned warnings;

typedef struct {
    GuestMem *mem;
    VirtioDevice *vdev;
    FakeTransport t;
    FakeVq f;
} Fixture;

static void fixture_setup(Fixture *fx, gconstpointer unused)
{
    g_autoptr(GError) err = NULL;
    fx->mem = guest_mem_new(MEM_SIZE, MEM_SIZE, &err);
    g_assert_no_error(err);
    fx->vdev = virtio_rng_new("rng0", fx->mem, &err);
    g_assert_no_error(err);
    fake_transport_init(&fx->t, fx->vdev);
    fake_vq_init(&fx->f, fx->mem, RING_BASE, QSIZE);
    uint64_t features = virtio_get_host_features(fx->vdev, 0) |
                        (uint64_t)virtio_get_host_features(fx->vdev, 1) << 32;
    g_assert_cmphex(features >> VIRTIO_F_EVENT_IDX & 1, ==, 1);
    uint8_t s = fake_virtio_start(fx->vdev, &fx->f, features);
    g_assert_cmphex(s & VIRTIO_STATUS_DRIVER_OK, ==, VIRTIO_STATUS_DRIVER_OK);
}

static void fixture_teardown(Fixture *fx, gconstpointer unused)
{
    virtio_device_free(fx->vdev);
    fake_transport_destroy(&fx->t);
    guest_mem_free(fx->mem);
}

static uint32_t request(Fixture *fx, uint64_t gpa, uint32_t len)
{
    FakeBuf b = {.gpa = gpa, .len = len, .write = true};
    fake_vq_add(&fx->f, &b, 1);
    virtio_kick(fx->vdev, 0);
    g_assert_true(fake_vq_wait_used(&fx->f, &fx->t, 1, WAIT_MS));
    uint32_t id, used;
    g_assert_true(fake_vq_pop_used(&fx->f, &id, &used));
    return used;
}

/* Requests are filled and returned, one after another, as the driver's reads make them. */
static void test_fill(Fixture *fx, gconstpointer unused)
{
    uint8_t *p = guest_mem_ptr(fx->mem, BUF, 4096);
    for (int i = 0; i < 100; i++) {
        memset(p, 0, 64);
        g_assert_cmpuint(request(fx, BUF, 64), ==, 64);
        /* With EVENT_IDX the device must ask for the next kick, or the driver never sends it. */
        g_assert_cmpuint(fake_vq_avail_event(&fx->f), ==, fx->f.avail_idx);
        static const uint8_t zero[64];
        g_assert_true(memcmp(p, zero, 64) != 0);
    }
    /* The bytes look random: 4 KiB give nearly every byte value. */
    g_assert_cmpuint(request(fx, BUF, 4096), ==, 4096);
    unsigned seen[256] = {0}, values = 0;
    for (int i = 0; i < 4096; i++) {
        values += !seen[p[i]]++;
    }
    g_assert_cmpuint(values, >, 200);
}

/* Readable buffers are ignored, a huge request gets VIRTIO_RNG_MAX_REQUEST bytes. */
static void test_shapes(Fixture *fx, gconstpointer unused)
{
    FakeBuf mixed[] = {{.gpa = BUF, .len = 100, .write = false},
                       {.gpa = BUF + 4096, .len = 32, .write = true},
                       {.gpa = BUF + 8192, .len = 16, .write = true}};
    fake_vq_add(&fx->f, mixed, 3);
    virtio_kick(fx->vdev, 0);
    g_assert_true(fake_vq_wait_used(&fx->f, &fx->t, 1, WAIT_MS));
    uint32_t id, used;
    g_assert_true(fake_vq_pop_used(&fx->f, &id, &used));
    g_assert_cmpuint(used, ==, 48);
    g_assert_cmpuint(request(fx, BUF, 1024 * 1024), ==, VIRTIO_RNG_MAX_REQUEST);
}

/* A buffer outside RAM: the device needs a reset (NEEDS_RESET), the process lives on. */
static void test_hostile(Fixture *fx, gconstpointer unused)
{
    unsigned before = warnings;
    FakeBuf b = {.gpa = MEM_SIZE - 16, .len = 64, .write = true};
    fake_vq_add(&fx->f, &b, 1);
    virtio_kick(fx->vdev, 0);
    for (int i = 0; i < 500 && !(virtio_get_status(fx->vdev) & VIRTIO_STATUS_NEEDS_RESET); i++) {
        g_usleep(10000);
    }
    g_assert_cmphex(virtio_get_status(fx->vdev) & VIRTIO_STATUS_NEEDS_RESET, ==,
                    VIRTIO_STATUS_NEEDS_RESET);
    g_assert_cmpuint(warnings, >, before);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    fake_count_virtio_warnings(&warnings);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/virtio-rng/fill", test_fill);
    ADD("/virtio-rng/shapes", test_shapes);
    ADD("/virtio-rng/hostile", test_hostile);
#undef ADD
    return g_test_run();
}
