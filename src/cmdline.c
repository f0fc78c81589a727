/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cmdline.h"
#include "block/blockdev.h"
#include "machine/debug-exit.h"
#include "machine/firmware.h"
#include "util/error.h"
#include "util/fdset.h"
#include "util/opts.h"
#include "virtio/net.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef enum {
    OPT_M,
    OPT_SMP,
    OPT_KERNEL,
    OPT_BIOS,
    OPT_INITRD,
    OPT_APPEND,
    OPT_SERIAL,
    OPT_NOGRAPHIC,
    OPT_DISPLAY,
    OPT_NO_REBOOT,
    OPT_NO_SHUTDOWN,
    OPT_ADD_FD,
    OPT_OVERCOMMIT,
    OPT_UUID,
    OPT_RTC,
    OPT_MSG,
    OPT_AUDIODEV,
    OPT_BLOCKDEV,
    OPT_NAME,
    OPT_DEVICE,
    OPT_DRIVE,
    OPT_NETDEV,
    OPT_OBJECT,
    OPT_BOOT,
    OPT_NIC,
    OPT_QMP,
    OPT_CHARDEV,
    OPT_MON,
    OPT_S,
    OPT_INCOMING,
    OPT_DAEMONIZE,
    OPT_PIDFILE,
    OPT_SANDBOX,
    OPT_ENABLE_KVM,
    OPT_ACCEL,
    OPT_MACHINE,
    OPT_CPU,
    OPT_NODEFAULTS,
    OPT_NO_USER_CONFIG,
    OPT_HELP,
    OPT_VERSION,
} OptId;

typedef struct {
    const char *name;
    OptId id;
    bool has_arg;
    const char *arg_name;
    const char *help;
} OptDef;

