/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The whole VM as a migration stream (docs/migration.md): its configuration,
 * guest RAM page by page (migration.c sends the pages, as often as they
 * change), then one state section per component, and the end marker. The
 * state sections need a stopped VM (vCPUs parked, devices quiesced);
 * loading happens in a machine built from the same command line whose vCPUs
 * have not run, and changes nothing that runs the guest until the whole
 * stream, end marker included, has been read and checked.
 */
#include "machine/snapshot.h"
#include "cpu/cpu-state.h"
#include "machine/pc-priv.h"
#include "migration/stream.h"
#include "util/error.h"
#include "util/state.h"
#include "virtio/virtio-pci.h"

#include <inttypes.h>
#include <string.h>

/* The machine's own devices, each one state section. */
typedef struct {
    const char *id;
    void *dev;
    void (*save)(void *dev, GByteArray *out);
    void (*load)(void *dev, StateIn *in);
} MachineDevice;

#define MACHINE_DEVICES_MAX 6
#define DEVICE_STATE_FNS(name)                                                                     \
    static void save_##name(void *dev, GByteArray *out)                                            \
    {                                                                                              \
        name##_save(dev, out);                                                                     \
    }                                                                                              \
    static void load_##name(void *dev, StateIn *in)                                                \
    {                                                                                              \
        name##_load(dev, in);                                                                      \
    }
DEVICE_STATE_FNS(serial)
DEVICE_STATE_FNS(rtc)
DEVICE_STATE_FNS(i8042)
DEVICE_STATE_FNS(acpi_pm)
DEVICE_STATE_FNS(pci_host)
DEVICE_STATE_FNS(fw_cfg)

static unsigned machine_devices(Machine *m, MachineDevice *out)
{
    unsigned n = 0;
    if (m->serial) {
        out[n++] = (MachineDevice){"serial", m->serial, save_serial, load_serial};
    }
    out[n++] = (MachineDevice){"rtc", m->rtc, save_rtc, load_rtc};
    out[n++] = (MachineDevice){"i8042", m->kbd, save_i8042, load_i8042};
    out[n++] = (MachineDevice){"acpi-pm", m->pm, save_acpi_pm, load_acpi_pm};
    out[n++] = (MachineDevice){"pci-host", m->pci, save_pci_host, load_pci_host};
    if (m->firmware) {
        out[n++] = (MachineDevice){"fw-cfg", firmware_fw_cfg(m->firmware), save_fw_cfg,
                                   load_fw_cfg};
    }
    return n;
}

/*
 * What the receiving VM must have alike: one "key=value" line per item, so
 * that a mismatch can be named. Devices by slot, with what the guest sees of
 * them (their feature bits and configuration size).
 */
static char *machine_describe(Machine *m)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "ram=%" PRIu64 "\ncpus=%u\n", m->cfg.ram_size, m->cfg.ncpus);
    g_string_append_printf(s, "serial=%s\n", m->serial ? "on" : "off");
    if (m->firmware) {
        /* The guest runs the firmware's code from the ROM: the same image on both sides. */
        g_autofree char *id = firmware_describe(m->firmware);
        g_string_append_printf(s, "firmware=%s\n", id);
    } else {
        g_string_append(s, "firmware=none\n");
    }
    for (guint i = 0; i < m->virtio->len; i++) {
        VirtioPci *vp = g_ptr_array_index(m->virtio, i);
        VirtioDevice *vdev = virtio_pci_vdev(vp);
        g_string_append_printf(s, "device%u=%s slot=%u features=%#" PRIx64 " config=%u\n", i,
                               vdev->name, virtio_pci_device(vp)->devfn >> 3, vdev->host_features,
                               vdev->config_size);
    }
    return g_string_free(s, FALSE);
}

