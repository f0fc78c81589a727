/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/pc.h"
#include "machine/pc-priv.h"
#include "util/error.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/virtio-pci.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PIO_SPACE_SIZE 0x10000

static const char *const run_state_names[] = {"prelaunch",      "running",        "paused",
                                              "shutdown",       "internal-error", "inmigrate",
                                              "finish-migrate", "postmigrate"};

void nic_config_free(NicConfig *nic)
{
    netdev_config_free(nic->netdev);
    g_free(nic);
}

void rng_config_free(RngConfig *rng)
{
    g_free(rng->id);
    g_free(rng);
}

void machine_config_clear(MachineConfig *cfg)
{
    g_free(cfg->kernel);
    g_free(cfg->bios);
    g_free(cfg->initrd);
    g_free(cfg->append);
    g_free(cfg->serial);
    g_free(cfg->name);
    if (cfg->disks) {
        g_ptr_array_unref(cfg->disks);
    }
    if (cfg->nics) {
        g_ptr_array_unref(cfg->nics);
    }
    if (cfg->rngs) {
        g_ptr_array_unref(cfg->rngs);
    }
    g_free(cfg->boot_order);
    g_free(cfg->boot_once);
    if (cfg->bootindex) {
        g_array_unref(cfg->bootindex);
    }
    g_free(cfg->serial_label);
    if (cfg->peripherals) {
        g_ptr_array_unref(cfg->peripherals);
    }
    if (cfg->monitor_labels) {
        g_ptr_array_unref(cfg->monitor_labels);
    }
    if (cfg->monitors) {
        g_ptr_array_unref(cfg->monitors);
    }
    g_free(cfg->pidfile);
    g_free(cfg->incoming);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- requests from device and vCPU threads, carried out on the main loop ---- */

static gboolean machine_do_exit(gpointer opaque)
{
    Machine *m = opaque;
    g_main_loop_quit(m->loop);
    return G_SOURCE_REMOVE;
}

void machine_request_exit(Machine *m, int status, const char *why)
{
    if (!g_atomic_int_compare_and_exchange(&m->ending, 0, 1)) {
        return; /* the first reason to end wins */
    }
    m->exit_status = status;
    g_debug("ending: %s (exit status %d)", why, status);
    cpus_request_pause(m->cpus);
    g_main_context_invoke(m->ctx, machine_do_exit, m);
}

void machine_qmp_event(QmpServer *qmp, const char *name, bool guest, const char *reason)
{
    if (!qmp) {
        return;
    }
    JsonObject *o = json_object_new();
    json_object_set_boolean_member(o, "guest", guest);
    json_object_set_string_member(o, "reason", reason);
    JsonNode *data = json_node_alloc();
    json_node_take_object(json_node_init(data, JSON_NODE_OBJECT), o);
    qmp_server_event(qmp, name, data);
}

static void machine_event(Machine *m, const char *name, bool guest, const char *reason)
{
    machine_qmp_event(m->qmp, name, guest, reason);
}

void machine_shutdown(Machine *m, int status, bool guest, const char *reason)
{
    if (g_atomic_int_get(&m->ending)) {
        return;
    }
    g_atomic_int_set(&m->runstate, RUN_STATE_SHUTDOWN);
    machine_event(m, "SHUTDOWN", guest, reason);
    machine_request_exit(m, status, reason);
}

/* -no-shutdown: on the main loop, the VM stops where the guest ended it. */
static gboolean machine_do_guest_stop(gpointer opaque)
{
    Machine *m = opaque;
    if (!g_atomic_int_get(&m->ending) && g_atomic_int_get(&m->runstate) == RUN_STATE_SHUTDOWN) {
        machine_vm_stop(m);
        qmp_server_event(m->qmp, "STOP", NULL);
    }
    return G_SOURCE_REMOVE;
}

/*
 * The guest powered off (or, under -no-reboot, reset; or Ctrl-a x): qlite
 * exits, or with -no-shutdown the VM stops in the shutdown state, as QEMU:
 * SHUTDOWN then STOP, and it runs again after system_reset and cont.
 */
static void machine_guest_shutdown(Machine *m, bool guest, const char *reason)
{
    if (!m->cfg.no_shutdown) {
        machine_shutdown(m, QLITE_EXIT_OK, guest, reason);
        return;
    }
    int st = g_atomic_int_get(&m->runstate);
    if (st == RUN_STATE_SHUTDOWN || st == RUN_STATE_INTERNAL_ERROR ||
        !g_atomic_int_compare_and_exchange(&m->runstate, st, RUN_STATE_SHUTDOWN)) {
        return;
    }
    machine_event(m, "SHUTDOWN", guest, reason);
    cpus_request_pause(m->cpus);
    g_main_context_invoke(m->ctx, machine_do_guest_stop, m);
}

static bool machine_load_boot_images(Machine *m, GError **error)
{
    if (m->firmware) {
        /* -boot once= holds for the first boot, order= for every later one. */
        const char *order = m->cfg.boot_once && !m->boot_once_done ? m->cfg.boot_once
                            : m->cfg.boot_order                    ? m->cfg.boot_order
                                                                   : "c";
        m->boot_once_done = true;
        uint8_t reg3d, reg38;
        if (!firmware_boot_cmos(order, &reg3d, &reg38)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "Invalid boot device for PC in '%s'", order);
            return false;
        }
        rtc_set_nvram(m->rtc, 0x3d, reg3d);
        rtc_set_nvram(m->rtc, 0x38, reg38);
        return firmware_reset(m->firmware, m->mem, error);
    }
    BootSetup setup = {
        .kernel = &m->kernel,
        .cmdline = m->cfg.append,
        .rsdp = m->rsdp,
    };
    if (m->initrd_file) {
        setup.initrd = (const uint8_t *)g_mapped_file_get_contents(m->initrd_file);
        setup.initrd_size = g_mapped_file_get_length(m->initrd_file);
        setup.initrd_name = m->cfg.initrd;
    }
    BootEntry entry;
    if (!guest_mem_write(m->mem, ACPI_TABLES_BASE, m->acpi, m->acpi_size) ||
        !guest_mem_write(m->mem, MPTABLE_MPF_ADDR, m->mpf, sizeof(m->mpf))) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "no RAM for the ACPI and MP tables");
        return false;
    }
    if (!boot_load(m->mem, &setup, &entry, error)) {
        g_prefix_error(error, "%s: ", m->cfg.kernel);
        return false;
    }
    return vcpu_set_boot_entry(m->cpus->cpus[0], &entry, error);
}