static const OptDef opt_defs[] = {
    {"m", OPT_M, true, "[size=]N[KMGT]", "guest RAM (a bare number is MiB; default 128M)"},
    {"smp", OPT_SMP, true, "[cpus=]N[,sockets=S,cores=C,threads=T,maxcpus=M]", "number of vCPUs"},
    {"kernel", OPT_KERNEL, true, "FILE", "Linux kernel: bzImage or ELF vmlinux with PVH note"},
    {"initrd", OPT_INITRD, true, "FILE", "initial ramdisk"},
    {"bios", OPT_BIOS, true, "FILE",
     "firmware for booting from a disk when there is no -kernel (default " FIRMWARE_DEFAULT ")"},
    {"append", OPT_APPEND, true, "CMDLINE", "kernel command line"},
    {"serial", OPT_SERIAL, true, "DEV",
     "COM1 backend: stdio, file:PATH, pty, unix:PATH,server=on[,wait=off], null, none"},
    {"nographic", OPT_NOGRAPHIC, false, NULL, "no display; serial on stdio (C-a h for help)"},
    {"display", OPT_DISPLAY, true, "none", "only 'none': qlite has no display"},
    {"no-reboot", OPT_NO_REBOOT, false, NULL, "exit instead of rebooting"},
    {"blockdev", OPT_BLOCKDEV, true,
     "driver=file,node-name=N,filename=PATH|driver=raw|qcow2,node-name=N,file=N (or JSON)",
     "a disk as a block graph, for -device virtio-blk-pci,drive=N (docs/usage.md)"},
    {"add-fd", OPT_ADD_FD, true, "fd=N,set=S[,opaque=TEXT]",
     "puts open descriptor N in set S: a file name /dev/fdset/S then opens it"},
    {"overcommit", OPT_OVERCOMMIT, true, "mem-lock=off[,cpu-pm=off]",
     "accepted as qlite runs: guest RAM is not locked, no guest CPU power management"},
    {"uuid", OPT_UUID, true, "UUID",
     "accepted when well-formed: qlite has no SMBIOS table to carry it"},
    {"rtc", OPT_RTC, true, "base=utc[,clock=host][,driftfix=none]",
     "the RTC counts UTC from the host clock (the one setting qlite has)"},
    {"msg", OPT_MSG, true, "timestamp=on|off", "prefix qlite's messages with the time"},
    {"audiodev", OPT_AUDIODEV, true, "none,id=ID", "accepted: qlite has no sound device"},
    {"no-shutdown", OPT_NO_SHUTDOWN, false, NULL,
     "a guest power-off stops the VM instead of ending qlite (system_reset and cont run it)"},
    {"name", OPT_NAME, true, "[guest=]NAME", "name of the guest"},
    {"drive", OPT_DRIVE, true,
     "file=PATH[,format=raw|qcow2][,if=virtio|none][,id=ID][,readonly=on][,cache=MODE]",
     "a disk image (raw, or qcow2; probed when format= is not given); if=virtio plugs it as "
     "virtio-blk-pci, if=none waits for -device"},
    {"device", OPT_DEVICE, true, "DRIVER[,...]",
     "isa-debug-exit[,iobase=A][,iosize=N] (a guest write of V exits with (V<<1)|1), "
     "virtio-blk-pci,drive=ID[,serial=S], virtio-net-pci,netdev=ID[,mac=MAC] or "
     "virtio-rng-pci[,rng=ID]"},
    {"boot", OPT_BOOT, true,
     "[order=DRIVES][,once=DRIVES][,menu=on|off][,strict=on|off][,reboot-timeout=MS]",
     "firmware boot order (c: disk; bootindex= on -device virtio-blk-pci ranks disks)"},
    {"object", OPT_OBJECT, true, "rng-random,id=ID[,filename=/dev/urandom]|rng-builtin,id=ID",
     "a random number source for virtio-rng-pci,rng=ID"},
    {"netdev", OPT_NETDEV, true,
     "user,id=ID[,net=ADDR/MASK][,hostfwd=RULE]...[,restrict=on]|"
     "tap,id=ID,ifname=NAME,script=no,downscript=no|tap,id=ID,fd=N",
     "a network backend for -device virtio-net-pci,netdev=ID (docs/usage.md)"},
    {"nic", OPT_NIC, true, "user|tap[,mac=MAC][,model=virtio-net-pci][,netdev options]|none",
     "a virtio-net NIC and its backend in one (default: -nic user)"},
    {"qmp", OPT_QMP, true, "unix:PATH,server=on,wait=off|tcp:HOST:PORT,server=on,wait=off",
     "a QMP monitor socket (docs/qmp.md)"},
    {"chardev", OPT_CHARDEV, true, "socket,id=ID,path=PATH|host=H,port=P|fd=N,server=on,wait=off",
     "a listening socket for -mon"},
    {"mon", OPT_MON, true, "chardev=ID,mode=control", "a QMP monitor on a -chardev socket"},
    {"S", OPT_S, false, NULL, "do not start the vCPUs until the monitor's cont"},
    {"incoming", OPT_INCOMING, true, "file:PATH|exec:CMD|unix:PATH|tcp:HOST:PORT|defer",
     "receive a saved or migrating VM instead of booting (docs/migration.md)"},
    {"daemonize", OPT_DAEMONIZE, false, NULL,
     "run in the background once set up (the parent exits when the monitors listen)"},
    {"pidfile", OPT_PIDFILE, true, "FILE",
     "write qlite's process id to FILE (locked while running)"},
    {"sandbox", OPT_SANDBOX, true, "on|off[,spawn=allow|deny]",
     "seccomp filters per thread (docs/security.md)"},
    {"enable-kvm", OPT_ENABLE_KVM, false, NULL, "accepted: qlite always uses KVM"},
    {"accel", OPT_ACCEL, true, "kvm", "accepted: qlite always uses KVM"},
    {"machine", OPT_MACHINE, true,
     "[type=]pc|" PC_MACHINE_NAME "|none[,accel=kvm[:tcg]][,usb=off][,dump-guest-core=off]",
     "the PC (default), or none: no VM, only the monitors (a manager's probe)"},
    {"cpu", OPT_CPU, true, "host", "accepted: the vCPUs are always the host's model"},
    {"nodefaults", OPT_NODEFAULTS, false, NULL, "no default devices (no serial unless -serial)"},
    {"no-user-config", OPT_NO_USER_CONFIG, false, NULL, "accepted: qlite reads no config file"},
    {"h", OPT_HELP, false, NULL, "this help"},
    {"help", OPT_HELP, false, NULL, NULL},
    {"version", OPT_VERSION, false, NULL, "print the version"},
};

