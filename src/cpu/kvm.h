/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* The KVM VM: /dev/kvm, the VM fd, the in-kernel irqchip and PIT, RAM slots. */
#include "mem/guest-mem.h"

#include <glib.h>
#include <linux/kvm.h>
#include <stdbool.h>

/* Below 4 GiB, above the PCI hole, where the PC's BIOS would sit. */
#define KVM_TSS_ADDR          0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

typedef struct Kvm {
    int sys_fd;
    int vm_fd;
    int run_size;
    struct kvm_cpuid2 *supported_cpuid;
    /* Power-on state of the in-kernel PIC, IOAPIC and PIT, restored at reset. */
    struct kvm_irqchip irqchip_init[3];
    struct kvm_pit_state2 pit_init;
} Kvm;

Kvm *kvm_new(GError **error);
void kvm_free(Kvm *kvm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Kvm, kvm_free)

bool kvm_map_ram(Kvm *kvm, GuestMem *mem, GError **error);
/* Drive an ISA/IOAPIC interrupt line of the in-kernel irqchip. */
bool kvm_irq_line(Kvm *kvm, unsigned irq, bool level);
/* Put PIC, IOAPIC and PIT back in their power-on state. */
bool kvm_reset_irqchip(Kvm *kvm, GError **error);