static bool machine_reset_all(Machine *m, GError **error)
{
    /* Devices first: their threads stop touching guest RAM before it is cleared. */
    for (guint i = 0; i < m->virtio->len; i++) {
        virtio_pci_reset(g_ptr_array_index(m->virtio, i));
    }
    pci_host_reset(m->pci);
    if (!guest_mem_clear(m->mem, error) || !kvm_reset_irqchip(m->kvm, error) ||
        !cpus_reset(m->cpus, error)) {
        return false;
    }
    if (m->serial) {
        serial_reset(m->serial);
    }
    rtc_reset(m->rtc);
    i8042_reset(m->kbd);
    acpi_pm_reset(m->pm);
    return machine_load_boot_images(m, error);
}

static gboolean machine_do_reset(gpointer opaque)
{
    Machine *m = opaque;
    g_atomic_int_set(&m->resetting, 0);
    if (g_atomic_int_get(&m->ending)) {
        return G_SOURCE_REMOVE;
    }
    cpus_pause(m->cpus);
    g_autoptr(GError) err = NULL;
    if (!machine_reset_all(m, &err)) {
        g_printerr("qlite: reset failed: %s\n", err->message);
        machine_request_exit(m, QLITE_EXIT_FAILURE, "reset failed");
        return G_SOURCE_REMOVE;
    }
    /*
     * A reset does not start a paused or prelaunch VM (as QEMU); after an
     * error it is paused, after a -no-shutdown power-off it waits for cont.
     */
    g_atomic_int_compare_and_exchange(&m->runstate, RUN_STATE_INTERNAL_ERROR, RUN_STATE_PAUSED);
    g_atomic_int_compare_and_exchange(&m->runstate, RUN_STATE_SHUTDOWN, RUN_STATE_PRELAUNCH);
    if (g_atomic_int_get(&m->runstate) == RUN_STATE_RUNNING) {
        cpus_resume(m->cpus);
    }
    return G_SOURCE_REMOVE;
}

static void machine_reset(Machine *m, bool guest, const char *reason)
{
    if (m->cfg.no_reboot) {
        /* As QEMU with -no-reboot: a reset ends the process successfully. */
        machine_guest_shutdown(m, guest, reason);
        return;
    }
    g_debug("reset: %s", reason);
    machine_event(m, "RESET", guest, reason);
    cpus_request_pause(m->cpus);
    if (g_atomic_int_compare_and_exchange(&m->resetting, 0, 1)) {
        g_main_context_invoke(m->ctx, machine_do_reset, m);
    }
}

void machine_request_reset(Machine *m, const char *why)
{
    g_debug("guest reset: %s", why);
    machine_reset(m, true, "guest-reset");
}

/* ---- callbacks wiring devices to the machine ---- */

static void machine_cpu_reset(void *opaque, const char *why)
{
    machine_request_reset(opaque, why);
}

static void machine_cpu_failure(void *opaque, Vcpu *cpu)
{
    Machine *m = opaque;
    vcpu_dump(cpu, stderr);
    if (!m->qmp) {
        machine_request_exit(m, QLITE_EXIT_FAILURE, "vCPU failure");
        return;
    }
    /* With a monitor, as QEMU: the VM stops in internal-error and stays inspectable. */
    cpus_request_pause(m->cpus);
    if (g_atomic_int_get(&m->runstate) != RUN_STATE_INTERNAL_ERROR) {
        g_atomic_int_set(&m->runstate, RUN_STATE_INTERNAL_ERROR);
        qmp_server_event(m->qmp, "STOP", NULL);
    }
}

static void machine_kbd_reset(void *opaque)
{
    machine_request_reset(opaque, "keyboard controller reset");
}