void cmdline_print_help(void)
{
    printf("qlite " QLITE_VERSION " - a lean virtual machine monitor for Linux KVM\n"
           "usage: qlite [options]\n\n");
    for (size_t i = 0; i < G_N_ELEMENTS(opt_defs); i++) {
        const OptDef *d = &opt_defs[i];
        if (!d->help) {
            continue;
        }
        g_autofree char *lhs = g_strdup_printf("-%s%s%s", d->name, d->has_arg ? " " : "",
                                               d->has_arg ? d->arg_name : "");
        printf("  %-40s %s\n", lhs, d->help);
    }
    printf("\nExit status: 0 when the guest powers off (or resets with -no-reboot), 1 on a\n"
           "setup error, 2 when the VM fails, (V<<1)|1 when the guest writes V to\n"
           "isa-debug-exit.\n");
}

static const OptDef *cmdline_find(const char *arg)
{
    /* QEMU takes "-opt" and "--opt" alike. */
    const char *name = arg + 1;
    if (*name == '-') {
        name++;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(opt_defs); i++) {
        if (strcmp(opt_defs[i].name, name) == 0) {
            return &opt_defs[i];
        }
    }
    return NULL;
}

static bool parse_ram(const char *arg, MachineConfig *cfg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "size", error);
    if (!o) {
        return false;
    }
    const char *size = opts_get(o, "size");
    if (!opts_check_unused(o, error)) {
        return false;
    }
    uint64_t bytes;
    /* A bare number means MiB, as in QEMU. */
    if (!size || !parse_size(size, 1ULL << 20, &bytes)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "invalid RAM size '%s'",
                    size ? size : "");
        return false;
    }
    if (bytes < CMDLINE_MIN_RAM || bytes > CMDLINE_MAX_RAM) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "RAM size must be between 8 MiB and 1 TiB");
        return false;
    }
    cfg->ram_size = (bytes + 0x1fffff) & ~0x1fffffULL; /* whole 2 MiB pages */
    return true;
}

static bool parse_smp(const char *arg, MachineConfig *cfg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "cpus", error);
    if (!o) {
        return false;
    }
    uint64_t cpus, sockets, cores, threads, maxcpus;
    if (!opts_get_u64(o, "cpus", 0, &cpus, error) ||
        !opts_get_u64(o, "sockets", 0, &sockets, error) ||
        !opts_get_u64(o, "cores", 0, &cores, error) ||
        !opts_get_u64(o, "threads", 0, &threads, error) ||
        !opts_get_u64(o, "maxcpus", 0, &maxcpus, error) || !opts_check_unused(o, error)) {
        return false;
    }
    uint64_t topo = (sockets ? sockets : 1) * (cores ? cores : 1) * (threads ? threads : 1);
    if (!cpus) {
        cpus = (sockets || cores || threads) ? topo : 1;
    } else if ((sockets || cores || threads) && topo != cpus) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "cpus=%" G_GUINT64_FORMAT " does not match the topology (%" G_GUINT64_FORMAT
                    " vCPUs)",
                    cpus, topo);
        return false;
    }
    if (maxcpus && maxcpus != cpus) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "CPU hotplug is not supported: maxcpus must equal cpus");
        return false;
    }
    if (cpus > CMDLINE_MAX_CPUS) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%" G_GUINT64_FORMAT " vCPUs requested, at most %d supported", cpus,
                    CMDLINE_MAX_CPUS);
        return false;
    }
    cfg->ncpus = (unsigned)cpus;
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

static void drive_free(gpointer p)
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

