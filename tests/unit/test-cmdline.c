/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cmdline.h"

#include <string.h>
#include <unistd.h>

/* Runs cmdline_parse on "qlite" followed by the NULL-terminated arguments. */
static bool parse_va(MachineConfig *cfg, CmdlineAction *act, GError **err, va_list ap)
{
    GPtrArray *args = g_ptr_array_new();
    g_ptr_array_add(args, "qlite");
    for (const char *a = va_arg(ap, const char *); a; a = va_arg(ap, const char *)) {
        g_ptr_array_add(args, (gpointer)a);
    }
    bool ok = cmdline_parse((int)args->len, (char **)args->pdata, cfg, act, err);
    g_ptr_array_free(args, TRUE);
    return ok;
}

static bool parse(MachineConfig *cfg, CmdlineAction *act, GError **err, ...)
{
    va_list ap;
    va_start(ap, err);
    bool ok = parse_va(cfg, act, err, ap);
    va_end(ap);
    return ok;
}

static void test_full(void)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_autoptr(GError) err = NULL;
    g_assert_true(parse(&cfg, &act, &err, "-m", "512", "-smp", "2", "-kernel", "/k", "-initrd",
                        "/i", "-append", "console=ttyS0", "-serial", "file:/tmp/x", "-display",
                        "none", "-no-reboot", "-name", "guest=vm1", "-enable-kvm", "--accel", "kvm",
                        "-cpu", "host", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", NULL));
    g_assert_no_error(err);
    g_assert_cmpint(act, ==, CMDLINE_RUN);
    g_assert_cmpuint(cfg.ram_size, ==, 512ULL << 20);
    g_assert_cmpuint(cfg.ncpus, ==, 2);
    g_assert_cmpstr(cfg.kernel, ==, "/k");
    g_assert_cmpstr(cfg.initrd, ==, "/i");
    g_assert_cmpstr(cfg.append, ==, "console=ttyS0");
    g_assert_cmpstr(cfg.serial, ==, "file:/tmp/x");
    g_assert_cmpstr(cfg.name, ==, "vm1");
    g_assert_true(cfg.no_reboot);
    g_assert_true(cfg.debug_exit);
    g_assert_cmphex(cfg.debug_exit_base, ==, 0xf4);
    g_assert_cmpuint(cfg.debug_exit_size, ==, 4);
    machine_config_clear(&cfg);
}

static void test_defaults(void)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_assert_true(parse(&cfg, &act, NULL, "-kernel", "/k", NULL));
    g_assert_cmpuint(cfg.ram_size, ==, 128ULL << 20);
    g_assert_cmpuint(cfg.ncpus, ==, 1);
    g_assert_cmpstr(cfg.serial, ==, "stdio");
    g_assert_false(cfg.debug_exit);
    machine_config_clear(&cfg);

    g_assert_true(parse(&cfg, &act, NULL, "-kernel", "/k", "-nodefaults", NULL));
    g_assert_null(cfg.serial);
    machine_config_clear(&cfg);
    g_assert_true(parse(&cfg, &act, NULL, "-kernel", "/k", "-serial", "none", "-nographic", NULL));
    g_assert_null(cfg.serial);
    machine_config_clear(&cfg);
    g_assert_true(parse(&cfg, &act, NULL, "-nographic", "-kernel", "/k", "-m", "size=1G", "-smp",
                        "cpus=4,sockets=1,cores=4,threads=1", NULL));
    g_assert_cmpstr(cfg.serial, ==, "stdio");
    g_assert_cmpuint(cfg.ram_size, ==, 1ULL << 30);
    g_assert_cmpuint(cfg.ncpus, ==, 4);
    machine_config_clear(&cfg);
    g_assert_true(parse(&cfg, &act, NULL, "-kernel", "/k", "-smp", "sockets=2,cores=2", NULL));
    g_assert_cmpuint(cfg.ncpus, ==, 4);
    machine_config_clear(&cfg);
    g_assert_true(parse(&cfg, &act, NULL, "-kernel", "/k", "-device", "isa-debug-exit", NULL));
    g_assert_cmphex(cfg.debug_exit_base, ==, 0x501);
    g_assert_cmpuint(cfg.debug_exit_size, ==, 2);
    machine_config_clear(&cfg);
}