static void machine_poweroff(void *opaque)
{
    machine_guest_shutdown(opaque, true, "guest-shutdown");
}

static void machine_set_sci(void *opaque, bool level)
{
    Machine *m = opaque;
    kvm_irq_line(m->kvm, ACPI_SCI_IRQ, level);
}

static void machine_debug_exit(void *opaque, int status)
{
    machine_request_exit(opaque, status, "isa-debug-exit");
}

static void machine_user_quit(void *opaque)
{
    machine_guest_shutdown(opaque, false, "host-ui");
}

/* The signals that end qlite, as QEMU's: SHUTDOWN {"reason": "host-signal"}, status 0. */
static const int ending_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void ending_signals_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < G_N_ELEMENTS(ending_signals); i++) {
        sigaddset(set, ending_signals[i]);
    }
}

void machine_hold_signals(void)
{
    sigset_t set;
    ending_signals_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void machine_take_signals(GMainContext *ctx, GSourceFunc fn, void *opaque,
                          GSource *sources[MACHINE_ENDING_SIGNALS])
{
    G_STATIC_ASSERT(G_N_ELEMENTS(ending_signals) == MACHINE_ENDING_SIGNALS);
    for (size_t i = 0; i < G_N_ELEMENTS(ending_signals); i++) {
        sources[i] = g_unix_signal_source_new(ending_signals[i]);
        g_source_set_callback(sources[i], fn, opaque, NULL);
        g_source_attach(sources[i], ctx);
    }
    sigset_t held;
    ending_signals_set(&held);
    pthread_sigmask(SIG_UNBLOCK, &held, NULL);
}

static gboolean machine_on_signal(gpointer opaque)
{
    Machine *m = opaque;
    g_printerr("qlite: terminating on signal\n");
    machine_shutdown(m, QLITE_EXIT_OK, false, "host-signal");
    return G_SOURCE_CONTINUE;
}

static void serial_chr_write(void *opaque, const uint8_t *buf, size_t len)
{
    chardev_write(opaque, buf, len);
}

static void serial_chr_accept(void *opaque)
{
    chardev_accept_input(opaque);
}

static void serial_set_irq(void *opaque, bool level)
{
    Machine *m = opaque;
    kvm_irq_line(m->kvm, SERIAL_COM1_IRQ, level);
}

static size_t serial_fe_can_receive(void *opaque)
{
    return serial_can_receive(opaque);
}

static void serial_fe_receive(void *opaque, const uint8_t *buf, size_t len)
{
    serial_receive(opaque, buf, len);
}

static void pci_set_irq(void *opaque, unsigned gsi, bool level)
{
    Machine *m = opaque;
    kvm_irq_line(m->kvm, gsi, level);
}

/* MSI-X vectors are KVM GSIs with an irqfd each. */
static bool msi_add_vector(void *opaque, int fd, unsigned *route, GError **error)
{
    Machine *m = opaque;
    return kvm_msi_gsi_alloc(m->kvm, route, error) && kvm_irqfd(m->kvm, fd, *route, true, error);
}

static bool msi_set_route(void *opaque, unsigned route, uint64_t addr, uint32_t data,
                          GError **error)
{
    Machine *m = opaque;
    return kvm_msi_route_set(m->kvm, route, addr, data, error);
}

static const MsiControllerOps machine_msi_ops = {
    .add_vector = msi_add_vector,
    .set_route = msi_set_route,
};

static bool virtio_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len, bool assign,
                             GError **error)
{
    Machine *m = opaque;
    return kvm_ioeventfd(m->kvm, fd, addr, len, false, assign, error);
}

static const VirtioPciHostOps machine_virtio_host_ops = {.ioeventfd = virtio_ioeventfd};

static void virtio_pci_free_cb(gpointer p)
{
    virtio_pci_free(p);
}

/* Puts a virtio device on the PCI bus behind its own virtio-pci function. */
static bool machine_plug_virtio(Machine *m, VirtioDevice *vdev, unsigned slot, GError **error)
{
    VirtioPci *vp = virtio_pci_new(vdev, &machine_virtio_host_ops, m, &machine_msi_ops, m, error);
    if (!vp) {
        return false;
    }
    g_ptr_array_add(m->virtio, vp);
    return pci_host_plug(m->pci, virtio_pci_device(vp), slot, error);
}

/* The slots given with addr= (the command line checked them): kept from the others. */
static void machine_reserve_slots(Machine *m)
{
    for (guint i = 0; m->cfg.disks && i < m->cfg.disks->len; i++) {
        const DriveConfig *d = g_ptr_array_index(m->cfg.disks, i);
        if (d->pci_slot) {
            pci_host_reserve(m->pci, d->pci_slot);
        }
    }
    for (guint i = 0; m->cfg.nics && i < m->cfg.nics->len; i++) {
        const NicConfig *nic = g_ptr_array_index(m->cfg.nics, i);
        if (nic->pci_slot) {
            pci_host_reserve(m->pci, nic->pci_slot);
        }
    }
    for (guint i = 0; m->cfg.rngs && i < m->cfg.rngs->len; i++) {
        const RngConfig *rng = g_ptr_array_index(m->cfg.rngs, i);
        if (rng->pci_slot) {
            pci_host_reserve(m->pci, rng->pci_slot);
        }
    }
}