typedef struct {
    bool nodefaults;
    bool serial_set;
    bool nographic;
    bool net_set; /* -netdev or -nic given: no default NIC */
    unsigned ndrives;
    unsigned ndefault_macs;
    GHashTable *pending_drives;  /* if=none drives by id, until a -device takes them */
    BlockdevTable *blockdevs;    /* -blockdev nodes, until a -device takes them */
    GHashTable *pending_netdevs; /* -netdev configs by id, until a -device takes them */
    GHashTable *netdev_ids;      /* every netdev id seen */
    GHashTable *chardevs;        /* -chardev id -> spec, until a -mon or isa-serial takes it */
    GHashTable *chardev_append;  /* the file chardevs with append=on */
    GHashTable *rng_objects;     /* -object rng-random/rng-builtin ids */
    const char *pci_slots[32];   /* the driver given each slot with addr= */
} CmdlineState;

static void cmdline_state_clear(CmdlineState *st)
{
    g_hash_table_unref(st->pending_drives);
    blockdev_table_free(st->blockdevs);
    g_hash_table_unref(st->pending_netdevs);
    g_hash_table_unref(st->netdev_ids);
    g_hash_table_unref(st->chardevs);
    g_hash_table_unref(st->chardev_append);
    g_hash_table_unref(st->rng_objects);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(CmdlineState, cmdline_state_clear)

static void nic_free(gpointer p)
{
    nic_config_free(p);
}

static void rng_free(gpointer p)
{
    rng_config_free(p);
}

static void netdev_free(gpointer p)
{
    netdev_config_free(p);
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

static bool parse_netdev(const char *arg, CmdlineState *st, GError **error)
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
static bool parse_nic(const char *arg, MachineConfig *cfg, CmdlineState *st, GError **error)
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

/* -device virtio-blk-pci,drive=ID: takes the if=none drive out of the pending table. */
/* A PC's boot device letters, as QEMU checks them: floppies, disk, CD-ROM, network. */
static bool boot_letters_ok(const char *order, GError **error)
{
    for (const char *p = order; *p; p++) {
        if (!strchr("abcdn", *p)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Invalid boot device for PC: '%c'",
                        *p);
            return false;
        }
        if (strchr(p + 1, *p)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Boot device '%c' was given twice",
                        *p);
            return false;
        }
    }
    return true;
}

static bool parse_boot(const char *arg, MachineConfig *cfg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "order", error);
    if (!o) {
        return false;
    }
    const char *order = opts_get(o, "order");
    const char *once = opts_get(o, "once");
    const char *retry = opts_get(o, "reboot-timeout");
    opts_get(o, "splash");
    opts_get(o, "splash-time"); /* no display: no splash */
    if (!opts_get_bool(o, "menu", cfg->boot_menu, &cfg->boot_menu, error) ||
        !opts_get_bool(o, "strict", cfg->boot_strict, &cfg->boot_strict, error) ||
        !opts_check_unused(o, error) || (order && !boot_letters_ok(order, error)) ||
        (once && !boot_letters_ok(once, error))) {
        return false;
    }
    if (order) {
        g_free(cfg->boot_order);
        cfg->boot_order = g_strdup(order);
    }
    if (once) {
        g_free(cfg->boot_once);
        cfg->boot_once = g_strdup(once);
    }
    if (retry) {
        char *end;
        errno = 0;
        long long ms = strtoll(retry, &end, 0);
        if (errno || *end || ms < -1 || ms > 0xffff) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "reboot timeout is invalid, it should be a value between -1 and 65535");
            return false;
        }
        cfg->boot_retry_ms = ms;
    }
    return true;
}

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
static bool parse_object(const char *arg, CmdlineState *st, GError **error)
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

static bool parse_device(const char *arg, MachineConfig *cfg, CmdlineState *st, GError **error)
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

static bool parse_drive(const char *arg, MachineConfig *cfg, GHashTable *pending, unsigned *ndrives,
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

static bool parse_name(const char *arg, MachineConfig *cfg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "guest", error);
    if (!o) {
        return false;
    }
    const char *name = opts_get(o, "guest");
    /* QEMU's debug-threads= and process= are accepted; qlite names its threads anyway. */
    opts_get(o, "debug-threads");
    opts_get(o, "process");
    if (!opts_check_unused(o, error)) {
        return false;
    }
    g_free(cfg->name);
    cfg->name = g_strdup(name);
    return true;
}

