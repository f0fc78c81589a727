/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* The KVM VM: /dev/kvm, the VM fd, the in-kernel irqchip and PIT, RAM slots. */
#include "cpu/kvm-stats.h"
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
    /* GSI routing: the irqchip pins plus one MSI route per allocated GSI. */
    GMutex routes_lock;
    struct kvm_irq_routing_entry *msi_routes; /* indexed by gsi - KVM_MSI_GSI_BASE */
    unsigned nmsi_routes;
    /* KVM_GET_MSR_INDEX_LIST: the MSRs KVM can save and restore, read once. */
    uint32_t *msr_index;
    unsigned nmsr_index;
    KvmStats *stats; /* the VM's statistics; NULL where the kernel has none */
} Kvm;

/* GSIs 0-23 are the IOAPIC pins (0-15 also the PICs); MSI routes start above. */
#define KVM_IOAPIC_PINS  24
#define KVM_MSI_GSI_BASE KVM_IOAPIC_PINS

Kvm *kvm_new(GError **error);
void kvm_free(Kvm *kvm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Kvm, kvm_free)

bool kvm_map_ram(Kvm *kvm, GuestMem *mem, GError **error);
/* Firmware: guest reads of [gpa, gpa + size) see hva; writes exit as MMIO (ignored). */
#define KVM_ROM_SLOT GUEST_MEM_MAX_REGIONS
bool kvm_map_rom(Kvm *kvm, uint64_t gpa, const void *hva, uint64_t size, GError **error);
/*
 * KVM's dirty page log on every RAM slot, for live migration: turned on,
 * KVM records the pages vCPUs write; get moves them (ORed, then cleared in
 * KVM) into a bitmap of guest_mem_pages(mem) bits indexed like the memfd.
 */
bool kvm_dirty_log_set(Kvm *kvm, GuestMem *mem, bool on, GError **error);
bool kvm_dirty_log_get(Kvm *kvm, GuestMem *mem, unsigned long *bitmap, GError **error);
/* Drive an ISA/IOAPIC interrupt line of the in-kernel irqchip. */
bool kvm_irq_line(Kvm *kvm, unsigned irq, bool level);
/*
 * The guest's kvmclock: read when the VM stops, written back when it
 * continues, so guest time does not advance while the VM is paused (as QEMU).
 */
bool kvm_clock_get(Kvm *kvm, uint64_t *ns, GError **error);
bool kvm_clock_set(Kvm *kvm, uint64_t ns, GError **error);
/* Put PIC, IOAPIC and PIT back in their power-on state. */
bool kvm_reset_irqchip(Kvm *kvm, GError **error);

/*
 * MSI through GSI routing (KVM_SET_GSI_ROUTING) and irqfd: allocate a GSI,
 * point it at an MSI address/data pair (again whenever the guest reprograms
 * it), bind an eventfd to it; writing the eventfd then injects the MSI
 * without entering userspace. Thread-safe.
 */
bool kvm_msi_gsi_alloc(Kvm *kvm, unsigned *gsi, GError **error);
bool kvm_msi_route_set(Kvm *kvm, unsigned gsi, uint64_t addr, uint32_t data, GError **error);
bool kvm_irqfd(Kvm *kvm, int fd, unsigned gsi, bool assign, GError **error);
/* Binds fd to guest writes of len bytes at addr (MMIO or port I/O), any value. */
bool kvm_ioeventfd(Kvm *kvm, int fd, uint64_t addr, unsigned len, bool pio, bool assign,
                   GError **error);