static bool machine_add_pci(Machine *m, GError **error)
{
    m->pci = pci_host_new(m->pio, m->mmio, pci_set_irq, m, error);
    if (!m->pci) {
        return false;
    }
    if (m->firmware) {
        pci_host_leave_bars(m->pci);
    }
    m->virtio = g_ptr_array_new_with_free_func(virtio_pci_free_cb);
    machine_reserve_slots(m);
    for (guint i = 0; m->cfg.disks && i < m->cfg.disks->len; i++) {
        DriveConfig d = *(const DriveConfig *)g_ptr_array_index(m->cfg.disks, i);
        /* An incoming VM takes its images over only once the migration is done. */
        d.inactive = m->cfg.incoming != NULL;
        VirtioDevice *vdev = virtio_blk_new(&d, m->mem, error);
        if (!vdev) {
            g_prefix_error(error, "-drive %s: ", d.file);
            return false;
        }
        if (!machine_plug_virtio(m, vdev, d.pci_slot, error)) {
            return false;
        }
    }
    for (guint i = 0; m->cfg.nics && i < m->cfg.nics->len; i++) {
        const NicConfig *nic = g_ptr_array_index(m->cfg.nics, i);
        NetBackend *nb = net_backend_new(nic->netdev, error);
        if (!nb) {
            g_prefix_error(error, "-netdev %s: ", nic->netdev->id);
            return false;
        }
        VirtioNetConfig vc = {.id = nic->netdev->id};
        memcpy(vc.mac, nic->mac, sizeof(vc.mac));
        VirtioDevice *vdev = virtio_net_new(&vc, nb, m->mem, error);
        if (!vdev) {
            net_backend_free(nb);
            return false;
        }
        if (!machine_plug_virtio(m, vdev, nic->pci_slot, error)) {
            return false;
        }
    }
    for (guint i = 0; m->cfg.rngs && i < m->cfg.rngs->len; i++) {
        const RngConfig *rng = g_ptr_array_index(m->cfg.rngs, i);
        VirtioDevice *vdev = virtio_rng_new(rng->id, m->mem, error);
        if (!vdev || !machine_plug_virtio(m, vdev, rng->pci_slot, error)) {
            return false;
        }
    }
    return true;
}

static time_t host_now(void)
{
    return time(NULL);
}

/* ---- QMP: commands arrive on the monitor thread ---- */

const char *machine_runstate_name(Machine *m)
{
    return run_state_names[g_atomic_int_get(&m->runstate)];
}

static const char *qmp_status(void *opaque)
{
    return machine_runstate_name(opaque);
}

static bool qmp_migrate(void *opaque, const char *uri, int fd, GError **error)
{
    return machine_migrate(opaque, uri, fd, error);
}

static bool qmp_migrate_incoming(void *opaque, const char *uri, int fd, GError **error)
{
    return machine_migrate_incoming(opaque, uri, fd, error);
}

static void qmp_migrate_cancel(void *opaque)
{
    machine_migrate_cancel(opaque);
}

static void qmp_query_migrate(void *opaque, QmpMigrateInfo *info)
{
    machine_query_migrate(opaque, info);
}

void machine_vm_stop(Machine *m)
{
    cpus_pause(m->cpus);
    /* Then the devices: nothing writes guest memory while the VM is stopped. */
    for (guint i = 0; i < m->virtio->len; i++) {
        virtio_device_pause(virtio_pci_vdev(g_ptr_array_index(m->virtio, i)));
    }
    /* Guest time stands still until the VM runs again. */
    g_autoptr(GError) err = NULL;
    m->clock_stopped = kvm_clock_get(m->kvm, &m->stopped_clock, &err);
    if (!m->clock_stopped) {
        g_warning("stop: %s; guest time will jump at cont", err->message);
    }
    cpus_note_stopped(m->cpus);
}

void machine_vm_resume(Machine *m)
{
    g_autoptr(GError) err = NULL;
    if (m->clock_stopped && !kvm_clock_set(m->kvm, m->stopped_clock, &err)) {
        g_warning("cont: %s; guest time jumps by the time stopped", err->message);
    }
    m->clock_stopped = false;
    /* Devices first, re-kicking every queue, so no notification made before the stop is lost. */
    for (guint i = 0; i < m->virtio->len; i++) {
        virtio_device_resume(virtio_pci_vdev(g_ptr_array_index(m->virtio, i)));
    }
    cpus_resume(m->cpus);
}

static void qmp_stop(void *opaque)
{
    Machine *m = opaque;
    /* Only a running VM stops (and says so); in prelaunch, stop changes nothing. */
    if (g_atomic_int_compare_and_exchange(&m->runstate, RUN_STATE_RUNNING, RUN_STATE_PAUSED)) {
        machine_vm_stop(m);
        qmp_server_event(m->qmp, "STOP", NULL);
    }
}