static bool parse_accel(const char *arg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "accel", error);
    if (!o) {
        return false;
    }
    const char *accel = opts_get(o, "accel");
    if (!accel || strcmp(accel, "kvm") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "accelerator '%s' is not supported: qlite only runs on KVM",
                    accel ? accel : "");
        return false;
    }
    return opts_check_unused(o, error);
}

/* -add-fd fd=N,set=S[,opaque=TEXT] (util/fdset.h). */
static bool parse_add_fd(const char *arg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, NULL, error);
    if (!o) {
        return false;
    }
    uint64_t fd, set;
    const char *opaque = opts_get(o, "opaque");
    if (!opts_get_u64(o, "fd", G_MAXUINT64, &fd, error) ||
        !opts_get_u64(o, "set", G_MAXUINT64, &set, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (fd > G_MAXINT || set > G_MAXUINT) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "fd= and set= are required");
        return false;
    }
    return fdset_add((unsigned)set, (int)fd, opaque, error);
}

/*
 * Options whose only setting qlite has is the one it runs with: each key
 * may be given with that value (-overcommit mem-lock=off, -rtc base=utc,
 * -audiodev none); anything else is refused naming what qlite does.
 */
typedef struct {
    const char *key, *value, *why;
} FixedSetting;

static bool check_fixed(Opts *o, const FixedSetting *fixed, size_t n, GError **error)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = opts_get(o, fixed[i].key);
        if (v && fixed[i].value && strcmp(v, fixed[i].value) != 0) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s=%s is not supported: %s",
                        fixed[i].key, v, fixed[i].why);
            return false;
        }
    }
    return true;
}

static bool parse_fixed(const char *arg, const char *implied, const FixedSetting *fixed, size_t n,
                        GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, implied, error);
    return o && check_fixed(o, fixed, n, error) && opts_check_unused(o, error);
}

static const FixedSetting overcommit_settings[] = {
    {"mem-lock", "off", "qlite does not lock guest RAM"},
    {"cpu-pm", "off", "the guest gets no host CPU power management"},
};
static const FixedSetting rtc_settings[] = {
    {"base", "utc", "the RTC counts UTC"},
    {"clock", "host", "the RTC follows the host's clock"},
    {"driftfix", "none", "missed RTC ticks are not replayed"},
};
static const FixedSetting audiodev_settings[] = {
    {"driver", "none", "qlite has no sound device"}, {"id", NULL, NULL}, /* any id */
};

static bool parse_msg(const char *arg, MachineConfig *cfg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, NULL, error);
    return o && opts_get_bool(o, "timestamp", false, &cfg->msg_timestamp, error) &&
           opts_check_unused(o, error);
}

/* An accel= list as QEMU's (kvm:tcg: the first that works): KVM must be in it. */
static bool accel_ok(const char *list, GError **error)
{
    g_auto(GStrv) names = g_strsplit(list, ":", -1);
    for (char **n = names; *n; n++) {
        if (strcmp(*n, "kvm") == 0) {
            return true;
        }
    }
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                "accelerator '%s' is not supported: qlite only runs on KVM", list);
    return false;
}

/*
 * -machine: the PC under QEMU's names for it, or none (monitors only, no VM:
 * what libvirt starts to probe an emulator). usb=off and dump-guest-core=off
 * are what qlite does anyway (no USB; guest RAM is never in a core dump).
 */
static bool parse_machine(const char *arg, MachineConfig *cfg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "type", error);
    if (!o) {
        return false;
    }
    const char *type = opts_get(o, "type");
    const char *accel = opts_get(o, "accel");
    static const FixedSetting fixed[] = {
        {"usb", "off", "qlite has no USB"},
        {"dump-guest-core", "off", "guest RAM is never in a core dump"},
    };
    if (!check_fixed(o, fixed, G_N_ELEMENTS(fixed), error) || !opts_check_unused(o, error) ||
        (accel && !accel_ok(accel, error))) {
        return false;
    }
    if (type && strcmp(type, "none") == 0) {
        cfg->machine_none = true;
    } else if (type && strcmp(type, "pc") != 0 && strcmp(type, PC_MACHINE_NAME) != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "unsupported machine type '%s' (pc, " PC_MACHINE_NAME ", none)", type);
        return false;
    } else {
        cfg->machine_none = false;
    }
    return true;
}

