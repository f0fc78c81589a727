/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once
/*
 * The devices a fuzz target drives, built once per process without KVM: a
 * PCI host on port and MMIO buses with a virtio-blk function in slot 1 (on a
 * scratch image), its interrupts and ioeventfds faked, and guest RAM.
 */
#include "machine/pci-host.h"
#include "mem/bus.h"
#include "mem/guest-mem.h"
#include "pci-fake.h"
#include "virtio/virtio-pci.h"

#define FUZZ_RAM_SIZE (4 << 20)
#define FUZZ_DEVFN    (1 << 3)

typedef struct FuzzPc {
    GuestMem *mem;
    Bus *pio, *mmio;
    PciHost *host;
    FakeIrq irq;
    VirtioPci *vp;
} FuzzPc;

/* A fresh machine, kept for the process; the device is paused (as a save or load sees it) when
 * paused is set. */
FuzzPc *fuzz_pc_new(bool paused);