static bool qmp_cont(void *opaque, GError **error)
{
    Machine *m = opaque;
    int state = g_atomic_int_get(&m->runstate);
    if (state == RUN_STATE_INTERNAL_ERROR || state == RUN_STATE_SHUTDOWN) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Resetting the Virtual Machine is required");
        return false;
    }
    /* After a migration (either side), the images may belong to this VM again only now. */
    int st = g_atomic_int_get(&m->runstate);
    if ((st == RUN_STATE_PAUSED || st == RUN_STATE_POSTMIGRATE) &&
        !machine_handover(m, true, error)) {
        return false;
    }
    if (g_atomic_int_compare_and_exchange(&m->runstate, RUN_STATE_PAUSED, RUN_STATE_RUNNING) ||
        g_atomic_int_compare_and_exchange(&m->runstate, RUN_STATE_POSTMIGRATE, RUN_STATE_RUNNING) ||
        g_atomic_int_compare_and_exchange(&m->runstate, RUN_STATE_PRELAUNCH, RUN_STATE_RUNNING)) {
        qmp_server_event(m->qmp, "RESUME", NULL);
        machine_vm_resume(m);
    }
    return true;
}

static void qmp_system_reset(void *opaque)
{
    machine_reset(opaque, false, "host-qmp-system-reset");
}

static void qmp_system_powerdown(void *opaque)
{
    Machine *m = opaque;
    qmp_server_event(m->qmp, "POWERDOWN", NULL);
    acpi_pm_power_button(m->pm);
}

static void qmp_quit(void *opaque)
{
    machine_shutdown(opaque, QLITE_EXIT_OK, false, "host-qmp-quit");
}

static const char *qmp_name(void *opaque)
{
    Machine *m = opaque;
    return m->cfg.name;
}

static unsigned qmp_cpus(void *opaque, QmpCpuInfo *out, unsigned max)
{
    Machine *m = opaque;
    for (unsigned i = 0; i < m->cpus->n && i < max; i++) {
        out[i] = (QmpCpuInfo){.index = i, .thread_id = m->cpus->cpus[i]->tid};
    }
    return m->cpus->n;
}

static unsigned qmp_blocks(void *opaque, QmpBlockInfo *out, unsigned max)
{
    Machine *m = opaque;
    unsigned n = m->cfg.disks ? m->cfg.disks->len : 0;
    for (unsigned i = 0; i < n && i < max; i++) {
        const DriveConfig *d = g_ptr_array_index(m->cfg.disks, i);
        /* The disks are the first devices, in order. */
        VirtioDevice *vdev = virtio_pci_vdev(g_ptr_array_index(m->virtio, i));
        BlockBackend *bb = virtio_blk_backend(vdev);
        out[i] = (QmpBlockInfo){
            .device = d->node_name ? "" : d->id,
            .qdev = d->device_id,
            .node_name = d->node_name,
            .file_node_name = d->file_node_name,
            .file_size = block_file_size(bb),
            .file = d->file,
            .readonly = d->readonly,
            .cache = block_cache_flags(d->cache),
            .size = block_length(bb),
            .format = block_format(bb),
            .backing_depth = block_backing_depth(bb),
        };
        virtio_blk_stats(vdev, &out[i].stats);
    }
    return n;
}

static uint64_t *qmp_kvm_stats(void *opaque, int vcpu, const KvmStats **stats, GError **error)
{
    Machine *m = opaque;
    const KvmStats *s = vcpu < 0                      ? m->kvm->stats
                        : (unsigned)vcpu < m->cpus->n ? m->cpus->cpus[vcpu]->stats
                                                      : NULL;
    if (!s) {
        return NULL;
    }
    *stats = s;
    return kvm_stats_read(s, error);
}

unsigned machine_peripherals(const MachineConfig *cfg, QmpPeripheral *out, unsigned max)
{
    unsigned n = cfg->peripherals ? cfg->peripherals->len : 0;
    for (unsigned i = 0; i < n && i < max; i++) {
        const MachinePeripheral *d = g_ptr_array_index(cfg->peripherals, i);
        out[i] = (QmpPeripheral){.id = d->id, .driver = d->driver};
    }
    return n;
}

static unsigned qmp_peripherals(void *opaque, QmpPeripheral *out, unsigned max)
{
    Machine *m = opaque;
    return machine_peripherals(&m->cfg, out, max);
}

static const char *qmp_machine_type(void *opaque)
{
    return PC_MACHINE_NAME "-machine";
}

unsigned machine_monitor_chardevs(const MachineConfig *cfg, QmpChardevInfo *out, unsigned max)
{
    unsigned n = cfg->monitors ? cfg->monitors->len : 0;
    for (unsigned i = 0; i < n && i < max; i++) {
        const char *spec = g_ptr_array_index(cfg->monitors, i);
        out[i].label = g_ptr_array_index(cfg->monitor_labels, i);
        /* QEMU's words for a listening socket, without our wait=off. */
        out[i].filename = g_str_has_suffix(spec, ",wait=off")
                              ? g_strndup(spec, strlen(spec) - strlen(",wait=off"))
                              : g_strdup(spec);
        out[i].frontend_open = true;
    }
    return n;
}