/* A monitor and its chardev label (QEMU's: the -chardev id, or compat_monitorN for -qmp). */
static void add_monitor(MachineConfig *cfg, char *spec, const char *label)
{
    if (!cfg->monitors) {
        cfg->monitors = g_ptr_array_new_with_free_func(g_free);
        cfg->monitor_labels = g_ptr_array_new_with_free_func(g_free);
    }
    g_ptr_array_add(cfg->monitors, spec);
    g_ptr_array_add(cfg->monitor_labels,
                    label ? g_strdup(label)
                          : g_strdup_printf("compat_monitor%u", cfg->monitors->len - 1));
}

/* -chardev file,id=ID,path=PATH[,append=on]: for isa-serial (PATH may be /dev/fdset/N). */
static bool parse_chardev_file(Opts *o, const char *id, CmdlineState *st, GError **error)
{
    const char *path = opts_get(o, "path");
    bool append;
    if (!opts_get_bool(o, "append", false, &append, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (!path || !*path) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "chardev: file: path= is required");
        return false;
    }
    g_hash_table_insert(st->chardevs, g_strdup(id), g_strdup_printf("file:%s", path));
    if (append) {
        g_hash_table_add(st->chardev_append, g_strdup(id));
    }
    return true;
}

/* -chardev socket,...: kept as a monitor spec for a later -mon chardev=ID; file: above. */
static bool parse_chardev(const char *arg, CmdlineState *st, GError **error)
{
    GHashTable *chardevs = st->chardevs;
    g_autoptr(Opts) o = opts_parse(arg, "backend", error);
    if (!o) {
        return false;
    }
    const char *backend = opts_get(o, "backend");
    const char *id = opts_get(o, "id");
    if (!id) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "chardev: no id given");
        return false;
    }
    if (g_hash_table_contains(chardevs, id)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "duplicate chardev id '%s'", id);
        return false;
    }
    if (backend && strcmp(backend, "file") == 0) {
        return parse_chardev_file(o, id, st, error);
    }
    const char *path = opts_get(o, "path");
    const char *host = opts_get(o, "host");
    const char *port = opts_get(o, "port");
    const char *fd = opts_get(o, "fd");
    bool server, wait;
    if (!opts_get_bool(o, "server", false, &server, error) ||
        !opts_get_bool(o, "wait", true, &wait, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (!backend || strcmp(backend, "socket") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "chardev backend '%s' is not supported (socket, file)", backend ? backend : "");
        return false;
    }
    if (!fd && (!server || wait)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "only listening sockets are supported: server=on,wait=off");
        return false;
    }
    char *spec;
    if (fd) {
        uint64_t n;
        if (!parse_u64(fd, &n) || n > G_MAXINT) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "fd=%s is not a descriptor", fd);
            return false;
        }
        spec = g_strdup_printf("fd:%" G_GUINT64_FORMAT, n);
    } else if (path) {
        spec = g_strdup_printf("unix:%s,server=on,wait=off", path);
    } else if (port) {
        spec = g_strdup_printf("tcp:%s:%s,server=on,wait=off", host ? host : "0.0.0.0", port);
    } else {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "chardev: path=, port= or fd= needed");
        return false;
    }
    g_hash_table_insert(chardevs, g_strdup(id), spec);
    return true;
}

