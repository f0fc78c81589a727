/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * MSI-X (PCI 3.0 §6.8.2): the capability, the vector table and the pending
 * bit array. Each vector owns an eventfd that the MsiController binds to the
 * interrupt controller (KVM irqfd + GSI route on the real machine), so
 * msix_notify from a device thread is one eventfd write. Masking is honoured
 * here: a masked vector (or a masked function) sets its pending bit instead,
 * and unmasking delivers what was pending.
 */
#include "mem/bus.h"
#include "util/state.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define MSIX_CAP_LEN        12
#define MSIX_ENTRY_SIZE     16
#define MSIX_MAX_VECTORS    64

typedef struct PciDevice PciDevice;
typedef struct Msix Msix;

/* Where vectors go: KVM routes in the machine, a recorder in unit tests. */
typedef struct MsiControllerOps {
    /* Gives vector a route id and binds fd to it. */
    bool (*add_vector)(void *opaque, int fd, unsigned *route, GError **error);
    /* The guest programmed address/data for route. */
    bool (*set_route)(void *opaque, unsigned route, uint64_t addr, uint32_t data, GError **error);
} MsiControllerOps;

/*
 * Adds the capability to d with the table at table_off and the PBA at pba_off
 * inside BAR bar (the caller registers that BAR and forwards its accesses in
 * those ranges to msix_table_read/write, msix_pba_read).
 */
Msix *msix_new(PciDevice *d, unsigned nvectors, int bar, uint32_t table_off, uint32_t pba_off,
               const MsiControllerOps *ops, void *opaque, GError **error);
void msix_free(Msix *m);

uint8_t msix_cap_offset(Msix *m);
/* Called by pci_config_write with the device lock held after a write to the capability. */
void msix_control_written(Msix *m);
bool msix_enabled(Msix *m);
unsigned msix_nvectors(Msix *m);
/*
 * Sends vector, or marks it pending while masked; any thread. Returns false,
 * sending nothing, when MSI-X is off (the caller falls back to INTx): one
 * lock per interrupt on the device's completion path.
 */
bool msix_notify(Msix *m, unsigned vector);
/* Table back to power-on state: every vector masked, nothing pending, MSI-X off. */
void msix_reset(Msix *m);

void msix_table_read(Msix *m, uint64_t offset, uint8_t *data, unsigned len);
void msix_table_write(Msix *m, uint64_t offset, const uint8_t *data, unsigned len);
void msix_pba_read(Msix *m, uint64_t offset, uint8_t *data, unsigned len);
/*
 * Save/restore: every vector's address, data and mask, the pending bits, and
 * the function's enable and mask-all bits. Load comes after pci_device_load
 * (enable and mask-all live in the capability's Message Control word, which
 * it restores; the saved copies must agree). It routes every programmed
 * vector again through set_route, so each eventfd reaches the interrupt
 * controller as on the source; pending bits come back as they were and fire
 * once unmasked. False (and in marked bad) on a malformed state or a route
 * that cannot be set.
 */
void msix_save(Msix *m, GByteArray *out);
bool msix_load(Msix *m, StateIn *in);
/* Table and PBA sizes in bytes (for laying out the BAR). */
uint32_t msix_table_size(unsigned nvectors);
uint32_t msix_pba_size(unsigned nvectors);
