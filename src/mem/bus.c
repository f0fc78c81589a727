/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "mem/bus.h"
#include "util/error.h"

#include <string.h>

/* How many distinct unclaimed addresses are logged before we go quiet. */
#define BUS_UNCLAIMED_LOG_MAX 64

typedef struct {
    uint64_t base;
    uint64_t len;
    const BusOps *ops;
    void *opaque;
    char *name;
} BusRange;

struct Bus {
    char *name;
    GRWLock lock;
    GArray *ranges; /* BusRange, sorted by base */
    GMutex log_lock;
    GHashTable *logged; /* unclaimed addresses already reported */
};

Bus *bus_new(const char *name)
{
    Bus *bus = g_new0(Bus, 1);
    bus->name = g_strdup(name);
    g_rw_lock_init(&bus->lock);
    g_mutex_init(&bus->log_lock);
    bus->ranges = g_array_new(FALSE, FALSE, sizeof(BusRange));
    bus->logged = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    return bus;
}

void bus_free(Bus *bus)
{
    if (!bus) {
        return;
    }
    for (guint i = 0; i < bus->ranges->len; i++) {
        g_free(g_array_index(bus->ranges, BusRange, i).name);
    }
    g_array_free(bus->ranges, TRUE);
    g_hash_table_destroy(bus->logged);
    g_rw_lock_clear(&bus->lock);
    g_mutex_clear(&bus->log_lock);
    g_free(bus->name);
    g_free(bus);
}

/* Index of the first range whose end is above addr. */
static guint bus_lower_bound(Bus *bus, uint64_t addr)
{
    guint lo = 0, hi = bus->ranges->len;
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const BusRange *r = &g_array_index(bus->ranges, BusRange, mid);
        if (r->base + r->len <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

bool bus_register(Bus *bus, uint64_t base, uint64_t len, const BusOps *ops, void *opaque,
                  const char *name, GError **error)
{
    if (len == 0 || base + len < base) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s: invalid range 0x%" G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER "x for %s",
                    bus->name, base, len, name);
        return false;
    }
    g_rw_lock_writer_lock(&bus->lock);
    guint i = bus_lower_bound(bus, base);
    if (i < bus->ranges->len) {
        const BusRange *r = &g_array_index(bus->ranges, BusRange, i);
        if (r->base < base + len) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "%s: %s at 0x%" G_GINT64_MODIFIER "x overlaps %s at 0x%" G_GINT64_MODIFIER
                        "x",
                        bus->name, name, base, r->name, r->base);
            g_rw_lock_writer_unlock(&bus->lock);
            return false;
        }
    }
    BusRange nr = {.base = base, .len = len, .ops = ops, .opaque = opaque, .name = g_strdup(name)};
    g_array_insert_val(bus->ranges, i, nr);
    g_rw_lock_writer_unlock(&bus->lock);
    return true;
}

void bus_unregister(Bus *bus, uint64_t base)
{
    g_rw_lock_writer_lock(&bus->lock);
    guint i = bus_lower_bound(bus, base);
    if (i < bus->ranges->len && g_array_index(bus->ranges, BusRange, i).base == base) {
        g_free(g_array_index(bus->ranges, BusRange, i).name);
        g_array_remove_index(bus->ranges, i);
    }
    g_rw_lock_writer_unlock(&bus->lock);
}

static void bus_log_unclaimed(Bus *bus, uint64_t addr, unsigned len, bool write)
{
    g_mutex_lock(&bus->log_lock);
    guint n = g_hash_table_size(bus->logged);
    if (n <= BUS_UNCLAIMED_LOG_MAX && !g_hash_table_contains(bus->logged, &addr)) {
        uint64_t *key = g_new(uint64_t, 1);
        *key = addr;
        g_hash_table_add(bus->logged, key);
        if (n < BUS_UNCLAIMED_LOG_MAX) {
            g_debug("%s: unclaimed %u-byte %s at 0x%" G_GINT64_MODIFIER "x (logged once)",
                    bus->name, len, write ? "write" : "read", addr);
        } else {
            g_debug("%s: more unclaimed addresses, no longer logged", bus->name);
        }
    }
    g_mutex_unlock(&bus->log_lock);
}

/* Finds the range containing [addr, addr+len); called with the read lock held. */
static const BusRange *bus_find_locked(Bus *bus, uint64_t addr, unsigned len)
{
    guint i = bus_lower_bound(bus, addr);
    if (i >= bus->ranges->len) {
        return NULL;
    }
    const BusRange *r = &g_array_index(bus->ranges, BusRange, i);
    if (addr < r->base || addr - r->base + len > r->len) {
        return NULL;
    }
    return r;
}

/*
 * Copies the range out so the handler runs without the lock: a handler may
 * itself change the bus (a PCI config write that moves a BAR), and handlers
 * of different devices never wait on each other. Devices outlive the vCPUs,
 * so a handler called just after its range went away still has its object;
 * it checks its own state.
 */
static bool bus_lookup(Bus *bus, uint64_t addr, unsigned len, BusRange *out)
{
    g_rw_lock_reader_lock(&bus->lock);
    const BusRange *r = bus_find_locked(bus, addr, len);
    if (r) {
        *out = *r;
        out->name = NULL;
    }
    g_rw_lock_reader_unlock(&bus->lock);
    return r != NULL;
}

bool bus_read(Bus *bus, uint64_t addr, uint8_t *data, unsigned len)
{
    BusRange r;
    if (!bus_lookup(bus, addr, len, &r)) {
        memset(data, 0xff, len);
        bus_log_unclaimed(bus, addr, len, false);
        return false;
    }
    if (r.ops->read) {
        r.ops->read(r.opaque, addr - r.base, data, len);
    } else {
        memset(data, 0xff, len);
    }
    return true;
}

bool bus_write(Bus *bus, uint64_t addr, const uint8_t *data, unsigned len)
{
    BusRange r;
    if (!bus_lookup(bus, addr, len, &r)) {
        bus_log_unclaimed(bus, addr, len, true);
        return false;
    }
    if (r.ops->write) {
        r.ops->write(r.opaque, addr - r.base, data, len);
    }
    return true;
}
