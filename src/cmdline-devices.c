/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The command line's devices and their backends: -device (isa-debug-exit,
 * virtio-blk-pci, virtio-net-pci, virtio-rng-pci, isa-serial; PCI addr=,
 * id= in the QOM tree), -drive, -netdev, -nic, -object (rng, secret).
 */
#include "cmdline-int.h"
#include "machine/debug-exit.h"
#include "util/error.h"
#include "util/opts.h"
#include "virtio/net.h"

#include <errno.h>
#include <string.h>

void drive_free(gpointer p)
{
    drive_config_clear(p);
    g_free(p);
}

static void machine_add_disk(MachineConfig *cfg, DriveConfig *d)
{
    if (!cfg->disks) {
        cfg->disks = g_ptr_array_new_with_free_func(drive_free);
    }
    g_ptr_array_add(cfg->disks, d);
}

static void nic_free(gpointer p)
{
    nic_config_free(p);
}

static void rng_free(gpointer p)
{
    rng_config_free(p);
}

void netdev_free(gpointer p)
{
    netdev_config_free(p);
}

/* A NIC without mac= gets QEMU's 52:54:00:12:34:56, counting up per such NIC. */
static void machine_add_nic(MachineConfig *cfg, NetdevConfig *nd, const char *mac,
                            unsigned *ndefault_macs, unsigned slot, GError **error)
{
    NicConfig *nic = g_new0(NicConfig, 1);
    nic->netdev = nd;
    nic->pci_slot = slot;
    if (mac) {
        if (!virtio_net_parse_mac(mac, nic->mac, error)) {
            nic_config_free(nic);
            return;
        }
    } else {
        virtio_net_default_mac((*ndefault_macs)++, nic->mac);
    }
    if (!cfg->nics) {
        cfg->nics = g_ptr_array_new_with_free_func(nic_free);
    }
    g_ptr_array_add(cfg->nics, nic);
}

static void peripheral_free(gpointer p)
{
    MachinePeripheral *d = p;
    g_free(d->id);
    g_free(d->driver);
    g_free(d);
}

/* A device's id= names it in the QOM tree (/machine/peripheral/ID), once. */
static bool add_peripheral(MachineConfig *cfg, const char *id, const char *driver, GError **error)
{
    if (!cfg->peripherals) {
        cfg->peripherals = g_ptr_array_new_with_free_func(peripheral_free);
    }
    for (guint i = 0; i < cfg->peripherals->len; i++) {
        if (strcmp(((MachinePeripheral *)g_ptr_array_index(cfg->peripherals, i))->id, id) == 0) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Duplicate ID '%s' for device",
                        id);
            return false;
        }
    }
    MachinePeripheral *d = g_new0(MachinePeripheral, 1);
    d->id = g_strdup(id);
    d->driver = g_strdup(driver);
    g_ptr_array_add(cfg->peripherals, d);
    return true;
}

/*
 * bus=pci.0 (the one bus) and addr=SLOT[.0] (hex, as QEMU: "0x3", "03.0",
 * "1f"): the slot the device's PCI function sits in, 0 when addr= is absent
 * (the first free one). Functions other than 0 and slots given twice are
 * refused, the latter with QEMU's message.
 */
static bool parse_pci_addr(Opts *o, const char *driver, CmdlineState *st, unsigned *slot,
                           GError **error)
{
    const char *bus = opts_get(o, "bus");
    const char *addr = opts_get(o, "addr");
    *slot = 0;
    if (bus && strcmp(bus, "pci.0") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Bus '%s' not found", bus);
        return false;
    }
    if (!addr) {
        return true;
    }
    g_auto(GStrv) parts = g_strsplit(addr, ".", 2);
    guint64 s, f = 0;
    if (!g_ascii_string_to_unsigned(g_str_has_prefix(parts[0], "0x") ? parts[0] + 2 : parts[0], 16,
                                    0, 31, &s, NULL) ||
        (parts[1] &&
         !g_ascii_string_to_unsigned(g_str_has_prefix(parts[1], "0x") ? parts[1] + 2 : parts[1], 16,
                                     0, 7, &f, NULL))) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Property '%s.addr' doesn't take value '%s'", driver, addr);
        return false;
    }
    if (s == 0 || f != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s: addr=%s: qlite places single-function devices in slots 1 to 31", driver,
                    addr);
        return false;
    }
    if (st->pci_slots[s]) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "PCI: slot %u function 0 not available for %s, in use by %s", (unsigned)s,
                    driver, st->pci_slots[s]);
        return false;
    }
    st->pci_slots[s] = driver;
    *slot = (unsigned)s;
    return true;
}