static void test_actions(void)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_assert_true(parse(&cfg, &act, NULL, "--version", NULL));
    g_assert_cmpint(act, ==, CMDLINE_VERSION);
    machine_config_clear(&cfg);
    g_assert_true(parse(&cfg, &act, NULL, "-m", "64", "-h", NULL));
    g_assert_cmpint(act, ==, CMDLINE_HELP);
    machine_config_clear(&cfg);
}

static const DriveConfig *disk(const MachineConfig *cfg, guint i)
{
    g_assert_nonnull(cfg->disks);
    g_assert_cmpuint(i, <, cfg->disks->len);
    return g_ptr_array_index(cfg->disks, i);
}

static void test_drives(void)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_autoptr(GError) err = NULL;
    /* if=virtio plugs at once; if=none waits for its -device, which fixes the slot order. */
    g_assert_true(parse(&cfg, &act, &err, "-kernel", "/k", "-drive",
                        "file=/a.img,format=raw,if=none,id=d0,cache=none", "-drive",
                        "file=/b,,c.img,if=virtio,readonly=on", "-drive",
                        "file=/unused.img,if=none,id=spare", "-device",
                        "virtio-blk-pci,drive=d0,serial=SN1", NULL));
    g_assert_no_error(err);
    g_assert_cmpuint(cfg.disks->len, ==, 2);
    g_assert_cmpstr(disk(&cfg, 0)->file, ==, "/b,c.img");
    g_assert_true(disk(&cfg, 0)->readonly);
    g_assert_cmpint(disk(&cfg, 0)->cache, ==, BLOCK_CACHE_WRITEBACK);
    g_assert_cmpstr(disk(&cfg, 0)->id, ==, "virtio1");
    g_assert_cmpstr(disk(&cfg, 1)->file, ==, "/a.img");
    g_assert_cmpstr(disk(&cfg, 1)->format, ==, "raw");
    g_assert_cmpstr(disk(&cfg, 1)->serial, ==, "SN1");
    g_assert_cmpint(disk(&cfg, 1)->cache, ==, BLOCK_CACHE_NONE);
    g_assert_false(disk(&cfg, 1)->readonly);
    machine_config_clear(&cfg);
}

static const NicConfig *nic(const MachineConfig *cfg, guint i)
{
    return g_ptr_array_index(cfg->nics, i);
}

static void assert_mac(const NicConfig *n, const char *want)
{
    g_autofree char *got = g_strdup_printf("%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1],
                                           n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
    g_assert_cmpstr(got, ==, want);
}

static void test_nics(void)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_autoptr(GError) err = NULL;
    /* QEMU's default NIC: user networking, 52:54:00:12:34:56. */
    g_assert_true(parse(&cfg, &act, &err, "-kernel", "/k", NULL));
    g_assert_no_error(err);
    g_assert_cmpuint(cfg.nics->len, ==, 1);
    g_assert_cmpint(nic(&cfg, 0)->netdev->type, ==, NETDEV_USER);
    assert_mac(nic(&cfg, 0), "52:54:00:12:34:56");
    machine_config_clear(&cfg);
    /* None with -nodefaults or -nic none. */
    g_assert_true(parse(&cfg, &act, &err, "-kernel", "/k", "-nodefaults", NULL));
    g_assert_null(cfg.nics);
    machine_config_clear(&cfg);
    g_assert_true(parse(&cfg, &act, &err, "-kernel", "/k", "-nic", "none", NULL));
    g_assert_null(cfg.nics);
    machine_config_clear(&cfg);
    /*
     * -device takes its -netdev (NIC order is -device/-nic order); MACs not
     * given count up from :56; -nic passes everything but model= and mac= on.
     */
    g_assert_true(parse(&cfg, &act, &err, "-kernel", "/k", "-netdev",
                        "user,id=n0,hostfwd=tcp::5555-:22", "-netdev",
                        "tap,id=t0,ifname=qt0,script=no,downscript=no", "-device",
                        "virtio-net-pci,netdev=t0,mac=52:54:00:aa:bb:cc", "-device",
                        "virtio-net-pci,netdev=n0,id=nic0", "-nic",
                        "user,model=virtio-net-pci,net=192.168.9.0/24", NULL));
    g_assert_no_error(err);
    g_assert_cmpuint(cfg.nics->len, ==, 3);
    g_assert_cmpint(nic(&cfg, 0)->netdev->type, ==, NETDEV_TAP);
    g_assert_cmpstr(nic(&cfg, 0)->netdev->ifname, ==, "qt0");
    assert_mac(nic(&cfg, 0), "52:54:00:aa:bb:cc");
    g_assert_cmpstr(nic(&cfg, 1)->netdev->id, ==, "n0");
    g_assert_cmpuint(nic(&cfg, 1)->netdev->hostfwd->len, ==, 1);
    assert_mac(nic(&cfg, 1), "52:54:00:12:34:56");
    g_assert_cmpint(nic(&cfg, 2)->netdev->type, ==, NETDEV_USER);
    g_assert_cmphex(g_ntohl(nic(&cfg, 2)->netdev->net.s_addr), ==, 0xc0a80900);
    assert_mac(nic(&cfg, 2), "52:54:00:12:34:57");
    machine_config_clear(&cfg);
}

