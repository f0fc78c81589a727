/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "mem/bus.h"

#include <string.h>

typedef struct {
    uint64_t last_offset;
    unsigned last_len;
    uint64_t last_value;
    int reads, writes;
} Probe;

static void probe_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    Probe *p = opaque;
    p->reads++;
    p->last_offset = offset;
    bus_data_set(data, len, 0x1122334455667788ULL);
}

static void probe_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    Probe *p = opaque;
    p->writes++;
    p->last_offset = offset;
    p->last_len = len;
    p->last_value = bus_data_get(data, len);
}

static const BusOps probe_ops = {.read = probe_read, .write = probe_write};

static void test_dispatch(void)
{
    g_autoptr(Bus) bus = bus_new("test");
    Probe a = {0}, b = {0};
    g_assert_true(bus_register(bus, 0x100, 8, &probe_ops, &a, "a", NULL));
    g_assert_true(bus_register(bus, 0x10, 4, &probe_ops, &b, "b", NULL));

    uint8_t buf[4] = {0x78, 0x56, 0x34, 0x12};
    g_assert_true(bus_write(bus, 0x104, buf, 4));
    g_assert_cmpint(a.writes, ==, 1);
    g_assert_cmpuint(a.last_offset, ==, 4);
    g_assert_cmphex(a.last_value, ==, 0x12345678);
    g_assert_cmpint(b.writes, ==, 0);

    uint8_t r[2];
    g_assert_true(bus_read(bus, 0x12, r, 2));
    g_assert_cmpuint(b.last_offset, ==, 2);
    g_assert_cmphex(r[0], ==, 0x88);
    g_assert_cmphex(r[1], ==, 0x77);
}

static void test_unclaimed(void)
{
    g_autoptr(Bus) bus = bus_new("test");
    Probe a = {0};
    g_assert_true(bus_register(bus, 0x100, 8, &probe_ops, &a, "a", NULL));
    uint8_t r[4] = {0};
    g_assert_false(bus_read(bus, 0x200, r, 4));
    for (int i = 0; i < 4; i++) {
        g_assert_cmphex(r[i], ==, 0xff);
    }
    /* An access straddling the end of a range is not the device's. */
    g_assert_false(bus_read(bus, 0x106, r, 4));
    g_assert_cmpint(a.reads, ==, 0);
    uint8_t w = 1;
    g_assert_false(bus_write(bus, 0xff, &w, 1));
    g_assert_cmpint(a.writes, ==, 0);
}

static void test_overlap(void)
{
    g_autoptr(Bus) bus = bus_new("test");
    Probe a = {0};
    g_autoptr(GError) err = NULL;
    g_assert_true(bus_register(bus, 0x100, 0x10, &probe_ops, &a, "a", NULL));
    g_assert_false(bus_register(bus, 0x10f, 1, &probe_ops, &a, "b", &err));
    g_assert_nonnull(strstr(err->message, "overlaps"));
    g_clear_error(&err);
    g_assert_false(bus_register(bus, 0xf0, 0x11, &probe_ops, &a, "c", &err));
    g_clear_error(&err);
    g_assert_false(bus_register(bus, 0x0, 0, &probe_ops, &a, "empty", &err));
    g_clear_error(&err);
    /* Adjacent is fine. */
    g_assert_true(bus_register(bus, 0x110, 1, &probe_ops, &a, "d", NULL));
    g_assert_true(bus_register(bus, 0xff, 1, &probe_ops, &a, "e", NULL));
    bus_unregister(bus, 0x100);
    g_assert_true(bus_register(bus, 0x108, 1, &probe_ops, &a, "f", NULL));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/bus/dispatch", test_dispatch);
    g_test_add_func("/bus/unclaimed", test_unclaimed);
    g_test_add_func("/bus/overlap", test_overlap);
    return g_test_run();
}
