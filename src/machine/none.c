/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * -machine none: no VM at all, only the monitors, as QEMU's "none" machine
 * with no CPU and no memory. A manager starts it to learn what the emulator
 * can do (libvirt's capability probe), so it needs no /dev/kvm: query-kvm
 * says whether KVM is there. It runs until quit or a signal.
 */
#include "machine/pc.h"
#include "machine/pc-priv.h"

#include "util/daemon.h"
#include "util/error.h"

#include <stdio.h>
#include <unistd.h>

typedef struct {
    const MachineConfig *cfg;
    GMainLoop *loop;
    QmpServer *qmp;
    const char *name;
    bool running;
    bool kvm;
} NoneMachine;

static const char *none_status(void *opaque)
{
    NoneMachine *n = opaque;
    return n->running ? "running" : "prelaunch";
}

static void none_stop(void *opaque)
{
    NoneMachine *n = opaque;
    if (n->running) {
        n->running = false;
        qmp_server_event(n->qmp, "STOP", NULL);
    }
}

static bool none_cont(void *opaque, GError **error)
{
    NoneMachine *n = opaque;
    if (!n->running) {
        n->running = true;
        qmp_server_event(n->qmp, "RESUME", NULL);
    }
    return true;
}

static void none_event(NoneMachine *n, const char *name, const char *reason)
{
    machine_qmp_event(n->qmp, name, false, reason);
}

static void none_system_reset(void *opaque)
{
    none_event(opaque, "RESET", "host-qmp-system-reset");
}

static void none_system_powerdown(void *opaque)
{
    NoneMachine *n = opaque;
    qmp_server_event(n->qmp, "POWERDOWN", NULL); /* nobody to press the button for */
}

static void none_end(NoneMachine *n, const char *reason)
{
    none_event(n, "SHUTDOWN", reason);
    g_main_loop_quit(n->loop);
}

static void none_quit(void *opaque)
{
    none_end(opaque, "host-qmp-quit");
}

static gboolean none_on_signal(gpointer opaque)
{
    g_printerr("qlite: terminating on signal\n");
    none_end(opaque, "host-signal");
    return G_SOURCE_CONTINUE;
}

static const char *none_name(void *opaque)
{
    NoneMachine *n = opaque;
    return n->name;
}

static unsigned none_cpus(void *opaque, QmpCpuInfo *out, unsigned max)
{
    return 0;
}

static unsigned none_blocks(void *opaque, QmpBlockInfo *out, unsigned max)
{
    return 0;
}

/* No VM: no KVM statistics. */
static uint64_t *none_kvm_stats(void *opaque, int vcpu, const KvmStats **stats, GError **error)
{
    return NULL;
}

static unsigned none_chardevs(void *opaque, QmpChardevInfo *out, unsigned max)
{
    NoneMachine *n = opaque;
    return machine_monitor_chardevs(n->cfg, out, max);
}

static unsigned none_peripherals(void *opaque, QmpPeripheral *out, unsigned max)
{
    NoneMachine *n = opaque;
    return machine_peripherals(n->cfg, out, max);
}

static const char *none_machine_type(void *opaque)
{
    return "none-machine";
}

static bool none_migrate(void *opaque, const char *uri, int fd, GError **error)
{
    if (fd >= 0) {
        close(fd);
    }
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "the none machine has no VM to migrate");
    return false;
}

static void none_migrate_cancel(void *opaque)
{
}

static void none_query_migrate(void *opaque, QmpMigrateInfo *info)
{
    *info = (QmpMigrateInfo){0};
}

static bool none_kvm(void *opaque)
{
    NoneMachine *n = opaque;
    return n->kvm;
}

static const QmpMachineOps none_ops = {
    .status = none_status,
    .stop = none_stop,
    .cont = none_cont,
    .system_reset = none_system_reset,
    .system_powerdown = none_system_powerdown,
    .quit = none_quit,
    .name = none_name,
    .cpus = none_cpus,
    .blocks = none_blocks,
    .kvm_stats = none_kvm_stats,
    .chardevs = none_chardevs,
    .peripherals = none_peripherals,
    .machine_type = none_machine_type,
    .migrate = none_migrate,
    .migrate_incoming = none_migrate,
    .migrate_cancel = none_migrate_cancel,
    .query_migrate = none_query_migrate,
    .kvm = none_kvm,
};

int machine_none_run(const MachineConfig *cfg)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GMainContext) ctx = g_main_context_new();
    g_main_context_push_thread_default(ctx);
    NoneMachine n = {
        .cfg = cfg,
        .loop = g_main_loop_new(ctx, FALSE),
        .name = cfg->name,
        .running = !cfg->start_paused,
        .kvm = access("/dev/kvm", R_OK | W_OK) == 0,
    };
    int status = QLITE_EXIT_ERROR;
    n.qmp = qmp_server_new(&none_ops, &n, &err);
    if (n.qmp && cfg->monitors && !machine_listen_monitors(n.qmp, cfg->monitors, &err)) {
        g_clear_pointer(&n.qmp, qmp_server_free);
    }
    if (n.qmp && cfg->daemonize) {
        daemon_ready(); /* the monitors listen: the parent may go */
    }
    if (n.qmp && qmp_server_sandbox(n.qmp, &err) && sandbox_apply(SANDBOX_MAIN, &err)) {
        qmp_server_start(n.qmp);
        GSource *signals[MACHINE_ENDING_SIGNALS];
        machine_take_signals(ctx, none_on_signal, &n, signals);
        g_main_loop_run(n.loop);
        for (size_t i = 0; i < G_N_ELEMENTS(signals); i++) {
            g_source_destroy(signals[i]);
            g_source_unref(signals[i]);
        }
        status = QLITE_EXIT_OK;
    } else {
        g_printerr("qlite: %s\n", err->message);
    }
    qmp_server_free(n.qmp);
    g_main_loop_unref(n.loop);
    g_main_context_pop_thread_default(ctx);
    return status;
}