static void test_monitors(void)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_autoptr(GError) err = NULL;
    g_assert_true(parse(&cfg, &act, &err, "-kernel", "/k", "-S", "-qmp",
                        "unix:/tmp/a.sock,server=on,wait=off", "-chardev",
                        "socket,id=m0,path=/tmp/b.sock,server=on,wait=off", "-chardev",
                        "socket,id=m1,fd=7,server=on,wait=off", "-mon", "chardev=m0,mode=control",
                        "-mon", "chardev=m1,mode=control", NULL));
    g_assert_no_error(err);
    g_assert_true(cfg.start_paused);
    g_assert_cmpuint(cfg.monitors->len, ==, 3);
    g_assert_cmpstr(g_ptr_array_index(cfg.monitors, 0), ==, "unix:/tmp/a.sock,server=on,wait=off");
    g_assert_cmpstr(g_ptr_array_index(cfg.monitors, 1), ==, "unix:/tmp/b.sock,server=on,wait=off");
    g_assert_cmpstr(g_ptr_array_index(cfg.monitors, 2), ==, "fd:7");
    machine_config_clear(&cfg);

    /* A daemon's default COM1 goes nowhere; -pidfile is kept for main. */
    g_assert_true(
        parse(&cfg, &act, &err, "-kernel", "/k", "-daemonize", "-pidfile", "/run/q.pid", NULL));
    g_assert_true(cfg.daemonize);
    g_assert_cmpstr(cfg.pidfile, ==, "/run/q.pid");
    g_assert_cmpstr(cfg.serial, ==, "null");
    machine_config_clear(&cfg);
}

/* Each bad command line fails with a message naming the option and the problem. */
static void expect_error(const char *want, ...)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_autoptr(GError) err = NULL;
    va_list ap;
    va_start(ap, want);
    bool ok = parse_va(&cfg, &act, &err, ap);
    va_end(ap);
    machine_config_clear(&cfg);
    g_assert_false(ok);
    g_assert_nonnull(err);
    if (!strstr(err->message, want)) {
        g_error("expected '%s' in '%s'", want, err->message);
    }
}