static bool parse_mon(const char *arg, MachineConfig *cfg, GHashTable *chardevs, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "chardev", error);
    if (!o) {
        return false;
    }
    const char *id = opts_get(o, "chardev");
    const char *mode = opts_get(o, "mode");
    opts_get(o, "id"); /* names the monitor; nothing refers to it */
    bool pretty;
    if (!opts_get_bool(o, "pretty", false, &pretty, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (!mode || strcmp(mode, "control") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "mode=%s is not supported: qlite's monitors are QMP (mode=control)",
                    mode ? mode : "readline");
        return false;
    }
    gpointer key, spec;
    if (!id || !g_hash_table_lookup_extended(chardevs, id, &key, &spec)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "chardev '%s' not found",
                    id ? id : "");
        return false;
    }
    if (g_str_has_prefix(spec, "file:")) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "chardev '%s' is a file: a monitor needs a socket", id);
        return false;
    }
    g_hash_table_steal(chardevs, id);
    add_monitor(cfg, spec, key);
    g_free(key);
    return true;
}

static bool cmdline_apply(const OptDef *d, const char *arg, MachineConfig *cfg, CmdlineState *st,
                          GError **error)
{
    switch (d->id) {
    case OPT_M:
        return parse_ram(arg, cfg, error);
    case OPT_SMP:
        return parse_smp(arg, cfg, error);
    case OPT_KERNEL:
        g_free(cfg->kernel);
        cfg->kernel = g_strdup(arg);
        return true;
    case OPT_BIOS:
        g_free(cfg->bios);
        cfg->bios = g_strdup(arg);
        return true;
    case OPT_INITRD:
        g_free(cfg->initrd);
        cfg->initrd = g_strdup(arg);
        return true;
    case OPT_APPEND:
        g_free(cfg->append);
        cfg->append = g_strdup(arg);
        return true;
    case OPT_SERIAL:
        if (st->serial_set) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "only one serial port (COM1) is supported");
            return false;
        }
        st->serial_set = true;
        g_free(cfg->serial);
        cfg->serial = strcmp(arg, "none") == 0 ? NULL : g_strdup(arg);
        return true;
    case OPT_NOGRAPHIC:
        /* No display: COM1 is on stdio unless -serial or -nodefaults says otherwise. */
        st->nographic = true;
        return true;
    case OPT_DISPLAY:
        if (strcmp(arg, "none") != 0) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "display '%s' is not supported: qlite has no display ('none' only)", arg);
            return false;
        }
        return true;
    case OPT_NO_REBOOT:
        cfg->no_reboot = true;
        return true;
    case OPT_NO_SHUTDOWN:
        cfg->no_shutdown = true;
        return true;
    case OPT_NAME:
        return parse_name(arg, cfg, error);
    case OPT_DEVICE:
        return parse_device(arg, cfg, st, error);
    case OPT_OBJECT:
        return parse_object(arg, st, error);
    case OPT_BOOT:
        return parse_boot(arg, cfg, error);
    case OPT_NETDEV:
        return parse_netdev(arg, st, error);
    case OPT_NIC:
        return parse_nic(arg, cfg, st, error);
    case OPT_DRIVE:
        return parse_drive(arg, cfg, st->pending_drives, &st->ndrives, error);
    case OPT_QMP:
        add_monitor(cfg, g_strdup(arg), NULL);
        return true;
    case OPT_CHARDEV:
        return parse_chardev(arg, st, error);
    case OPT_MON:
        return parse_mon(arg, cfg, st->chardevs, error);
    case OPT_S:
        cfg->start_paused = true;
        return true;
    case OPT_INCOMING:
        g_free(cfg->incoming);
        cfg->incoming = g_strdup(arg);
        return true;
    case OPT_DAEMONIZE:
        cfg->daemonize = true;
        return true;
    case OPT_PIDFILE:
        g_free(cfg->pidfile);
        cfg->pidfile = g_strdup(arg);
        return true;
    case OPT_SANDBOX:
        return sandbox_parse(arg, &cfg->sandbox, error);
    case OPT_ACCEL:
        return parse_accel(arg, error);
    case OPT_MACHINE:
        return parse_machine(arg, cfg, error);
    case OPT_ADD_FD:
        return parse_add_fd(arg, error);
    case OPT_BLOCKDEV:
        return blockdev_parse(st->blockdevs, arg, error);
    case OPT_OVERCOMMIT:
        return parse_fixed(arg, NULL, overcommit_settings, G_N_ELEMENTS(overcommit_settings),
                           error);
    case OPT_RTC:
        return parse_fixed(arg, NULL, rtc_settings, G_N_ELEMENTS(rtc_settings), error);
    case OPT_AUDIODEV:
        return parse_fixed(arg, "driver", audiodev_settings, G_N_ELEMENTS(audiodev_settings),
                           error);
    case OPT_MSG:
        return parse_msg(arg, cfg, error);
    case OPT_UUID:
        if (!g_uuid_string_is_valid(arg)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Fail to parse UUID string");
            return false;
        }
        return true;
    case OPT_CPU:
        if (strcmp(arg, "host") != 0 && strcmp(arg, "max") != 0) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "CPU model '%s' is not supported ('host' only)", arg);
            return false;
        }
        return true;
    case OPT_NODEFAULTS:
        st->nodefaults = true;
        return true;
    case OPT_ENABLE_KVM:
    case OPT_NO_USER_CONFIG:
    case OPT_HELP:
    case OPT_VERSION:
        return true;
    }
    return true;
}

