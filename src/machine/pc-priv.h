/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* The machine's parts, shared by pc.c and snapshot.c (save and restore). */
#include "block/block.h"
#include "chardev/chardev.h"
#include "cpu/kvm.h"
#include "cpu/vcpu.h"
#include "machine/acpi-pm.h"
#include "machine/acpi.h"
#include "machine/boot.h"
#include "machine/debug-exit.h"
#include "machine/firmware.h"
#include "machine/i8042.h"
#include "machine/mptable.h"
#include "machine/pc.h"
#include "machine/pci-host.h"
#include "machine/rtc.h"
#include "machine/serial.h"
#include "mem/bus.h"
#include "mem/guest-mem.h"
#include "migration/stream.h"
#include "monitor/qmp.h"

/* QMP's run states (query-status), those qlite can be in. */
typedef enum {
    RUN_STATE_PRELAUNCH,
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,
    RUN_STATE_SHUTDOWN,
    RUN_STATE_INTERNAL_ERROR,
    RUN_STATE_INMIGRATE,      /* -incoming: waiting for or loading the stream */
    RUN_STATE_FINISH_MIGRATE, /* stopped, the state going out */
    RUN_STATE_POSTMIGRATE,    /* the state went out; stays stopped */
} RunState;

struct Machine {
    MachineConfig cfg;
    GMainContext *ctx;
    GMainLoop *loop;

    Kvm *kvm;
    GuestMem *mem;
    Bus *pio;
    Bus *mmio;
    CpuSet *cpus;

    Firmware *firmware;  /* without -kernel */
    bool boot_once_done; /* -boot once= was used for the first boot */
    /* What the boot loader copies in again at every reset. */
    GMappedFile *kernel_file;
    GMappedFile *initrd_file;
    BootKernel kernel;
    uint8_t acpi[ACPI_TABLES_MAX];
    size_t acpi_size; /* the ACPI tables, then the MP configuration table */
    uint8_t mpf[MPTABLE_MPF_SIZE];
    uint64_t rsdp;

    Chardev *serial_chr;
    Serial *serial;
    Rtc *rtc;
    I8042 *kbd;
    AcpiPm *pm;
    DebugExit debug_exit;
    PciHost *pci;
    GPtrArray *virtio; /* VirtioPci *, in slot order */
    QmpServer *qmp;
    gint runstate; /* RunState */
    /* kvmclock when the VM stopped, put back by cont (monitor thread). */
    uint64_t stopped_clock;
    bool clock_stopped;

    /* Migration (migration.c), under mig_lock. */
    GMutex mig_lock;
    int mig_status; /* MigStatus */
    gint64 mig_start_us, mig_setup_ms, mig_total_ms, mig_downtime_ms;
    MigStats mig_stats;
    uint64_t mig_remaining;    /* bytes of RAM still to send (dirty pages) */
    uint64_t mig_passes;       /* syncs of the dirty log (dirty-sync-count) */
    uint64_t mig_dirty_rate;   /* pages/s dirtied during the last pass */
    int64_t mig_expected_down; /* ms, at the current bandwidth */
    gint64 mig_stop_us;        /* when the source stopped the VM for the last pass */
    GThread *mig_thread;
    int mig_fd;      /* the stream, for migrate_cancel to shut down */
    int mig_out_fd;  /* the descriptor of migrate fd:NAME until the thread takes it; -1 */
    gint mig_cancel; /* migrate_cancel was asked */
    char *mig_uri;
    char *mig_error; /* under mig_lock: why the last migration failed, or NULL */

    GSource *signal_sources[MACHINE_ENDING_SIGNALS];
    gint ending;     /* set once: the VM is on its way out */
    int exit_status; /* valid once ending */
    gint resetting;  /* a reset is queued on the main loop */
};

/*
 * Stops vCPUs, then devices, and freezes guest time (no event: the caller
 * says why); resume undoes it. From a thread that is not a vCPU's.
 */
void machine_vm_stop(Machine *m);
const char *machine_runstate_name(Machine *m);
void machine_vm_resume(Machine *m);

/* ---- migration.c ---- */
typedef enum {
    MIG_STATUS_NONE,
    MIG_STATUS_SETUP,
    MIG_STATUS_ACTIVE,
    MIG_STATUS_COMPLETED,
    MIG_STATUS_FAILED,
    MIG_STATUS_CANCELLED,
} MigStatus;

/* fd: the descriptor of an fd:NAME uri, or -1 (see QmpMachineOps.migrate); taken over. */
bool machine_migrate(Machine *m, const char *uri, int fd, GError **error);
bool machine_migrate_incoming(Machine *m, const char *uri, int fd, GError **error);
void machine_migrate_cancel(Machine *m);
void machine_query_migrate(Machine *m, QmpMigrateInfo *info);
/*
 * Image locks between the two sides of a migration: own = false flushes and
 * releases them (the source, at the switch), own = true takes them (the
 * destination once the state is in, or the source again when the
 * migration failed or cont follows it). Devices paused or not yet live.
 */
bool machine_handover(Machine *m, bool own, GError **error);
/* At start with -incoming URI (not defer): listen now, receive on a thread. */
bool machine_start_incoming(Machine *m, GError **error);

/* Listens on each of the monitor specs ("fd:N", or qmp_server_listen's). */
bool machine_listen_monitors(QmpServer *qmp, GPtrArray *monitors, GError **error);
/* query-chardev's entries for cfg's monitors; returns how many there are. */
unsigned machine_monitor_chardevs(const MachineConfig *cfg, QmpChardevInfo *out, unsigned max);
/* qom-list's /machine/peripheral: cfg's devices with an id; returns how many there are. */
unsigned machine_peripherals(const MachineConfig *cfg, QmpPeripheral *out, unsigned max);
/* A QMP event whose data is {"guest": guest, "reason": reason} (SHUTDOWN, RESET); qmp may be NULL. */
void machine_qmp_event(QmpServer *qmp, const char *name, bool guest, const char *reason);