/* What libvirt 9.0 gives QEMU 7.2 for a kernel-booted domain (qemuBuildCommandLine), whole. */
static void test_libvirt_argv(void)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("qlite-cmdline-XXXXXX", NULL);
    g_autofree char *key = g_build_filename(dir, "master-key.aes", NULL);
    g_assert_true(g_file_set_contents(key, "0123456789abcdef0123456789abcdef", 32, NULL));
    g_autofree char *secret = g_strdup_printf("secret,id=masterKey0,format=raw,file=%s", key);
    int pipefd[2];
    g_assert_cmpint(pipe(pipefd), ==, 0);
    g_autofree char *addfd = g_strdup_printf("set=0,fd=%d,opaque=serial0-source", pipefd[1]);
    g_assert_true(parse(
        &cfg, &act, &err, "-name", "guest=qlite-test,debug-threads=on", "-S", "-object", secret,
        "-machine", "pc-i440fx-7.2,usb=off,dump-guest-core=off", "-accel", "kvm", "-cpu", "host",
        "-m", "256", "-overcommit", "mem-lock=off", "-smp", "2,sockets=2,cores=1,threads=1",
        "-uuid", "8414c253-4775-4b02-8f71-a075633e318b", "-display", "none", "-no-user-config",
        "-nodefaults", "-chardev", "socket,id=charmonitor,fd=3,server=on,wait=off", "-mon",
        "chardev=charmonitor,id=monitor,mode=control", "-rtc", "base=utc", "-no-shutdown", "-boot",
        "strict=on", "-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0", "-blockdev",
        "{\"driver\":\"file\",\"filename\":\"/d.img\",\"node-name\":\"libvirt-1-storage\","
        "\"auto-read-only\":true,\"discard\":\"unmap\"}",
        "-blockdev",
        "{\"node-name\":\"libvirt-1-format\",\"read-only\":false,\"driver\":\"raw\","
        "\"file\":\"libvirt-1-storage\"}",
        "-device",
        "virtio-blk-pci,bus=pci.0,addr=0x3,drive=libvirt-1-format,id=virtio-disk0,bootindex=1",
        "-netdev", "user,id=hostnet0", "-device",
        "virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:98:3d:fc,bus=pci.0,addr=0x2",
        "-add-fd", addfd, "-chardev", "file,id=charserial0,path=/dev/fdset/0,append=on", "-device",
        "isa-serial,chardev=charserial0,id=serial0,index=0", "-audiodev",
        "{\"id\":\"audio1\",\"driver\":\"none\"}", "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", "-msg",
        "timestamp=on", NULL));
    g_assert_no_error(err);
    g_assert_cmpstr(cfg.name, ==, "qlite-test");
    g_assert_true(cfg.no_shutdown && cfg.start_paused && cfg.msg_timestamp);
    g_assert_cmpuint(cfg.ncpus, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(cfg.monitors, 0), ==, "fd:3");
    const DriveConfig *d = g_ptr_array_index(cfg.disks, 0);
    g_assert_cmpstr(d->file, ==, "/d.img");
    g_assert_cmpstr(d->format, ==, "raw");
    g_assert_false(d->readonly);
    g_assert_cmpuint(d->pci_slot, ==, 3);
    g_assert_cmpuint(((NicConfig *)g_ptr_array_index(cfg.nics, 0))->pci_slot, ==, 2);
    g_assert_cmpstr(cfg.serial, ==, "file:/dev/fdset/0");
    g_assert_true(cfg.serial_append);
    machine_config_clear(&cfg);
    close(pipefd[0]);
    unlink(key);
    rmdir(dir);

    /* The node pairs' errors, as QEMU words them where it can. */
    expect_error("Cannot find device='' nor node-name='nope'", "-kernel", "/k", "-blockdev",
                 "driver=raw,node-name=f,file=nope", NULL);
    expect_error("Duplicate nodes with node-name='s'", "-kernel", "/k", "-blockdev",
                 "driver=file,node-name=s,filename=/a", "-blockdev",
                 "driver=file,node-name=s,filename=/b", NULL);
    expect_error("already in use", "-kernel", "/k", "-blockdev",
                 "driver=file,node-name=s,filename=/a", "-device", "virtio-blk-pci,drive=s",
                 "-device", "virtio-blk-pci,drive=s", NULL);
    expect_error("driver 'nbd' is not supported", "-kernel", "/k", "-blockdev",
                 "driver=nbd,node-name=n", NULL);
    expect_error("mem-lock=on is not supported", "-kernel", "/k", "-overcommit", "mem-lock=on",
                 NULL);
    expect_error("base=localtime is not supported", "-kernel", "/k", "-rtc", "base=localtime",
                 NULL);
    expect_error("Fail to parse UUID string", "-kernel", "/k", "-uuid", "xyz", NULL);
    expect_error("usb=on is not supported: qlite has no USB", "-kernel", "/k", "-machine",
                 "pc,usb=on", NULL);
    expect_error("unsupported machine type 'q35'", "-kernel", "/k", "-machine", "q35", NULL);
    expect_error("unsupported machine type 'q35'", "-kernel", "/k", "-M", "q35", NULL);
    expect_error("not an open descriptor", "-kernel", "/k", "-add-fd", "set=1,fd=999", NULL);
    expect_error("can't find value 'c9'", "-kernel", "/k", "-device", "isa-serial,chardev=c9",
                 NULL);
    expect_error("a monitor needs a socket", "-kernel", "/k", "-chardev", "file,id=f,path=/x",
                 "-mon", "chardev=f,mode=control", NULL);
}