static unsigned qmp_chardevs(void *opaque, QmpChardevInfo *out, unsigned max)
{
    Machine *m = opaque;
    unsigned n = machine_monitor_chardevs(&m->cfg, out, max);
    if (m->serial_chr && n < max) {
        out[n].label = m->cfg.serial_label ? m->cfg.serial_label : "serial0";
        out[n].filename = chardev_filename(m->serial_chr);
        out[n].frontend_open = true;
    }
    return n + (m->serial_chr ? 1 : 0);
}

static const QmpMachineOps machine_qmp_ops = {
    .status = qmp_status,
    .stop = qmp_stop,
    .cont = qmp_cont,
    .system_reset = qmp_system_reset,
    .system_powerdown = qmp_system_powerdown,
    .quit = qmp_quit,
    .name = qmp_name,
    .cpus = qmp_cpus,
    .blocks = qmp_blocks,
    .kvm_stats = qmp_kvm_stats,
    .chardevs = qmp_chardevs,
    .peripherals = qmp_peripherals,
    .machine_type = qmp_machine_type,
    .migrate = qmp_migrate,
    .migrate_incoming = qmp_migrate_incoming,
    .migrate_cancel = qmp_migrate_cancel,
    .query_migrate = qmp_query_migrate,
};

bool machine_listen_monitors(QmpServer *qmp, GPtrArray *monitors, GError **error)
{
    for (guint i = 0; i < monitors->len; i++) {
        const char *spec = g_ptr_array_index(monitors, i);
        bool ok = g_str_has_prefix(spec, "fd:") ? qmp_server_listen_fd(qmp, atoi(spec + 3), error)
                                                : qmp_server_listen(qmp, spec, error);
        if (!ok) {
            g_prefix_error(error, "monitor %s: ", spec);
            return false;
        }
    }
    return true;
}

static bool machine_add_monitors(Machine *m, GError **error)
{
    if (!m->cfg.monitors || m->cfg.monitors->len == 0) {
        return true;
    }
    m->qmp = qmp_server_new(&machine_qmp_ops, m, error);
    return m->qmp && machine_listen_monitors(m->qmp, m->cfg.monitors, error);
}

/* ---- assembly ---- */

static bool machine_load_files(Machine *m, GError **error)
{
    if (!m->cfg.kernel) {
        m->firmware = firmware_new(m->cfg.bios ? m->cfg.bios : FIRMWARE_DEFAULT, error);
        return m->firmware != NULL;
    }
    g_autoptr(GError) err = NULL;
    m->kernel_file = g_mapped_file_new(m->cfg.kernel, FALSE, &err);
    if (!m->kernel_file) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "cannot read kernel: %s",
                    err->message);
        return false;
    }
    const uint8_t *data = (const uint8_t *)g_mapped_file_get_contents(m->kernel_file);
    if (!boot_parse_kernel(data, g_mapped_file_get_length(m->kernel_file), &m->kernel, error)) {
        g_prefix_error(error, "%s: ", m->cfg.kernel);
        return false;
    }
    if (m->cfg.initrd) {
        m->initrd_file = g_mapped_file_new(m->cfg.initrd, FALSE, &err);
        if (!m->initrd_file) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "cannot read initrd: %s",
                        err->message);
            return false;
        }
    }
    return true;
}

static bool machine_add_devices(Machine *m, GError **error)
{
    if (m->cfg.serial) {
        m->serial_chr = chardev_new(m->cfg.serial, m->cfg.serial_append, "serial0", m->ctx, error);
        if (!m->serial_chr) {
            g_prefix_error(error, "-serial %s: ", m->cfg.serial);
            return false;
        }
        chardev_set_quit_handler(m->serial_chr, machine_user_quit, m);
        SerialBackend be = {.write = serial_chr_write,
                            .accept_input = serial_chr_accept,
                            .opaque = m->serial_chr,
                            .set_irq = serial_set_irq,
                            .irq_opaque = m};
        m->serial = serial_new(&be);
        if (!bus_register(m->pio, SERIAL_COM1_BASE, SERIAL_NR_REGS, &serial_bus_ops, m->serial,
                          "serial", error)) {
            return false;
        }
    }
    m->rtc = rtc_new(host_now);
    m->kbd = i8042_new(machine_kbd_reset, m);
    static const AcpiPmOps pm_ops = {.poweroff = machine_poweroff, .set_sci = machine_set_sci};
    m->pm = acpi_pm_new(&pm_ops, m);
    if (!bus_register(m->pio, RTC_BASE, 2, &rtc_bus_ops, m->rtc, "rtc", error) ||
        !bus_register(m->pio, I8042_DATA_PORT, I8042_CMD_PORT - I8042_DATA_PORT + 1, &i8042_bus_ops,
                      m->kbd, "i8042", error) ||
        !bus_register(m->pio, ACPI_PM_BASE, ACPI_PM_LEN, &acpi_pm_bus_ops, m->pm, "acpi-pm",
                      error)) {
        return false;
    }
    if (m->cfg.debug_exit) {
        m->debug_exit = (DebugExit){.exit = machine_debug_exit, .opaque = m};
        if (!bus_register(m->pio, m->cfg.debug_exit_base, m->cfg.debug_exit_size,
                          &debug_exit_bus_ops, &m->debug_exit, "isa-debug-exit", error)) {
            return false;
        }
    }
    return true;
}