static bool parse_debug_exit(Opts *o, MachineConfig *cfg, GError **error)
{
    uint64_t base, size;
    if (!opts_get_u64(o, "iobase", DEBUG_EXIT_DEFAULT_BASE, &base, error) ||
        !opts_get_u64(o, "iosize", DEBUG_EXIT_DEFAULT_SIZE, &size, error) ||
        !opts_check_unused(o, error)) {
        return false;
    }
    if (size == 0 || size > 8 || base > 0xffff || base + size > 0x10000) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "isa-debug-exit: iobase=0x%" G_GINT64_MODIFIER "x iosize=%" G_GUINT64_FORMAT
                    " is not a valid port range",
                    base, size);
        return false;
    }
    if (cfg->debug_exit) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "only one isa-debug-exit device is supported");
        return false;
    }
    cfg->debug_exit = true;
    cfg->debug_exit_base = (uint16_t)base;
    cfg->debug_exit_size = (uint16_t)size;
    return true;
}

/* -device virtio-blk-pci,drive=ID: takes the if=none drive out of the pending table. */
static bool parse_virtio_blk(Opts *o, MachineConfig *cfg, CmdlineState *st, GError **error)
{
    GHashTable *pending = st->pending_drives;
    const char *drive = opts_get(o, "drive");
    const char *serial = opts_get(o, "serial");
    const char *bootindex = opts_get(o, "bootindex");
    const char *id = opts_get(o, "id"); /* query-block's qdev */
    unsigned slot;
    if (!parse_pci_addr(o, "virtio-blk-pci", st, &slot, error) || !opts_check_unused(o, error)) {
        return false;
    }
    MachineBootIndex bi = {.disk = cfg->disks ? cfg->disks->len : 0};
    if (bootindex) {
        char *end;
        errno = 0;
        long v = strtol(bootindex, &end, 10);
        if (errno || *end || v < -1 || v > INT32_MAX) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "virtio-blk-pci: bootindex=%s is not a number from -1 (none)", bootindex);
            return false;
        }
        if (v == -1) {
            bootindex = NULL; /* as QEMU: no boot index */
        }
        bi.index = (int32_t)v;
        for (guint i = 0; bootindex && cfg->bootindex && i < cfg->bootindex->len; i++) {
            if (g_array_index(cfg->bootindex, MachineBootIndex, i).index == bi.index) {
                g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                            "virtio-blk-pci: bootindex %ld used by another device", v);
                return false;
            }
        }
    }
    if (!drive) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "virtio-blk-pci: drive= is required");
        return false;
    }
    gpointer key, value;
    DriveConfig *d;
    if (g_hash_table_lookup_extended(pending, drive, &key, &value)) {
        g_hash_table_steal(pending, drive);
        g_free(key);
        d = value;
    } else if (blockdev_has(st->blockdevs, drive)) {
        d = blockdev_take_drive(st->blockdevs, drive, error);
        if (!d) {
            return false;
        }
    } else {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "virtio-blk-pci: no if=none drive or -blockdev node '%s' (or it is already "
                    "in use)",
                    drive);
        return false;
    }
    d->pci_slot = slot;
    g_free(d->device_id);
    d->device_id = g_strdup(id);
    if (serial) {
        g_free(d->serial);
        d->serial = g_strdup(serial);
    }
    machine_add_disk(cfg, d);
    if (bootindex) {
        if (!cfg->bootindex) {
            cfg->bootindex = g_array_new(FALSE, FALSE, sizeof(MachineBootIndex));
        }
        g_array_append_val(cfg->bootindex, bi);
    }
    return true;
}