/* libvirt's forms: JSON -device, bus=pci.0 and addr= placing each device. */
static void test_pci_addr(void)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_autoptr(GError) err = NULL;
    g_assert_true(parse(&cfg, &act, &err, "-kernel", "/k", "-nodefaults", "-drive",
                        "file=/d,if=none,id=d0", "-device",
                        "{\"driver\":\"virtio-blk-pci\",\"bus\":\"pci.0\",\"addr\":\"0x3\","
                        "\"drive\":\"d0\",\"id\":\"virtio-disk0\",\"bootindex\":1}",
                        "-netdev", "user,id=hostnet0", "-device",
                        "virtio-net-pci,netdev=hostnet0,id=net0,bus=pci.0,addr=1f.0", "-device",
                        "virtio-rng-pci", NULL));
    g_assert_no_error(err);
    g_assert_cmpuint(((DriveConfig *)g_ptr_array_index(cfg.disks, 0))->pci_slot, ==, 3);
    g_assert_cmpuint(((NicConfig *)g_ptr_array_index(cfg.nics, 0))->pci_slot, ==, 0x1f);
    g_assert_cmpuint(((RngConfig *)g_ptr_array_index(cfg.rngs, 0))->pci_slot, ==, 0);
    machine_config_clear(&cfg);

    expect_error("PCI: slot 3 function 0 not available for virtio-rng-pci, in use by "
                 "virtio-blk-pci",
                 "-kernel", "/k", "-drive", "file=/d,if=none,id=d0", "-device",
                 "virtio-blk-pci,drive=d0,addr=3", "-device", "virtio-rng-pci,addr=0x3", NULL);
    expect_error("Bus 'pci.1' not found", "-kernel", "/k", "-device", "virtio-rng-pci,bus=pci.1",
                 NULL);
    expect_error("Property 'virtio-rng-pci.addr' doesn't take value '0x20'", "-kernel", "/k",
                 "-device", "virtio-rng-pci,addr=0x20", NULL);
    expect_error("slots 1 to 31", "-kernel", "/k", "-device", "virtio-rng-pci,addr=3.1", NULL);
    expect_error("JSON parse error", "-kernel", "/k", "-device", "{\"driver\":", NULL);
}

/* No -kernel: firmware boot from the disks; -object and virtio-rng-pci. */
static void test_firmware_rng(void)
{
    MachineConfig cfg;
    CmdlineAction act;
    g_autoptr(GError) err = NULL;
    g_assert_true(parse(&cfg, &act, &err, "-bios", "/b.bin", "-drive", "file=/d,if=virtio",
                        "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device",
                        "virtio-rng-pci,rng=rng0,id=r1", "-device", "virtio-rng-pci", NULL));
    g_assert_no_error(err);
    g_assert_null(cfg.kernel);
    g_assert_cmpstr(cfg.bios, ==, "/b.bin");
    g_assert_cmpuint(cfg.rngs->len, ==, 2);
    g_assert_cmpstr(((RngConfig *)g_ptr_array_index(cfg.rngs, 0))->id, ==, "r1");
    g_assert_null(cfg.boot_order);
    g_assert_cmpint(cfg.boot_retry_ms, ==, -1);
    machine_config_clear(&cfg);

    g_assert_true(parse(&cfg, &act, &err, "-boot", "order=cn,once=d,menu=on,strict=on", "-boot",
                        "reboot-timeout=1000", "-drive", "file=/a,if=none,id=a", "-drive",
                        "file=/b,if=none,id=b", "-device", "virtio-blk-pci,drive=a,bootindex=2",
                        "-device", "virtio-blk-pci,drive=b,bootindex=0", NULL));
    g_assert_no_error(err);
    g_assert_cmpstr(cfg.boot_order, ==, "cn");
    g_assert_cmpstr(cfg.boot_once, ==, "d");
    g_assert_true(cfg.boot_menu);
    g_assert_true(cfg.boot_strict);
    g_assert_cmpint(cfg.boot_retry_ms, ==, 1000);
    g_assert_cmpuint(cfg.bootindex->len, ==, 2);
    MachineBootIndex *bi = &g_array_index(cfg.bootindex, MachineBootIndex, 1);
    g_assert_cmpuint(bi->disk, ==, 1);
    g_assert_cmpint(bi->index, ==, 0);
    machine_config_clear(&cfg);
}

