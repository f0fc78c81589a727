/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * An address space of device ranges (one for port I/O, one for MMIO).
 * Ranges never overlap; a handler gets the offset into its range. Accesses
 * nobody claims read as all-ones and are ignored on write, as on a PC.
 */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct BusOps {
    void (*read)(void *opaque, uint64_t offset, uint8_t *data, unsigned len);
    void (*write)(void *opaque, uint64_t offset, const uint8_t *data, unsigned len);
} BusOps;

typedef struct Bus Bus;

Bus *bus_new(const char *name);
void bus_free(Bus *bus);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Bus, bus_free)

bool bus_register(Bus *bus, uint64_t base, uint64_t len, const BusOps *ops, void *opaque,
                  const char *name, GError **error);
void bus_unregister(Bus *bus, uint64_t base);

/* Return false when no range claims addr (the access was then handled as unclaimed). */
bool bus_read(Bus *bus, uint64_t addr, uint8_t *data, unsigned len);
bool bus_write(Bus *bus, uint64_t addr, const uint8_t *data, unsigned len);

/* Little-endian helpers for handlers. */
static inline uint64_t bus_data_get(const uint8_t *data, unsigned len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < len && i < 8; i++) {
        v |= (uint64_t)data[i] << (8 * i);
    }
    return v;
}

static inline void bus_data_set(uint8_t *data, unsigned len, uint64_t v)
{
    for (unsigned i = 0; i < len && i < 8; i++) {
        data[i] = (uint8_t)(v >> (8 * i));
    }
}