bool cmdline_parse(int argc, char **argv, MachineConfig *cfg, CmdlineAction *action, GError **error)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ram_size = CMDLINE_DEFAULT_RAM;
    cfg->ncpus = 1;
    cfg->sandbox = SANDBOX_CONFIG_DEFAULT;
    cfg->boot_retry_ms = -1;
    *action = CMDLINE_RUN;
    g_auto(CmdlineState) st = {
        .pending_drives = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, drive_free),
        .pending_netdevs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, netdev_free),
        .netdev_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
        .chardevs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
        .blockdevs = blockdev_table_new(),
        .chardev_append = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
        .rng_objects = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL)};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const OptDef *d = a[0] == '-' ? cmdline_find(a) : NULL;
        if (!d) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        a[0] == '-' ? "%s: invalid option"
                                    : "%s: unexpected argument (options start with '-')",
                        a);
            return false;
        }
        const char *arg = NULL;
        if (d->has_arg) {
            if (i + 1 >= argc) {
                g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s: requires an argument", a);
                return false;
            }
            arg = argv[++i];
        }
        if (d->id == OPT_HELP) {
            *action = CMDLINE_HELP;
            return true;
        }
        if (d->id == OPT_VERSION) {
            *action = CMDLINE_VERSION;
            return true;
        }
        if (!cmdline_apply(d, arg, cfg, &st, error)) {
            g_prefix_error(error, "%s %s: ", a, arg ? arg : "");
            return false;
        }
    }
    /* As QEMU: legacy -nographic means stdio, which a daemon has not, unless nothing is on it. */
    if (st.nographic && cfg->daemonize && !st.serial_set && !st.nodefaults) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "-nographic cannot be used with -daemonize");
        return false;
    }
    /* With no display, QEMU's default serial console would be invisible: use stdio. */
    if (!st.serial_set && !st.nodefaults && !cfg->serial) {
        /* A daemon has no terminal: its default COM1 goes nowhere. */
        cfg->serial = g_strdup(cfg->daemonize ? "null" : "stdio");
    }
    if (cfg->daemonize && cfg->serial && strcmp(cfg->serial, "stdio") == 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "-daemonize: the serial console cannot be on stdio "
                    "(use -serial file:PATH, pty, unix:PATH,server=on or none)");
        return false;
    }
    /* As QEMU: a -netdev no NIC uses is only worth a warning. */
    GHashTableIter it;
    gpointer id;
    g_hash_table_iter_init(&it, st.pending_netdevs);
    while (g_hash_table_iter_next(&it, &id, NULL)) {
        g_printerr("qlite: warning: netdev %s has no peer\n", (const char *)id);
    }
    /* QEMU's default NIC, user networking, unless any networking was asked for. */
    if (!st.net_set && !st.nodefaults && !parse_nic("user", cfg, &st, error)) {
        return false;
    }
    if (cfg->initrd && !cfg->kernel) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "-initrd needs -kernel");
        return false;
    }
    if (cfg->append && !cfg->kernel) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "-append needs -kernel");
        return false;
    }
    return true;
}