/* -device virtio-net-pci,netdev=ID: takes the -netdev out of the pending table. */
static bool parse_virtio_net(Opts *o, MachineConfig *cfg, CmdlineState *st, GError **error)
{
    const char *netdev = opts_get(o, "netdev");
    const char *mac = opts_get(o, "mac");
    unsigned slot;
    opts_get(o, "id");
    if (!parse_pci_addr(o, "virtio-net-pci", st, &slot, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (!netdev) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "virtio-net-pci: netdev= is required");
        return false;
    }
    gpointer key, value;
    if (!g_hash_table_lookup_extended(st->pending_netdevs, netdev, &key, &value)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    g_hash_table_contains(st->netdev_ids, netdev)
                        ? "virtio-net-pci: netdev '%s' is already in use by another NIC"
                        : "virtio-net-pci: no -netdev with id '%s'",
                    netdev);
        return false;
    }
    g_hash_table_steal(st->pending_netdevs, netdev);
    g_free(key);
    GError *err = NULL;
    machine_add_nic(cfg, value, mac, &st->ndefault_macs, slot, &err);
    if (err) {
        g_propagate_error(error, err);
        return false;
    }
    return true;
}

/* virtio-rng-pci[,rng=ID][,id=ID]: rng= names an -object rng-random or rng-builtin. */
static bool parse_virtio_rng(Opts *o, MachineConfig *cfg, CmdlineState *st, GError **error)
{
    const char *rng = opts_get(o, "rng");
    const char *id = opts_get(o, "id");
    unsigned slot;
    if (!parse_pci_addr(o, "virtio-rng-pci", st, &slot, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (rng && !g_hash_table_contains(st->rng_objects, rng)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "virtio-rng-pci: no -object rng-random or rng-builtin with id '%s'", rng);
        return false;
    }
    if (!cfg->rngs) {
        cfg->rngs = g_ptr_array_new_with_free_func(rng_free);
    }
    RngConfig *r = g_new0(RngConfig, 1);
    r->id = g_strdup(id ? id : "virtio-rng");
    r->pci_slot = slot;
    g_ptr_array_add(cfg->rngs, r);
    return true;
}

/* -device isa-serial,chardev=ID[,index=0]: COM1 on a -chardev (qlite has COM1 only). */
static bool parse_isa_serial(Opts *o, MachineConfig *cfg, CmdlineState *st, GError **error)
{
    const char *chardev = opts_get(o, "chardev");
    uint64_t index;
    opts_get(o, "id");
    if (!opts_get_u64(o, "index", 0, &index, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (index != 0 || st->serial_set) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "only one serial port (COM1) is supported");
        return false;
    }
    gpointer key, spec;
    if (!chardev || !g_hash_table_lookup_extended(st->chardevs, chardev, &key, &spec)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "isa-serial: Property 'isa-serial.chardev' can't find value '%s'",
                    chardev ? chardev : "");
        return false;
    }
    st->serial_set = true;
    g_free(cfg->serial);
    cfg->serial = g_strdup(spec);
    g_free(cfg->serial_label);
    cfg->serial_label = g_strdup(chardev);
    cfg->serial_append = g_hash_table_contains(st->chardev_append, chardev);
    g_hash_table_remove(st->chardevs, chardev);
    return true;
}

static bool parse_device_driver(Opts *o, const char *driver, MachineConfig *cfg, CmdlineState *st,
                                GError **error)
{
    if (driver && strcmp(driver, "isa-debug-exit") == 0) {
        return parse_debug_exit(o, cfg, error);
    }
    if (driver && strcmp(driver, "virtio-blk-pci") == 0) {
        return parse_virtio_blk(o, cfg, st, error);
    }
    if (driver && strcmp(driver, "virtio-net-pci") == 0) {
        return parse_virtio_net(o, cfg, st, error);
    }
    if (driver && strcmp(driver, "virtio-rng-pci") == 0) {
        return parse_virtio_rng(o, cfg, st, error);
    }
    if (driver && strcmp(driver, "isa-serial") == 0) {
        return parse_isa_serial(o, cfg, st, error);
    }
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "'%s' is not a valid device model name",
                driver ? driver : "");
    return false;
}