static bool machine_compare(void *opaque, const void *cfg, size_t len, GError **error)
{
    g_autofree char *ours = machine_describe(opaque);
    g_autofree char *theirs = g_strndup(cfg, len);
    g_auto(GStrv) a = g_strsplit(theirs, "\n", -1);
    g_auto(GStrv) b = g_strsplit(ours, "\n", -1);
    for (guint i = 0; a[i] || b[i]; i++) {
        if (!a[i] || !b[i] || strcmp(a[i], b[i]) != 0) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "the saved VM does not match this one: it has '%s', this one '%s'",
                        a[i] && *a[i] ? a[i] : "(nothing)", b[i] && *b[i] ? b[i] : "(nothing)");
            return false;
        }
    }
    return true;
}

/* Bytes a state section of this machine can need, with room to spare. */
#define MACHINE_SECTION_MAX (1 << 20)

/* Whether this VM saves a section called id (machine_save_finish's names). */
static bool machine_has_section(Machine *m, const char *id)
{
    if (strcmp(id, "runstate") == 0 || strcmp(id, "vm") == 0 || strcmp(id, "answer") == 0) {
        return true;
    }
    MachineDevice devs[MACHINE_DEVICES_MAX];
    for (unsigned i = 0, n = machine_devices(m, devs); i < n; i++) {
        if (strcmp(id, devs[i].id) == 0) {
            return true;
        }
    }
    for (unsigned i = 0; i < MAX(m->cpus->n, m->virtio->len); i++) {
        g_autofree char *cpu = g_strdup_printf("cpu%u", i);
        g_autofree char *virtio = g_strdup_printf("virtio%u", i);
        if ((i < m->cpus->n && strcmp(id, cpu) == 0) ||
            (i < m->virtio->len && strcmp(id, virtio) == 0)) {
            return true;
        }
    }
    return false;
}

/* The stream's sections: only this VM's, each of a size it can need. */
static bool machine_check_section(void *opaque, const char *id, size_t len, GError **error)
{
    Machine *m = opaque;
    if (!machine_has_section(m, id)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "migration stream: section '%s' is not one of this VM's", id);
        return false;
    }
    if (len > MACHINE_SECTION_MAX) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "migration stream: section '%s' of %zu bytes is larger than this VM's "
                    "state can be (%d bytes)",
                    id, len, MACHINE_SECTION_MAX);
        return false;
    }
    return true;
}

/* RAM pages from the stream, checked against this VM's RAM. */
static bool machine_store_page(void *opaque, uint64_t gpa, const void *data, GError **error)
{
    Machine *m = opaque;
    uint8_t *dst = guest_mem_ptr(m->mem, gpa, MIG_PAGE_SIZE);
    if (!dst) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "migration stream: RAM page at %#" PRIx64 " is outside this VM's RAM", gpa);
        return false;
    }
    if (data) {
        memcpy(dst, data, MIG_PAGE_SIZE);
    } else {
        memset(dst, 0, MIG_PAGE_SIZE);
    }
    return true;
}

static bool write_section(MigWriter *w, const char *id, GByteArray *b, GError **error)
{
    bool ok = mig_write_state(w, id, b->data, b->len, error);
    g_byte_array_set_size(b, 0);
    return ok;
}

bool machine_save_begin(Machine *m, MigWriter *w, GError **error)
{
    g_autofree char *desc = machine_describe(m);
    return mig_write_header(w, error) && mig_write_machine(w, desc, strlen(desc), error);
}

