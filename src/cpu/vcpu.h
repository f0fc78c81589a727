/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * vCPU threads. Each runs KVM_RUN and dispatches port I/O and MMIO exits to
 * the buses; everything else that needs the machine (reset, shutdown, a guest
 * that broke) goes to the VmEvents callbacks, which must not block.
 * A CpuSet can be paused: every vCPU is kicked out of KVM_RUN (signal plus
 * immediate_exit) and parks until resumed.
 */
#include "cpu/kvm.h"
#include "mem/bus.h"

#include <glib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct Vcpu Vcpu;
typedef struct CpuSet CpuSet;

typedef struct VcpuEvents {
    void (*reset)(void *opaque, const char *why);    /* guest asked for (or forced) a reset */
    void (*failure)(void *opaque, Vcpu *cpu);        /* emulation failure, bad exit */
    void *opaque;
} VcpuEvents;

/* Where and how the boot vCPU enters the kernel. */
typedef enum {
    BOOT_MODE_LONG64, /* Linux 64-bit boot protocol: paging on, rsi = boot_params */
    BOOT_MODE_PROT32, /* PVH: 32-bit protected mode, paging off, ebx = hvm_start_info */
} BootMode;

typedef struct BootEntry {
    BootMode mode;
    uint64_t rip;
    uint64_t rsi;
    uint64_t rbx;
    uint64_t cr3;     /* LONG64: identity page tables */
    uint64_t gdt;     /* guest address of a GDT with the selectors below */
    uint16_t gdt_limit;
} BootEntry;

/* GDT layout the boot code writes (shared by both entry modes). */
#define BOOT_GDT_CODE64 0x08
#define BOOT_GDT_CODE32 0x10
#define BOOT_GDT_DATA   0x18
#define BOOT_GDT_TSS    0x20
#define BOOT_GDT_ENTRIES 6 /* the TSS descriptor takes two slots in long mode */

struct Vcpu {
    unsigned index;
    int fd;
    struct kvm_run *run;
    CpuSet *set;
    pthread_t thread;
    bool thread_started;
    pid_t tid;
    bool access_pending; /* an I/O or MMIO exit served, not yet completed by KVM_RUN */
    KvmStats *stats;     /* KVM's counters of this vCPU; NULL where the kernel has none */
    /* Power-on state captured after creation, restored at reset. */
    struct kvm_regs init_regs;
    struct kvm_sregs init_sregs;
    struct kvm_fpu init_fpu;
    struct kvm_lapic_state init_lapic;
    struct kvm_mp_state init_mp;
};

struct CpuSet {
    Kvm *kvm;
    Bus *pio;
    Bus *mmio;
    VcpuEvents events;
    unsigned n;
    Vcpu **cpus;

    GMutex lock;
    GCond cond;
    bool pause_requested; /* under lock */
    bool quit;            /* under lock */
    unsigned parked;      /* under lock */
};

CpuSet *cpus_new(Kvm *kvm, unsigned n, Bus *pio, Bus *mmio, const VcpuEvents *events,
                 GError **error);
/* Stops and joins every thread, then frees. */
void cpus_free(CpuSet *set);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CpuSet, cpus_free)

/* Start the threads; they run unless cpus_pause() was called before. */
bool cpus_start(CpuSet *set, GError **error);
/* Ask every vCPU to park, without waiting (safe from a vCPU thread). */
void cpus_request_pause(CpuSet *set);
/* Park every vCPU and wait until all are parked (not from a vCPU thread). */
void cpus_pause(CpuSet *set);
void cpus_resume(CpuSet *set);
/*
 * With the vCPUs parked by a VM stop: tell a guest using kvmclock that it was
 * paused (KVM_KVMCLOCK_CTRL), so its watchdogs do not take the gap for a hang.
 */
void cpus_note_stopped(CpuSet *set);
/* With the set paused: put every vCPU back in its power-on state. */
bool cpus_reset(CpuSet *set, GError **error);

bool vcpu_set_boot_entry(Vcpu *cpu, const BootEntry *entry, GError **error);
/* Registers, segments and the failing instruction, for a post-mortem. */
void vcpu_dump(Vcpu *cpu, FILE *out);

/* cpuid.c: the CPUID table of vCPU index out of n (topology: 1 socket, n cores). */
bool vcpu_setup_cpuid(Vcpu *cpu, const struct kvm_cpuid2 *supported, unsigned n,
                      GError **error);
struct kvm_cpuid2 *cpuid_build(const struct kvm_cpuid2 *supported, unsigned index, unsigned n);