bool parse_device(const char *arg, MachineConfig *cfg, CmdlineState *st, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "driver", error);
    if (!o) {
        return false;
    }
    const char *driver = opts_get(o, "driver");
    g_autofree char *id = g_strdup(opts_get(o, "id"));
    return parse_device_driver(o, driver, cfg, st, error) &&
           (!id || add_peripheral(cfg, id, driver, error));
}

/*
 * -drive as QEMU: a raw image on virtio (if=virtio) or held for a -device
 * (if=none, needs id=). qlite has no IDE, SCSI or floppy: QEMU's default
 * if=ide is refused with a hint rather than silently changed.
 */
static bool parse_drive_opts(const char *arg, DriveConfig *d, const char **iface_out,
                             GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, NULL, error);
    if (!o) {
        return false;
    }
    d->file = g_strdup(opts_get(o, "file"));
    d->format = g_strdup(opts_get(o, "format"));
    d->id = g_strdup(opts_get(o, "id"));
    const char *iface = opts_get(o, "if");
    const char *cache = opts_get(o, "cache");
    const char *media = opts_get(o, "media");
    const char *aio = opts_get(o, "aio");
    if (!opts_get_bool(o, "readonly", false, &d->readonly, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (!d->file || !*d->file) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "file= is required (qlite has no removable media)");
        return false;
    }
    if (cache && !block_cache_mode_parse(cache, &d->cache, error)) {
        return false;
    }
    if (media && strcmp(media, "disk") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "media=%s is not supported (disk only)", media);
        return false;
    }
    /* Every request goes through Linux AIO; 'threads' is accepted as a request for async I/O. */
    if (aio && strcmp(aio, "native") != 0 && strcmp(aio, "threads") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "aio=%s is not supported (native or threads)", aio);
        return false;
    }
    if (!iface) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "if=ide is not supported: qlite has no IDE controller, use if=virtio");
        return false;
    }
    if (strcmp(iface, "none") != 0 && strcmp(iface, "virtio") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "if=%s is not supported (virtio or none)", iface);
        return false;
    }
    *iface_out = strcmp(iface, "none") == 0 ? "none" : "virtio";
    return true;
}

bool parse_drive(const char *arg, MachineConfig *cfg, GHashTable *pending, unsigned *ndrives,
                 GError **error)
{
    DriveConfig *d = g_new0(DriveConfig, 1);
    const char *iface = NULL;
    if (!parse_drive_opts(arg, d, &iface, error)) {
        drive_free(d);
        return false;
    }
    if (strcmp(iface, "none") == 0) {
        if (!d->id || g_hash_table_contains(pending, d->id)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        d->id ? "duplicate drive id '%s'"
                              : "if=none needs an id= for -device ...,drive=ID%s",
                        d->id ? d->id : "");
            drive_free(d);
            return false;
        }
        g_hash_table_insert(pending, g_strdup(d->id), d);
    } else {
        if (!d->id) {
            d->id = g_strdup_printf("virtio%u", *ndrives);
        }
        machine_add_disk(cfg, d);
    }
    (*ndrives)++;
    return true;
}

bool parse_netdev(const char *arg, CmdlineState *st, GError **error)
{
    NetdevConfig *nd = netdev_config_parse(arg, error);
    if (!nd) {
        return false;
    }
    if (g_hash_table_contains(st->netdev_ids, nd->id)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "duplicate netdev id '%s'", nd->id);
        netdev_config_free(nd);
        return false;
    }
    g_hash_table_add(st->netdev_ids, g_strdup(nd->id));
    g_hash_table_insert(st->pending_netdevs, g_strdup(nd->id), nd);
    st->net_set = true;
    return true;
}

/*
 * -nic TYPE[,model=M][,mac=MAC][,netdev options]: QEMU's shorthand for a
 * -netdev and its NIC. model= and mac= are the NIC's; the rest, plus an id
 * when none is given, is handed to the -netdev parser unchanged (",," stays).
 */
