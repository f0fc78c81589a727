/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The PCI host bridge of bus 0: configuration mechanism #1 (ports 0xcf8 and
 * 0xcfc, PCI 3.0 §3.2.2.3.2) and ECAM (PCI Express Base §7.2.2) over the same
 * functions, the firmware's BAR assignment in the 32-bit window, and INTx
 * routing: slot S pin P goes to IOAPIC pin 16 + (S + P) % 8, level-triggered,
 * as the DSDT's _PRT tells the guest.
 */
#include "mem/bus.h"
#include "pci/pci.h"

#include "util/state.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define PCI_HOST_SLOTS     32
#define PCI_CONFIG_ADDR_PORT 0xcf8
#define PCI_CONFIG_DATA_PORT 0xcfc
#define PCI_ECAM_BASE      0xe0000000ULL
#define PCI_ECAM_SIZE      0x100000ULL /* bus 0 only */
#define PCI_MMIO32_BASE    0xc0000000ULL
#define PCI_MMIO32_SIZE    0x20000000ULL /* up to the ECAM window */
/* Above the ECAM window up to the I/O APIC: BARs that firmware places top-down. */
#define PCI_MMIO32_HIGH_BASE (PCI_ECAM_BASE + PCI_ECAM_SIZE)
#define PCI_MMIO32_HIGH_SIZE (0xfec00000ULL - PCI_MMIO32_HIGH_BASE)
#define PCI_INTX_GSI_BASE  16
#define PCI_INTX_GSI_COUNT 8

typedef struct PciHost PciHost;

/* Drives a GSI (an IOAPIC pin); the machine wires it to the in-kernel irqchip. */
typedef void (*PciHostIrqFn)(void *opaque, unsigned gsi, bool level);

PciHost *pci_host_new(Bus *pio, Bus *mmio, PciHostIrqFn set_irq, void *irq_opaque,
                      GError **error);
void pci_host_free(PciHost *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PciHost, pci_host_free)

/*
 * Keeps slot (1..31) for the device a caller placed there (-device
 * ...,addr=): pci_host_plug with slot 0 passes it by.
 */
void pci_host_reserve(PciHost *h, unsigned slot);
/*
 * Plugs d into slot (1..31), or with slot 0 into the first slot that is
 * neither used nor reserved; assigns its BARs as firmware would.
 */
bool pci_host_plug(PciHost *h, PciDevice *d, unsigned slot, GError **error);
/* Firmware in the guest (SeaBIOS) places the BARs: plug and reset leave them unassigned. */
void pci_host_leave_bars(PciHost *h);
/* Re-assigns every BAR and decode bit after a machine reset. */
void pci_host_reset(PciHost *h);
/*
 * Save/restore: the configuration address latch and the host bridge's
 * config space. Each plugged device saves itself (virtio_pci_save) and
 * re-asserts its INTx line when loaded.
 */
void pci_host_save(PciHost *h, GByteArray *out);
void pci_host_load(PciHost *h, StateIn *in);
/* The GSI a slot's INTA# reaches. */
unsigned pci_host_intx_gsi(unsigned slot, unsigned pin);
