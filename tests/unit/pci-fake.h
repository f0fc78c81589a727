/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Fakes for PCI tests without KVM: an interrupt controller that records MSI
 * routes and reads the vectors' irqfds, GSI levels, ioeventfd bindings, and
 * configuration cycles through mechanism #1 on a port bus.
 */
#include "mem/bus.h"
#include "pci/msix.h"

#include <stdbool.h>
#include <stdint.h>

#define FAKE_MAX_IOEVENTFDS 16

typedef struct {
    int fd;
    uint64_t addr;
    unsigned len;
} FakeIoeventfd;

typedef struct FakeIrq {
    int fds[MSIX_MAX_VECTORS];
    unsigned n;
    uint64_t addr[MSIX_MAX_VECTORS];
    uint32_t data[MSIX_MAX_VECTORS];
    gint gsi_level[32];
    FakeIoeventfd ioeventfds[FAKE_MAX_IOEVENTFDS];
    unsigned nioeventfds;
} FakeIrq;

extern const MsiControllerOps fake_msi_ops;
/* PciHostIrqFn */
void fake_gsi(void *opaque, unsigned gsi, bool level);
/* The VirtioPciHostOps ioeventfd callback: keeps the bound set in irq->ioeventfds. */
bool fake_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len, bool assign,
                    GError **error);
/* How many times route v fired since the last call; waits up to timeout_ms for one. */
uint64_t fake_msi_fired(FakeIrq *f, unsigned v, int timeout_ms);
/* Waits up to timeout_ms for gsi to reach level. */
bool fake_gsi_wait(FakeIrq *f, unsigned gsi, bool level, int timeout_ms);

uint32_t fake_cfg_read(Bus *pio, unsigned devfn, unsigned reg, unsigned len);
void fake_cfg_write(Bus *pio, unsigned devfn, unsigned reg, uint32_t v, unsigned len);