bool parse_nic(const char *arg, MachineConfig *cfg, CmdlineState *st, GError **error)
{
    st->net_set = true;
    if (strcmp(arg, "none") == 0) {
        return true;
    }
    g_autoptr(GString) netdev = g_string_new(NULL);
    g_autofree char *model = NULL, *mac = NULL;
    bool has_id = false;
    const char *p = arg;
    while (*p) {
        GString *part = g_string_new(NULL);
        for (; *p && !(*p == ',' && p[1] != ','); p++) {
            if (*p == ',') {
                p++; /* ",," is a literal comma: keep the escape for the -netdev parser */
                g_string_append_c(part, ',');
            }
            g_string_append_c(part, *p);
        }
        if (*p == ',') {
            p++;
        }
        char **slot = g_str_has_prefix(part->str, "model=") ? &model
                      : g_str_has_prefix(part->str, "mac=") ? &mac
                                                            : NULL;
        if (slot) {
            g_free(*slot);
            *slot = g_strdup(strchr(part->str, '=') + 1);
        } else {
            has_id |= g_str_has_prefix(part->str, "id=");
            g_string_append_printf(netdev, "%s%s", netdev->len ? "," : "", part->str);
        }
        g_string_free(part, TRUE);
    }
    if (model && strcmp(model, "virtio-net-pci") != 0 && strcmp(model, "virtio") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "model=%s is not supported (virtio-net-pci only)", model);
        return false;
    }
    if (!has_id) {
        g_string_append_printf(netdev, ",id=nic%u", cfg->nics ? cfg->nics->len : 0);
    }
    NetdevConfig *nd = netdev_config_parse(netdev->str, error);
    if (!nd) {
        return false;
    }
    if (!g_hash_table_add(st->netdev_ids, g_strdup(nd->id))) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "duplicate netdev id '%s'", nd->id);
        netdev_config_free(nd);
        return false;
    }
    GError *err = NULL;
    machine_add_nic(cfg, nd, mac, &st->ndefault_macs, 0, &err);
    if (err) {
        g_propagate_error(error, err);
        return false;
    }
    return true;
}

/*
 * -object secret,id=ID,data=TEXT|file=PATH[,format=raw|base64]: read and
 * checked as QEMU does (libvirt always passes its master key so); nothing
 * in qlite takes a secret yet, so none is kept. Encrypted secrets (keyid=)
 * are refused.
 */
static bool parse_secret(Opts *o, const char *id, GError **error)
{
    const char *data = opts_get(o, "data");
    const char *file = opts_get(o, "file");
    const char *format = opts_get(o, "format");
    if (!opts_check_unused(o, error)) {
        return false;
    }
    if (!id || !*id || !data == !file) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "secret: id= and one of data= or file= are required");
        return false;
    }
    if (format && strcmp(format, "raw") != 0 && strcmp(format, "base64") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "secret: format=%s is not supported (raw, base64)", format);
        return false;
    }
    g_autofree char *contents = NULL;
    g_autoptr(GError) err = NULL;
    if (file && !g_file_get_contents(file, &contents, NULL, &err)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "secret %s: %s", id, err->message);
        return false;
    }
    return true;
}

/*
 * -object: the random number sources of virtio-rng-pci. Both read the
 * kernel's pool (getrandom), which is what /dev/urandom and /dev/random
 * give today; another file is refused rather than silently replaced.
 */
bool parse_object(const char *arg, CmdlineState *st, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "qom-type", error);
    if (!o) {
        return false;
    }
    const char *type = opts_get(o, "qom-type");
    const char *id = opts_get(o, "id");
    const char *filename = NULL;
    if (type && strcmp(type, "secret") == 0) {
        return parse_secret(o, id, error);
    }
    if (type && strcmp(type, "rng-random") == 0) {
        filename = opts_get(o, "filename");
    } else if (!type || strcmp(type, "rng-builtin") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "object type '%s' is not supported (rng-random, rng-builtin, secret)",
                    type ? type : "");
        return false;
    }
    if (!opts_check_unused(o, error)) {
        return false;
    }
    if (!id || !*id) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Parameter 'id' is missing");
        return false;
    }
    if (filename && strcmp(filename, "/dev/urandom") && strcmp(filename, "/dev/random")) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "rng-random: filename=%s is not supported (/dev/urandom or /dev/random)",
                    filename);
        return false;
    }
    if (!g_hash_table_add(st->rng_objects, g_strdup(id))) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "attempt to add duplicate id '%s'",
                    id);
        return false;
    }
    return true;
}
