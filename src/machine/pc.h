/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The PC machine: RAM with the hole below 4 GiB, the in-kernel irqchip and
 * PIT, COM1, the CMOS RTC, an 8042 for reset, ACPI PM1 for power-off, and
 * the optional isa-debug-exit. Devices are created here, in this order.
 */
#include "block/block.h"
#include "net/net.h"
#include "util/sandbox.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* A virtio-net-pci NIC and the -netdev it is plugged into. */
typedef struct NicConfig {
    NetdevConfig *netdev; /* owned */
    uint8_t mac[6];
    unsigned pci_slot; /* addr=: its slot, or 0 for the first free */
} NicConfig;

/* A -device with an id=: the QOM tree's /machine/peripheral/ID. */
typedef struct MachinePeripheral {
    char *id;
    char *driver;
} MachinePeripheral;

/* A virtio-rng-pci. */
typedef struct RngConfig {
    char *id;
    unsigned pci_slot; /* addr=: its slot, or 0 for the first free */
} RngConfig;

void rng_config_free(RngConfig *rng);

void nic_config_free(NicConfig *nic);

/* The PC under QEMU's name for the machine it matches (-machine, query-machines). */
#define PC_MACHINE_NAME "pc-i440fx-7.2"
#define PC_MAX_CPUS     255 /* xAPIC IDs, one byte in the MADT */

/* Process exit codes besides isa-debug-exit's odd (V << 1) | 1. */
#define QLITE_EXIT_OK      0 /* guest powered off, -no-reboot reset, Ctrl-a x, signal */
#define QLITE_EXIT_ERROR   1 /* bad option or setup failure: nothing ran */
#define QLITE_EXIT_FAILURE 2 /* the VM died: emulation failure or an unexpected exit */

#define PC_LOWMEM_LIMIT 0xc0000000ULL /* RAM below 4 GiB stops here; the rest is the PCI hole */

/* -device virtio-blk-pci,bootindex=N: the disk (its index in disks) and N. */
typedef struct MachineBootIndex {
    guint disk;
    int32_t index;
} MachineBootIndex;

typedef struct MachineConfig {
    uint64_t ram_size;
    unsigned ncpus;
    char *kernel; /* NULL: firmware boot */
    char *bios;   /* -bios: the firmware image (default FIRMWARE_DEFAULT) */
    char *initrd;
    char *append;
    char *serial; /* chardev spec, or NULL for no COM1 */
    bool serial_append; /* -chardev file,append=on behind isa-serial */
    char *serial_label; /* its -chardev id; NULL: QEMU's "serial0" */
    char *name;
    bool no_reboot;
    bool no_shutdown; /* -no-shutdown: a guest power-off stops the VM, qlite stays */
    bool debug_exit;
    uint16_t debug_exit_base;
    uint16_t debug_exit_size;
    /* virtio-blk-pci disks in slot order (DriveConfig *, owned). */
    GPtrArray *disks;
    /* virtio-net-pci NICs, in slot order after the disks (NicConfig *, owned). */
    GPtrArray *nics;
    /* -boot and bootindex=, for the firmware (SeaBIOS). */
    char *boot_order;      /* order=: drive letters (c: disk, n: network...), NULL: "c" */
    char *boot_once;       /* once=: the order of the first boot only */
    bool boot_menu;        /* menu=on */
    bool boot_strict;      /* strict=on: only the devices with a bootindex */
    int64_t boot_retry_ms; /* reboot-timeout=: -1 for the firmware's default */
    GArray *bootindex;     /* MachineBootIndex: disks given a bootindex= */
    /* virtio-rng-pci devices after the NICs (RngConfig *, owned). */
    GPtrArray *rngs;
    /* QMP monitors: "unix:PATH,server=on,wait=off", "tcp:...", or "fd:N" (owned strings). */
    GPtrArray *monitors;
    GPtrArray *monitor_labels; /* each one's chardev label, for query-chardev */
    GPtrArray *peripherals;    /* MachinePeripheral *, owned: the devices given an id */
    bool start_paused;     /* -S */
    char *incoming;        /* -incoming URI or "defer" */
    bool daemonize;        /* -daemonize: handled by main.c */
    char *pidfile;         /* -pidfile */
    SandboxConfig sandbox; /* -sandbox: set up by main.c, applied per thread */
    bool machine_none;     /* -machine none: no VM, the monitors only (none.c) */
    bool msg_timestamp;    /* -msg timestamp=on: main.c prefixes messages with the time */
} MachineConfig;

void machine_config_clear(MachineConfig *cfg);

typedef struct Machine Machine;

Machine *machine_new(const MachineConfig *cfg, GError **error);
void machine_free(Machine *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Machine, machine_free)

/*
 * Called before any thread starts: SIGINT, SIGTERM and SIGHUP wait until
 * machine_run can take them (a signal during set-up ends the VM with its
 * SHUTDOWN event, as later), and only the main thread ever takes them.
 */
void machine_hold_signals(void);

/*
 * Then the main loop's thread takes them: a source for each on ctx calling
 * fn(opaque), and the held ones are delivered.
 */
#define MACHINE_ENDING_SIGNALS 3 /* SIGINT, SIGTERM, SIGHUP */
void machine_take_signals(GMainContext *ctx, GSourceFunc fn, void *opaque,
                          GSource *sources[MACHINE_ENDING_SIGNALS]);

/* -machine none: no VM, the monitors alone until quit; returns the exit status. */
int machine_none_run(const MachineConfig *cfg);

/* Runs the VM until it ends; returns the process exit code. */
int machine_run(Machine *m);

/* From any thread. */
void machine_request_exit(Machine *m, int status, const char *why);
/* An exit that QMP announces: a SHUTDOWN event with guest and reason ("guest-shutdown", ...). */
void machine_shutdown(Machine *m, int status, bool guest, const char *reason);
void machine_request_reset(Machine *m, const char *why);