static int boot_index_cmp(const void *a, const void *b)
{
    const MachineBootIndex *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

/*
 * ACPI tables (and, for a direct boot, the MP table), which qlite places
 * itself for a direct boot, or hands to the firmware through fw_cfg.
 */
static bool machine_build_tables(Machine *m, GError **error)
{
    AcpiConfig acfg = {.ncpus = m->cfg.ncpus,
                       .pm1a_evt_blk = ACPI_PM1_EVT_BLK,
                       .pm1a_cnt_blk = ACPI_PM1_CNT_BLK,
                       .sci_irq = ACPI_SCI_IRQ,
                       .pci_slots = 1 + m->virtio->len};
    AcpiLinks links;
    uint64_t base = m->firmware ? 0 : ACPI_TABLES_BASE;
    m->acpi_size = acpi_build(m->acpi, sizeof(m->acpi), base, &acfg, &m->rsdp, &links);
    if (!m->acpi_size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "ACPI tables do not fit");
        return false;
    }
    if (m->firmware) {
        /* The disks with a bootindex, by it: their slots. */
        guint n = m->cfg.bootindex ? m->cfg.bootindex->len : 0;
        g_autofree MachineBootIndex *order = g_new0(MachineBootIndex, n + 1);
        g_autofree unsigned *slots = g_new0(unsigned, n + 1);
        for (guint i = 0; i < n; i++) {
            order[i] = g_array_index(m->cfg.bootindex, MachineBootIndex, i);
        }
        qsort(order, n, sizeof(*order), boot_index_cmp);
        for (guint i = 0; i < n; i++) {
            VirtioPci *vp = g_ptr_array_index(m->virtio, order[i].disk);
            slots[i] = virtio_pci_device(vp)->devfn >> 3;
        }
        FirmwareConfig fc = {.ncpus = m->cfg.ncpus,
                             .ram_size = m->cfg.ram_size,
                             .acpi = m->acpi,
                             .acpi_size = m->acpi_size,
                             .acpi_links = &links,
                             .boot_slots = slots,
                             .nboot_slots = n,
                             .boot_strict = m->cfg.boot_strict,
                             .boot_menu = m->cfg.boot_menu,
                             .boot_retry_ms = m->cfg.boot_retry_ms};
        return firmware_setup(m->firmware, m->kvm, m->mem, m->pio, &fc, error);
    }
    size_t mp_off = (m->acpi_size + 15) & ~(size_t)15;
    size_t mp_size = mptable_build(m->acpi + mp_off, sizeof(m->acpi) - mp_off,
                                   ACPI_TABLES_BASE + mp_off, m->cfg.ncpus, ACPI_SCI_IRQ, m->mpf);
    if (!mp_size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "MP tables do not fit");
        return false;
    }
    m->acpi_size = mp_off + mp_size;
    return true;
}

Machine *machine_new(const MachineConfig *cfg, GError **error)
{
    g_autoptr(Machine) m = g_new0(Machine, 1);
    m->cfg = *cfg;
    m->cfg.kernel = g_strdup(cfg->kernel);
    m->cfg.bios = g_strdup(cfg->bios);
    m->cfg.initrd = g_strdup(cfg->initrd);
    m->cfg.append = g_strdup(cfg->append);
    m->cfg.serial = g_strdup(cfg->serial);
    m->cfg.name = g_strdup(cfg->name);
    m->cfg.disks = cfg->disks ? g_ptr_array_ref(cfg->disks) : NULL;
    m->cfg.nics = cfg->nics ? g_ptr_array_ref(cfg->nics) : NULL;
    m->cfg.rngs = cfg->rngs ? g_ptr_array_ref(cfg->rngs) : NULL;
    m->cfg.boot_order = g_strdup(cfg->boot_order);
    m->cfg.boot_once = g_strdup(cfg->boot_once);
    m->cfg.bootindex = cfg->bootindex ? g_array_ref(cfg->bootindex) : NULL;
    m->cfg.monitors = cfg->monitors ? g_ptr_array_ref(cfg->monitors) : NULL;
    m->cfg.monitor_labels = cfg->monitor_labels ? g_ptr_array_ref(cfg->monitor_labels) : NULL;
    m->cfg.peripherals = cfg->peripherals ? g_ptr_array_ref(cfg->peripherals) : NULL;
    m->cfg.serial_label = g_strdup(cfg->serial_label);
    m->cfg.incoming = g_strdup(cfg->incoming);
    m->cfg.pidfile = NULL; /* main.c's: it outlives the machine */
    g_mutex_init(&m->mig_lock);
    m->mig_fd = m->mig_out_fd = -1;
    /*
     * A context of our own, not the global default: g_main_context_invoke() from
     * a vCPU thread must queue to the control loop, never run in the caller.
     */
    m->ctx = g_main_context_new();
    g_main_context_push_thread_default(m->ctx);
    m->loop = g_main_loop_new(m->ctx, FALSE);

    /* Files first: a wrong path is reported before any KVM work. */
    if (!machine_load_files(m, error)) {
        return NULL;
    }
    m->kvm = kvm_new(error);
    if (!m->kvm) {
        return NULL;
    }
    m->mem = guest_mem_new(cfg->ram_size, PC_LOWMEM_LIMIT, error);
    if (!m->mem || !kvm_map_ram(m->kvm, m->mem, error)) {
        return NULL;
    }
    m->pio = bus_new("pio");
    m->mmio = bus_new("mmio");
    if (!machine_add_devices(m, error) || !machine_add_pci(m, error)) {
        return NULL;
    }
    VcpuEvents ev = {.reset = machine_cpu_reset, .failure = machine_cpu_failure, .opaque = m};
    m->cpus = cpus_new(m->kvm, cfg->ncpus, m->pio, m->mmio, &ev, error);
    if (!m->cpus) {
        return NULL;
    }

    if (!machine_build_tables(m, error)) {
        return NULL;
    }
    if (!machine_load_boot_images(m, error)) {
        return NULL;
    }
    /* Last: a client may connect and send commands at once. */
    g_atomic_int_set(&m->runstate, cfg->incoming       ? RUN_STATE_INMIGRATE
                                   : cfg->start_paused ? RUN_STATE_PRELAUNCH
                                                       : RUN_STATE_RUNNING);
    if (!machine_add_monitors(m, error)) {
        return NULL;
    }
    return g_steal_pointer(&m);
}