static void test_errors(void)
{
    expect_error("-bogus: invalid option", "-kernel", "/k", "-bogus", NULL);
    expect_error("stray: unexpected argument", "-kernel", "/k", "stray", NULL);
    expect_error("-m 12x: invalid RAM size '12x'", "-kernel", "/k", "-m", "12x", NULL);
    expect_error("-m 4M: RAM size must be", "-kernel", "/k", "-m", "4M", NULL);
    expect_error("-m size=1G,slots=2: Invalid parameter 'slots'", "-kernel", "/k", "-m",
                 "size=1G,slots=2", NULL);
    expect_error("-smp x: Parameter 'cpus' expects a number", "-kernel", "/k", "-smp", "x", NULL);
    expect_error("does not match the topology", "-kernel", "/k", "-smp", "cpus=2,sockets=3", NULL);
    expect_error("at most 255", "-kernel", "/k", "-smp", "1000", NULL);
    expect_error("maxcpus must equal cpus", "-kernel", "/k", "-smp", "2,maxcpus=4", NULL);
    expect_error("-device e1000: 'e1000' is not a valid device model name", "-kernel", "/k",
                 "-device", "e1000", NULL);
    expect_error("Invalid parameter 'bogus'", "-kernel", "/k", "-device", "isa-debug-exit,bogus=1",
                 NULL);
    expect_error("not a valid port range", "-kernel", "/k", "-device",
                 "isa-debug-exit,iobase=0xffff,iosize=4", NULL);
    expect_error("-kernel: requires an argument", "-kernel", NULL);
    expect_error("-display gtk: display 'gtk' is not supported", "-kernel", "/k", "-display", "gtk",
                 NULL);
    expect_error("-accel tcg: accelerator 'tcg' is not supported", "-kernel", "/k", "-accel", "tcg",
                 NULL);
    expect_error("-cpu qemu64", "-kernel", "/k", "-cpu", "qemu64", NULL);
    expect_error("only one serial port", "-kernel", "/k", "-serial", "stdio", "-serial", "null",
                 NULL);
    expect_error("-append needs -kernel", "-append", "quiet", NULL);
    expect_error("Invalid boot device for PC: 'x'", "-boot", "order=cx", NULL);
    expect_error("Boot device 'c' was given twice", "-boot", "once=cdc", NULL);
    expect_error("reboot timeout is invalid", "-boot", "reboot-timeout=70000", NULL);
    expect_error("Invalid parameter 'bogus'", "-boot", "bogus=1", NULL);
    expect_error("bootindex 1 used by another device", "-drive", "file=/a,if=none,id=a", "-drive",
                 "file=/b,if=none,id=b", "-device", "virtio-blk-pci,drive=a,bootindex=1", "-device",
                 "virtio-blk-pci,drive=b,bootindex=1", NULL);
    expect_error("bootindex=-2 is not a number from -1", "-drive", "file=/a,if=none,id=a",
                 "-device", "virtio-blk-pci,drive=a,bootindex=-2", NULL);
    expect_error("-initrd needs -kernel", "-initrd", "/i", NULL);
    expect_error("object type 'memory-backend-ram' is not supported", "-object",
                 "memory-backend-ram,id=m,size=1G", NULL);
    expect_error("Parameter 'id' is missing", "-object", "rng-random", NULL);
    expect_error("filename=/dev/hwrng is not supported", "-object",
                 "rng-random,id=r,filename=/dev/hwrng", NULL);
    expect_error("duplicate id 'r'", "-object", "rng-builtin,id=r", "-object", "rng-builtin,id=r",
                 NULL);
    expect_error("no -object rng-random or rng-builtin with id 'r9'", "-device",
                 "virtio-rng-pci,rng=r9", NULL);
    expect_error("Invalid parameter 'max-bytes'", "-device", "virtio-rng-pci,max-bytes=1", NULL);
    expect_error("if=ide is not supported", "-kernel", "/k", "-drive", "file=/a", NULL);
    expect_error("if=scsi is not supported", "-kernel", "/k", "-drive", "file=/a,if=scsi", NULL);
    expect_error("file= is required", "-kernel", "/k", "-drive", "if=virtio", NULL);
    expect_error("if=none needs an id=", "-kernel", "/k", "-drive", "file=/a,if=none", NULL);
    expect_error("duplicate drive id 'x'", "-kernel", "/k", "-drive", "file=/a,if=none,id=x",
                 "-drive", "file=/b,if=none,id=x", NULL);
    expect_error("no if=none drive or -blockdev node 'd9'", "-kernel", "/k", "-drive",
                 "file=/a,if=none,id=d0", "-device", "virtio-blk-pci,drive=d9", NULL);
    expect_error("already in use", "-kernel", "/k", "-drive", "file=/a,if=none,id=d0", "-device",
                 "virtio-blk-pci,drive=d0", "-device", "virtio-blk-pci,drive=d0", NULL);
    expect_error("drive= is required", "-kernel", "/k", "-device", "virtio-blk-pci", NULL);
    expect_error("cache=bogus", "-kernel", "/k", "-drive", "file=/a,if=virtio,cache=bogus", NULL);
    expect_error("Invalid parameter 'snapshot'", "-kernel", "/k", "-drive",
                 "file=/a,if=virtio,snapshot=on", NULL);
    expect_error("readonly", "-kernel", "/k", "-drive", "file=/a,if=virtio,readonly=maybe", NULL);
    expect_error("chardev 'x' not found", "-kernel", "/k", "-mon", "chardev=x,mode=control", NULL);
    expect_error("mode=readline is not supported", "-kernel", "/k", "-chardev",
                 "socket,id=m,path=/s,server=on,wait=off", "-mon", "chardev=m", NULL);
    expect_error("server=on,wait=off", "-kernel", "/k", "-chardev", "socket,id=m,path=/s", NULL);
    expect_error("-nographic cannot be used with -daemonize", "-kernel", "/k", "-daemonize",
                 "-nographic", NULL);
    expect_error("backend 'pty' is not supported", "-kernel", "/k", "-chardev", "pty,id=m", NULL);
    expect_error("no -netdev with id 'n9'", "-kernel", "/k", "-netdev", "user,id=n0", "-device",
                 "virtio-net-pci,netdev=n9", NULL);
    expect_error("netdev 'n0' is already in use", "-kernel", "/k", "-netdev", "user,id=n0",
                 "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-net-pci,netdev=n0",
                 NULL);
    expect_error("netdev= is required", "-kernel", "/k", "-device", "virtio-net-pci", NULL);
    expect_error("duplicate netdev id 'n0'", "-kernel", "/k", "-netdev", "user,id=n0", "-netdev",
                 "user,id=n0", NULL);
    expect_error("-netdev user,id=n0,hostfwd=tcp:5555-22: ", "-kernel", "/k", "-netdev",
                 "user,id=n0,hostfwd=tcp:5555-22", NULL);
    expect_error("invalid mac 'zz'", "-kernel", "/k", "-nic", "user,mac=zz", NULL);
    expect_error("net=: '' is not a valid IPv4 address", "-kernel", "/k", "-nic",
                 "user,net=", NULL);
    expect_error("model=e1000 is not supported", "-kernel", "/k", "-nic", "user,model=e1000", NULL);
    expect_error("Invalid parameter 'vectors'", "-kernel", "/k", "-netdev", "user,id=n0", "-device",
                 "virtio-net-pci,netdev=n0,vectors=3", NULL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cmdline/full", test_full);
    g_test_add_func("/cmdline/defaults", test_defaults);
    g_test_add_func("/cmdline/actions", test_actions);
    g_test_add_func("/cmdline/drives", test_drives);
    g_test_add_func("/cmdline/monitors", test_monitors);
    g_test_add_func("/cmdline/nics", test_nics);
    g_test_add_func("/cmdline/firmware-rng", test_firmware_rng);
    g_test_add_func("/cmdline/pci-addr", test_pci_addr);
    g_test_add_func("/cmdline/libvirt", test_libvirt_argv);
    g_test_add_func("/cmdline/errors", test_errors);
    return g_test_run();
}
