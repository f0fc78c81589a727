/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QEMU's command line: the option table and help, the dispatch of each
 * option, the defaults and the checks once all are read, and the options
 * that only set MachineConfig (-m, -smp, -boot, -name, -accel, -add-fd,
 * -overcommit, -rtc, -audiodev, -msg, -machine). Devices, drives and
 * networks are in cmdline-devices.c, chardevs and monitors in
 * cmdline-chardev.c (cmdline-int.h).
 */
#include "cmdline-int.h"
#include "machine/firmware.h"
#include "util/error.h"
#include "util/fdset.h"
#include "util/opts.h"

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
    {"M", OPT_MACHINE, true, NULL, NULL},
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