static bool machine_sandbox_threads(Machine *m, GError **error)
{
    for (guint i = 0; i < m->virtio->len; i++) {
        VirtioDevice *vdev = virtio_pci_vdev(g_ptr_array_index(m->virtio, i));
        if (!iothread_sandbox(vdev->iothread, SANDBOX_IOTHREAD, error)) {
            return false;
        }
    }
    return !m->qmp || qmp_server_sandbox(m->qmp, error);
}

int machine_run(Machine *m)
{
    if (m->serial_chr) {
        ChardevFrontend fe = {.can_receive = serial_fe_can_receive,
                              .receive = serial_fe_receive,
                              .opaque = m->serial};
        chardev_set_frontend(m->serial_chr, &fe);
    }
    g_autoptr(GError) err = NULL;
    int st = g_atomic_int_get(&m->runstate);
    if (st == RUN_STATE_PRELAUNCH || st == RUN_STATE_INMIGRATE) {
        cpus_request_pause(m->cpus); /* -S: the vCPUs wait for cont; -incoming: for the state */
    }
    /*
     * Set-up is done: each thread takes its filter (the vCPU threads as they
     * start, the main thread last, once the incoming migration listens).
     */
    if (!machine_sandbox_threads(m, &err) || !cpus_start(m->cpus, &err) ||
        !machine_start_incoming(m, &err) || !sandbox_apply(SANDBOX_MAIN, &err)) {
        g_printerr("qlite: %s\n", err->message);
        return QLITE_EXIT_ERROR;
    }
    if (m->qmp) {
        qmp_server_start(m->qmp);
    }
    /*
     * After the main filter: glib's signal thread starts here and inherits it.
     * A signal held since start-up is taken now.
     */
    machine_take_signals(m->ctx, machine_on_signal, m, m->signal_sources);
    g_main_loop_run(m->loop);
    cpus_pause(m->cpus);
    return m->exit_status;
}

void machine_free(Machine *m)
{
    if (!m) {
        return;
    }
    if (m->mig_thread) {
        machine_migrate_cancel(m);
        g_thread_join(m->mig_thread);
    }
    qmp_server_free(m->qmp); /* no command may reach a machine being torn down */
    cpus_free(m->cpus);      /* joins the vCPU threads before their devices go */
    if (m->virtio) {
        g_ptr_array_unref(m->virtio); /* stops the device threads */
    }
    pci_host_free(m->pci);
    for (size_t i = 0; i < G_N_ELEMENTS(m->signal_sources); i++) {
        if (m->signal_sources[i]) {
            g_source_destroy(m->signal_sources[i]);
            g_source_unref(m->signal_sources[i]);
        }
    }
    g_free(m->mig_uri);
    g_free(m->mig_error);
    serial_free(m->serial);
    chardev_free(m->serial_chr);
    rtc_free(m->rtc);
    i8042_free(m->kbd);
    acpi_pm_free(m->pm);
    bus_free(m->pio);
    bus_free(m->mmio);
    guest_mem_free(m->mem);
    kvm_free(m->kvm);
    firmware_free(m->firmware); /* after the VM: its ROM slot maps the image */
    if (m->kernel_file) {
        g_mapped_file_unref(m->kernel_file);
    }
    if (m->initrd_file) {
        g_mapped_file_unref(m->initrd_file);
    }
    if (m->loop) {
        g_main_loop_unref(m->loop);
    }
    if (m->ctx) {
        g_main_context_pop_thread_default(m->ctx);
        g_main_context_unref(m->ctx);
    }
    machine_config_clear(&m->cfg);
    g_free(m);
}