bool machine_save_finish(Machine *m, MigWriter *w, bool running, bool answer, GError **error)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    state_put_bool(b, running);
    if (!write_section(w, "runstate", b, error) ||
        (answer && !write_section(w, "answer", b, error))) {
        return false;
    }
    if (!vm_state_save(m->kvm, b, error) || !write_section(w, "vm", b, error)) {
        return false;
    }
    for (unsigned i = 0; i < m->cpus->n; i++) {
        g_autofree char *id = g_strdup_printf("cpu%u", i);
        if (!vcpu_state_save(m->cpus->cpus[i], b, error) || !write_section(w, id, b, error)) {
            return false;
        }
    }
    MachineDevice devs[MACHINE_DEVICES_MAX];
    for (unsigned i = 0, n = machine_devices(m, devs); i < n; i++) {
        devs[i].save(devs[i].dev, b);
        if (!write_section(w, devs[i].id, b, error)) {
            return false;
        }
    }
    for (guint i = 0; i < m->virtio->len; i++) {
        g_autofree char *id = g_strdup_printf("virtio%u", i);
        virtio_pci_save(g_ptr_array_index(m->virtio, i), b);
        if (!write_section(w, id, b, error)) {
            return false;
        }
    }
    return mig_write_end(w, error);
}

/* The section called id, which a VM like this one always has. */
static bool section(GHashTable *states, const char *id, const uint8_t **data, size_t *len,
                    GError **error)
{
    GBytes *b = g_hash_table_lookup(states, id);
    if (!b) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "migration stream: section '%s' is missing", id);
        return false;
    }
    gsize n;
    *data = g_bytes_get_data(b, &n);
    *len = n;
    return true;
}

/* A section read through a StateIn cursor that must end exactly at its end. */
static bool load_cursor(GHashTable *states, const char *id, StateIn *in, GError **error)
{
    const uint8_t *data;
    size_t len;
    if (!section(states, id, &data, &len, error)) {
        return false;
    }
    state_in_init(in, data, len);
    return true;
}

bool machine_snapshot_load(Machine *m, int fd, MigStats *stats, bool *running, bool *answer,
                           GError **error)
{
    g_autoptr(MigReader) r = mig_reader_new(fd, machine_store_page, m);
    g_autoptr(GHashTable) states =
        mig_read_all(r, machine_compare, machine_check_section, m, error);
    if (!states) {
        return false;
    }
    if (stats) {
        *stats = mig_reader_get_stats(r);
    }
    StateIn in;
    if (!load_cursor(states, "runstate", &in, error)) {
        return false;
    }
    *running = state_get_bool(&in);
    if (!state_in_finish(&in, "runstate", error)) {
        return false;
    }
    GBytes *ask = g_hash_table_lookup(states, "answer");
    if (ask && g_bytes_get_size(ask) != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "migration stream: section 'answer' is not empty");
        return false;
    }
    *answer = ask != NULL;
    /* Devices first, then the irqchip, then the vCPUs (their LAPICs). */
    MachineDevice devs[MACHINE_DEVICES_MAX];
    for (unsigned i = 0, n = machine_devices(m, devs); i < n; i++) {
        if (!load_cursor(states, devs[i].id, &in, error)) {
            return false;
        }
        devs[i].load(devs[i].dev, &in);
        if (!state_in_finish(&in, devs[i].id, error)) {
            return false;
        }
    }
    /* Every function off the buses first: BARs may have traded places between them. */
    for (guint i = 0; i < m->virtio->len; i++) {
        pci_device_unmap(virtio_pci_device(g_ptr_array_index(m->virtio, i)));
    }
    for (guint i = 0; i < m->virtio->len; i++) {
        g_autofree char *id = g_strdup_printf("virtio%u", i);
        if (!load_cursor(states, id, &in, error) ||
            !virtio_pci_load(g_ptr_array_index(m->virtio, i), &in, error) ||
            !state_in_finish(&in, id, error)) {
            return false;
        }
    }
    const uint8_t *data;
    size_t len;
    if (!section(states, "vm", &data, &len, error) || !vm_state_load(m->kvm, data, len, error)) {
        return false;
    }
    for (unsigned i = 0; i < m->cpus->n; i++) {
        g_autofree char *id = g_strdup_printf("cpu%u", i);
        if (!section(states, id, &data, &len, error) ||
            !vcpu_state_load(m->cpus->cpus[i], data, len, error)) {
            return false;
        }
    }
    return true;
}
