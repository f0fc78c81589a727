/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A PCI function's configuration space (PCI Local Bus 3.0 §6): the type 0
 * header, BARs with the sizing protocol, the command register deciding which
 * BARs decode, the capability list, and the INTx pin. The host bridge
 * (machine/pci-host.c) routes configuration cycles here; BARs are put on and
 * taken off the machine's buses as the guest programs them.
 *
 * Config accesses come from vCPU threads and take d->lock; BAR handlers run
 * without it (the bus calls them directly). Lock order: d->lock, then
 * d->intx_lock, then the host bridge's lock.
 */
#include "mem/bus.h"
#include "util/state.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define PCI_CONFIG_SIZE 256
#define PCI_NUM_BARS    6

/* Header offsets, PCI 3.0 §6.1. */
#define PCI_VENDOR_ID      0x00
#define PCI_DEVICE_ID      0x02
#define PCI_COMMAND        0x04
#define PCI_STATUS         0x06
#define PCI_REVISION_ID    0x08
#define PCI_CLASS_PROG     0x09
#define PCI_HEADER_TYPE    0x0e
#define PCI_BAR0           0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID   0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN  0x3d

#define PCI_COMMAND_IO           0x0001
#define PCI_COMMAND_MEMORY       0x0002
#define PCI_COMMAND_MASTER       0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT     0x0008
#define PCI_STATUS_CAP_LIST      0x0010

#define PCI_BAR_IO          0x1
#define PCI_BAR_MEM_TYPE_64 0x4
#define PCI_BAR_PREFETCH    0x8

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

typedef struct PciDevice PciDevice;
typedef struct Msix Msix;

typedef enum {
    PCI_BAR_KIND_MEM32,
    PCI_BAR_KIND_MEM64,
    PCI_BAR_KIND_IO,
} PciBarKind;

typedef struct PciBar {
    PciBarKind kind;
    uint64_t size; /* power of two; 0 = BAR not implemented */
    const BusOps *ops;
    void *opaque;
    bool mapped;
    uint64_t mapped_addr;
} PciBar;

typedef struct PciDeviceInfo {
    const char *name;
    uint16_t vendor_id;
    uint16_t device_id;
    uint16_t subsystem_vendor_id;
    uint16_t subsystem_id;
    uint8_t revision;
    uint32_t class_code; /* base << 16 | sub << 8 | prog-if */
    bool intx;           /* uses INTA# */
} PciDeviceInfo;

/* Raises or lowers a device's INTx line; provided by the host bridge. */
typedef void (*PciIntxFn)(void *opaque, PciDevice *d, bool level);
/* A BAR appeared at addr (mapped) or went away; lets the device move ioeventfds. */
typedef void (*PciBarMapFn)(void *opaque, int bar, bool mapped, uint64_t addr);
/* Extra handling after a config write inside a capability the device owns. */
typedef void (*PciCapWriteFn)(void *opaque, uint32_t offset, unsigned len);
/* Reads/writes of a capability whose contents live elsewhere (virtio pci_cfg). */
typedef void (*PciCapReadFn)(void *opaque, uint32_t offset, unsigned len);

struct PciDevice {
    char *name;
    GMutex lock;
    uint8_t config[PCI_CONFIG_SIZE];
    uint8_t wmask[PCI_CONFIG_SIZE];
    unsigned cap_end; /* next free byte for a capability */
    PciBar bars[PCI_NUM_BARS];
    uint8_t devfn;

    /* Set when plugged into a host. */
    Bus *pio;
    Bus *mmio;
    PciIntxFn set_intx;
    void *intx_opaque;
    /*
     * INTx has its own lock, not d->lock: device threads raise it while a vCPU
     * may hold d->lock waiting for that same device thread (pci_cfg window).
     */
    GMutex intx_lock;
    bool intx_level; /* what the device asserts, before INTX_DISABLE */
    bool intx_out;   /* what the host bridge was told */

    PciBarMapFn bar_mapped;
    void *bar_opaque;
    /* One capability range with device hooks (virtio's pci_cfg window). */
    uint8_t hook_cap;
    uint8_t hook_len;
    PciCapReadFn hook_read;
    PciCapWriteFn hook_write;
    void *hook_opaque;

    Msix *msix;
};

void pci_device_init(PciDevice *d, const PciDeviceInfo *info);
/* Unmaps the BARs and frees what init allocated (not d itself). */
void pci_device_cleanup(PciDevice *d);

bool pci_register_bar(PciDevice *d, int bar, PciBarKind kind, uint64_t size, const BusOps *ops,
                      void *opaque, GError **error);
/* Appends a capability of len bytes with the given id; returns its offset or 0 if full. */
uint8_t pci_add_capability(PciDevice *d, uint8_t id, uint8_t len);

/* Configuration cycles from the host bridge. offset+len within the 256 bytes; len 1, 2, 4. */
uint32_t pci_config_read(PciDevice *d, uint32_t offset, unsigned len);
void pci_config_write(PciDevice *d, uint32_t offset, uint32_t value, unsigned len);

/* Programs a BAR and the command register as firmware would, before the guest runs. */
void pci_set_bar_addr(PciDevice *d, int bar, uint64_t addr);
void pci_enable_decode(PciDevice *d);

/* Level of INTA#; any thread. */
void pci_set_intx(PciDevice *d, bool level);
/* Power-on state of the header (BARs unmapped, command 0, BAR addresses kept). */
void pci_device_reset(PciDevice *d);

uint64_t pci_bar_addr(PciDevice *d, int bar);

/*
 * Save/restore of the function (MSI-X separately, msix_save/msix_load): the
 * configuration space, which BARs decode, the INTx level. The device must be
 * quiet (VM stopped). Load restores the bytes as saved, then puts on the buses
 * exactly the BARs that decoded on the source (of two overlapping BARs, the one
 * that held the range) and drives INTx, the bar_mapped hook included, without
 * running capability hooks. It refuses, marking in bad and changing nothing, a
 * state whose read-only bits (identification, BAR types, capability list,
 * anything outside the write mask) differ from this device's own: that is
 * another device. It also refuses when a BAR that decoded on the source
 * cannot be mapped here (its range is taken); the device is then left as
 * loaded but without that BAR. The function's own BARs may trade places; for
 * BARs that traded places between functions, take every function off the
 * buses (pci_device_unmap) before loading the first.
 */
void pci_device_save(PciDevice *d, GByteArray *out);
bool pci_device_load(PciDevice *d, StateIn *in);
/* Takes every BAR of the function off the buses, until its next load or write. */
void pci_device_unmap(PciDevice *d);

static inline uint16_t pci_get_word(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t pci_get_long(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void pci_set_word(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void pci_set_long(uint8_t *p, uint32_t v)
{
    pci_set_word(p, (uint16_t)v);
    pci_set_word(p + 2, (uint16_t)(v >> 16));
}
