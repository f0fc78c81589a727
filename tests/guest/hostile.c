/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostile: the guest as an attacker. The agent takes one virtio-blk disk's
 * PCI function from its driver and drives the device itself, from user
 * space, as a malicious guest kernel could: its config space through sysfs
 * (real config cycles, every width and offset), its BARs mapped from
 * sysfs, its rings in pages whose guest-physical addresses come from
 * /proc/self/pagemap. Each attack is a TAP line: the VMM is still there
 * (the agent runs on), the device says what virtio 1.2 asks (NEEDS_RESET
 * after a malformed chain, NO_VECTOR for a vector it does not have,
 * queue settings fixed while live), and a reset brings it back. The device
 * is left broken (NEEDS_RESET, a chain in flight) for what runs next: a
 * save and restore must carry that state. hostile_recover then resets it,
 * gives it back to the kernel's driver and reads the disk through it.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE          4096UL
#define QSIZE         16
#define NR_PAGES      6 /* descriptors, avail, used, request, indirect table, spare */
#define DESC_NEXT     1
#define DESC_WRITE    2
#define DESC_INDIRECT 4

#define ST_ACK         1
#define ST_DRIVER      2
#define ST_DRIVER_OK   4
#define ST_FEATURES_OK 8
#define ST_NEEDS_RESET 64
#define NO_VECTOR      0xffff

/* virtio_pci_common_cfg (virtio 1.2 §4.1.4.3) */
#define CC_DFSELECT 0x00
#define CC_DF       0x04
#define CC_GFSELECT 0x08
#define CC_GF       0x0c
#define CC_MSIX     0x10
#define CC_STATUS   0x14
#define CC_QSELECT  0x16
#define CC_QSIZE    0x18
#define CC_QMSIX    0x1a
#define CC_QENABLE  0x1c
#define CC_QNOTIFY  0x1e
#define CC_QDESC    0x20
#define CC_QDRIVER  0x28
#define CC_QDEVICE  0x30
#define CC_BYTES    0x38

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

struct dev {
    char dir[PATH_MAX]; /* /sys/bus/pci/devices/DDDD:BB:DD.F */
    const char *bdf;
    int cfg;
    volatile uint8_t *bar[6];
    size_t bar_len[6];
    volatile uint8_t *common, *notify;
    uint32_t notify_mult;
    /* Pages we own, locked, and their guest-physical addresses. */
    uint8_t *page[NR_PAGES];
    uint64_t phys[NR_PAGES];
    uint16_t avail_idx;
};

static struct dev dev = {.cfg = -1};

/* ---- config space and BARs ---- */

static uint32_t cfg_read(unsigned int off, unsigned int width)
{
    uint32_t v = 0;

    if (pread(dev.cfg, &v, width, off) != (ssize_t)width)
        return 0xffffffff;
    return v;
}

static bool cfg_write(unsigned int off, unsigned int width, uint32_t v)
{
    return pwrite(dev.cfg, &v, width, off) == (ssize_t)width;
}

static uint8_t cc8(unsigned int off)
{
    return dev.common[off];
}

static uint16_t cc16(unsigned int off)
{
    return *(volatile uint16_t *)(dev.common + off);
}

static void cc8w(unsigned int off, uint8_t v)
{
    dev.common[off] = v;
}

static void cc16w(unsigned int off, uint16_t v)
{
    *(volatile uint16_t *)(dev.common + off) = v;
}

static void cc32w(unsigned int off, uint32_t v)
{
    *(volatile uint32_t *)(dev.common + off) = v;
}

static uint32_t cc32(unsigned int off)
{
    return *(volatile uint32_t *)(dev.common + off);
}

static void cc64w(unsigned int off, uint64_t v)
{
    cc32w(off, (uint32_t)v);
    cc32w(off + 4, (uint32_t)(v >> 32));
}

static int map_bar(unsigned int i)
{
    char path[PATH_MAX + 16];
    struct stat st;
    int fd, err;

    if (dev.bar[i])
        return 0;
    snprintf(path, sizeof(path), "%s/resource%u", dev.dir, i);
    fd = open(path, O_RDWR | O_SYNC);
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) < 0 || st.st_size == 0) {
        close(fd);
        return EINVAL;
    }
    dev.bar[i] = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    err = errno;
    close(fd);
    if (dev.bar[i] == MAP_FAILED) {
        dev.bar[i] = NULL;
        return err;
    }
    dev.bar_len[i] = st.st_size;
    return 0;
}

/* The virtio capabilities (§4.1.4): common and notify, mapped. */
static int find_caps(void)
{
    unsigned int ptr = cfg_read(0x34, 1) & 0xfc, n, type, bar, off, err;

    for (n = 0; ptr && n < 48; n++, ptr = cfg_read(ptr + 1, 1) & 0xfc) {
        if (cfg_read(ptr, 1) != 0x09)
            continue;
        type = cfg_read(ptr + 3, 1);
        bar = cfg_read(ptr + 4, 1);
        off = cfg_read(ptr + 8, 4);
        if ((type != 1 && type != 2) || bar > 5)
            continue;
        err = map_bar(bar);
        if (err)
            return err;
        if (off >= dev.bar_len[bar])
            return ERANGE;
        if (type == 1)
            dev.common = dev.bar[bar] + off;
        else {
            dev.notify = dev.bar[bar] + off;
            dev.notify_mult = cfg_read(ptr + 16, 4);
        }
    }
    return dev.common && dev.notify ? 0 : ENOENT;
}

/* ---- memory we own, by guest-physical address ---- */

static int own_pages(void)
{
    uint8_t *mem = mmap(NULL, NR_PAGES * PAGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);
    int fd, i;

    if (mem == MAP_FAILED)
        return errno;
    fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        return errno;
    for (i = 0; i < NR_PAGES; i++) {
        uint64_t entry = 0;

        dev.page[i] = mem + i * PAGE;
        memset(dev.page[i], 0, PAGE);
        if (pread(fd, &entry, 8, ((uintptr_t)dev.page[i] / PAGE) * 8) != 8 || !(entry >> 63) ||
            !(entry & ((1ULL << 55) - 1))) {
            close(fd);
            return EPERM; /* not present, or no PFNs for us (not root) */
        }
        dev.phys[i] = (entry & ((1ULL << 55) - 1)) * PAGE;
    }
    close(fd);
    return 0;
}

enum { P_DESC, P_AVAIL, P_USED, P_REQ, P_INDIRECT };

static struct desc *descs(void)
{
    return (struct desc *)dev.page[P_DESC];
}

static volatile uint16_t *avail(void)
{
    return (volatile uint16_t *)dev.page[P_AVAIL];
}

static volatile uint16_t *used(void)
{
    return (volatile uint16_t *)dev.page[P_USED];
}

/* ---- driving the device ---- */

/* A reset, and the device reads back 0 (§4.1.4.3.2): true when it does. */
static bool dev_reset(void)
{
    int i;

    cc8w(CC_STATUS, 0);
    for (i = 0; i < 100 && cc8(CC_STATUS); i++)
        sleep_ms(10);
    dev.avail_idx = 0;
    memset(dev.page[P_AVAIL], 0, PAGE);
    memset(dev.page[P_USED], 0, PAGE);
    return cc8(CC_STATUS) == 0;
}

/* Reset, VERSION_1 only, queue 0 of QSIZE polled (no vector), DRIVER_OK. */
static bool dev_start(void)
{
    if (!dev_reset())
        return false;
    cc8w(CC_STATUS, ST_ACK | ST_DRIVER);
    cc32w(CC_GFSELECT, 0);
    cc32w(CC_GF, 0);
    cc32w(CC_GFSELECT, 1);
    cc32w(CC_GF, 1); /* VIRTIO_F_VERSION_1, bit 32 */
    cc8w(CC_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    if (!(cc8(CC_STATUS) & ST_FEATURES_OK))
        return false;
    cc16w(CC_MSIX, NO_VECTOR);
    cc16w(CC_QSELECT, 0);
    if (cc16(CC_QSIZE) < QSIZE)
        return false;
    cc16w(CC_QSIZE, QSIZE);
    cc16w(CC_QMSIX, NO_VECTOR);
    cc64w(CC_QDESC, dev.phys[P_DESC]);
    cc64w(CC_QDRIVER, dev.phys[P_AVAIL]);
    cc64w(CC_QDEVICE, dev.phys[P_USED]);
    cc16w(CC_QENABLE, 1);
    cc8w(CC_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    return cc8(CC_STATUS) == (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
}

/* Makes head available and notifies queue 0. */
static void kick(uint16_t head)
{
    avail()[2 + dev.avail_idx % QSIZE] = head;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    avail()[1] = ++dev.avail_idx;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    *(volatile uint16_t *)(dev.notify + cc16(CC_QNOTIFY) * dev.notify_mult) = 0;
}

/* Waits up to a second for NEEDS_RESET; the status read last. */
static uint8_t wait_needs_reset(void)
{
    uint8_t st = cc8(CC_STATUS);
    int i;

    for (i = 0; i < 100 && !(st & ST_NEEDS_RESET); i++) {
        sleep_ms(10);
        st = cc8(CC_STATUS);
    }
    return st;
}

/* A read of sector 0: header (out), data (in), status (in), in the request page. */
static void request_descs(struct desc *d, uint64_t data_addr, uint32_t data_len)
{
    uint8_t *req = dev.page[P_REQ];

    memset(req, 0, 16);
    req[512 + 16] = 0xff;
    d[0] = (struct desc){dev.phys[P_REQ], 16, DESC_NEXT, 1};
    d[1] = (struct desc){data_addr, data_len, DESC_NEXT | DESC_WRITE, 2};
    d[2] = (struct desc){dev.phys[P_REQ] + 512 + 16, 1, DESC_WRITE, 0};
}

/*
 * One malformed chain: the device must stop (NEEDS_RESET), the VMM live
 * on, and a reset and a good request work again.
 */
static void chain_attack(const char *what, uint16_t (*build)(struct desc *d))
{
    uint8_t st;
    bool good;

    if (!dev_start()) {
        report(false, "hostile %s: the device does not start (status %#x)", what, cc8(CC_STATUS));
        return;
    }
    memset(descs(), 0, QSIZE * sizeof(struct desc));
    kick(build(descs()));
    st = wait_needs_reset();
    /* Back to work: reset, then a well-formed read of sector 0. */
    good = dev_start();
    if (good) {
        request_descs(descs(), dev.phys[P_REQ] + 16, 512);
        kick(0);
        for (int i = 0; i < 100 && used()[1] == 0; i++)
            sleep_ms(10);
        good = used()[1] == 1 && dev.page[P_REQ][512 + 16] == 0;
    }
    report((st & ST_NEEDS_RESET) && good,
           "hostile %s: the device stops with NEEDS_RESET (status %#x), a reset brings it back "
           "(a read after it %s)",
           what, st, good ? "completes" : "fails");
}

static uint16_t loop_chain(struct desc *d)
{
    /* Both device-readable: only the walk's bound can end it. */
    d[0] = (struct desc){dev.phys[P_REQ], 16, DESC_NEXT, 1};
    d[1] = (struct desc){dev.phys[P_REQ] + 16, 512, DESC_NEXT, 0};
    return 0;
}

static uint16_t next_out_of_table(struct desc *d)
{
    d[0] = (struct desc){dev.phys[P_REQ], 16, DESC_NEXT, 0xfff0};
    return 0;
}

static uint16_t indirect_out_of_ram(struct desc *d)
{
    d[0] = (struct desc){0xfffffffff000ULL, 4 * sizeof(struct desc), DESC_INDIRECT, 0};
    return 0;
}

static uint16_t indirect_loop(struct desc *d)
{
    struct desc *t = (struct desc *)dev.page[P_INDIRECT];

    t[0] = (struct desc){dev.phys[P_REQ], 16, DESC_NEXT, 1};
    t[1] = (struct desc){dev.phys[P_REQ] + 16, 512, DESC_NEXT, 0};
    d[0] = (struct desc){dev.phys[P_INDIRECT], 2 * sizeof(struct desc), DESC_INDIRECT, 0};
    return 0;
}

static uint16_t indirect_odd_length(struct desc *d)
{
    d[0] = (struct desc){dev.phys[P_INDIRECT], 17, DESC_INDIRECT, 0};
    return 0;
}

static uint16_t buffer_out_of_ram(struct desc *d)
{
    request_descs(d, 1ULL << 46, 512);
    return 0;
}

static uint16_t buffer_huge(struct desc *d)
{
    request_descs(d, dev.phys[P_REQ] + 16, 0xffffffff);
    return 0;
}

static uint16_t head_out_of_ring(struct desc *d)
{
    request_descs(d, dev.phys[P_REQ] + 16, 512);
    return 0xffff;
}

/* ---- the other attacks ---- */

/* Queue settings written while the queue runs: ignored (§4.1.4.3.2). */
static void queue_change_live(void)
{
    uint16_t size;
    uint32_t desc_lo;

    if (!dev_start()) {
        report(false, "hostile queue change: the device does not start");
        return;
    }
    cc16w(CC_QSIZE, 7);
    cc64w(CC_QDESC, 1ULL << 50);
    cc16w(CC_QENABLE, 0);
    size = cc16(CC_QSIZE);
    desc_lo = cc32(CC_QDESC);
    report(size == QSIZE && desc_lo == (uint32_t)dev.phys[P_DESC] && cc16(CC_QENABLE) == 1,
           "hostile queue size, address and enable written while live: kept (size %u, "
           "enable %u)",
           size, cc16(CC_QENABLE));
}

/* Status bits out of order: DRIVER_OK before FEATURES_OK; FEATURES_OK cleared while live. */
static void status_out_of_order(void)
{
    uint8_t a, b;

    dev_reset();
    cc8w(CC_STATUS, ST_ACK | ST_DRIVER | ST_DRIVER_OK);
    a = cc8(CC_STATUS);
    dev_start();
    cc8w(CC_STATUS, ST_ACK | ST_DRIVER | ST_DRIVER_OK);
    b = cc8(CC_STATUS);
    report(!(a & ST_DRIVER_OK) && (b & ST_FEATURES_OK) && dev_reset(),
           "hostile status out of order: DRIVER_OK without FEATURES_OK refused (%#x), "
           "FEATURES_OK cleared while live kept (%#x), a reset still works",
           a, b);
}

/* MSI-X vectors beyond the table read back as NO_VECTOR (§4.1.5.1.2). */
static void msix_out_of_range(void)
{
    uint16_t c, q;

    dev_reset();
    cc16w(CC_MSIX, 0x7ff);
    c = cc16(CC_MSIX);
    cc16w(CC_QSELECT, 0);
    cc16w(CC_QMSIX, 0x7fe);
    q = cc16(CC_QMSIX);
    cc16w(CC_QSELECT, 0x7fff); /* a queue that does not exist */
    cc16w(CC_QMSIX, 1);
    report(c == NO_VECTOR && q == NO_VECTOR && cc16(CC_QSIZE) == 0,
           "hostile MSI-X vectors out of range read back as NO_VECTOR (config %#x, queue %#x), "
           "a queue past the last has size 0",
           c, q);
}

/*
 * Every offset of the config space at every width it allows, read, then
 * written with all ones, then the header and capabilities put back. The
 * BARs and the command register go through this too.
 */
static void config_every_width(void)
{
    uint32_t saved[64];
    unsigned int off, w, reads = 0, writes = 0;

    for (off = 0; off < 256; off += 4)
        saved[off / 4] = cfg_read(off, 4);
    for (w = 1; w <= 4; w *= 2)
        for (off = 0; off + w <= 4096; off += w)
            reads += cfg_read(off, w) != 0xffffffff || w < 4;
    for (w = 1; w <= 4; w *= 2)
        for (off = 0x40; off + w <= 256; off += w)
            writes += cfg_write(off, w, 0xffffffff);
    for (w = 1; w <= 4; w *= 2)
        for (off = 0; off + w <= 0x40; off += w)
            writes += cfg_write(off, w, 0xffffffff);
    for (off = 0; off < 256; off += 4)
        cfg_write(off, 4, saved[off / 4]);
    report(cfg_read(0, 2) == 0x1af4 && cfg_read(0x10, 4) == saved[4] && dev_start(),
           "hostile config space: %u reads and %u all-ones writes at every width and offset; "
           "put back, the device starts",
           reads, writes);
}

/* The size of BAR i, 0 when it has none. */
static size_t bar_size(unsigned int i)
{
    char path[PATH_MAX + 16];
    struct stat st;

    snprintf(path, sizeof(path), "%s/resource%u", dev.dir, i);
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

/*
 * Another BAR moved onto the one holding the common configuration, then
 * both onto a page of RAM we own; then put back.
 */
static void bars_overlapping(void)
{
    unsigned int a = 0, b, i;
    uint32_t saved[6];
    volatile uint32_t *spare = (volatile uint32_t *)dev.page[NR_PAGES - 1];
    uint32_t ram = (uint32_t)dev.phys[NR_PAGES - 1];
    bool ram_kept;

    for (i = 0; i < 6; i++) {
        saved[i] = cfg_read(0x10 + 4 * i, 4);
        if (dev.bar[i] && dev.common >= dev.bar[i] && dev.common < dev.bar[i] + dev.bar_len[i])
            a = i;
    }
    for (b = 0; b < 6 && (b == a || !bar_size(b)); b++)
        ;
    if (b == 6 || ram != dev.phys[NR_PAGES - 1]) {
        report(false, "hostile BARs: no second BAR, or RAM above 4 GiB");
        return;
    }
    cfg_write(0x10 + 4 * b, 4, saved[a] & ~0xfU);
    (void)cc8(CC_STATUS); /* where both now decode */
    cfg_write(0x10 + 4 * a, 4, ram);
    cfg_write(0x10 + 4 * b, 4, ram);
    spare[0] = 0x5a5a1234;
    ram_kept = spare[0] == 0x5a5a1234;
    for (i = 0; i < 6; i++)
        cfg_write(0x10 + 4 * i, 4, saved[i]);
    report(ram_kept && dev_start(),
           "hostile BAR%u onto BAR%u, then both over RAM: the RAM stays RAM, the BARs put "
           "back, the device starts",
           b, a);
}

/*
 * Every register of the device's BARs but the common configuration written
 * with junk, 20 times over: notifications, ISR, device configuration, the
 * MSI-X table and PBA. (Junk ring addresses inside RAM would let the device
 * write over this guest's kernel: a guest may do that to itself, but then
 * it could not report.)
 */
static void mmio_storm(void)
{
    unsigned int i, b, n = 0;
    uint32_t x = 0x9e3779b9;

    dev_reset();
    for (i = 0; i < 20; i++)
        for (b = 0; b < 6; b++)
            for (size_t off = 0; dev.bar[b] && off + 4 <= dev.bar_len[b]; off += 4) {
                volatile uint8_t *r = dev.bar[b] + off;

                if (r >= dev.common && r < dev.common + CC_BYTES)
                    continue;
                x = x * 1103515245 + 12345;
                *(volatile uint32_t *)r = x;
                (void)*(volatile uint32_t *)r;
                n++;
            }
    report(dev_start(),
           "hostile MMIO storm: %u writes and reads over the BARs, the device "
           "starts after a reset",
           n);
}

/*
 * Port storm: reads of every port the PC leaves free and writes of junk
 * there, and PCI config cycles by 0xcf8/0xcfc for every device number.
 */
static void port_storm(void)
{
    unsigned int port, n = 0, dn;

    for (port = 0x100; port < 0x3f0; port++) {
        if (port >= 0x2f8 && port < 0x300)
            continue;
        port_write(port, (uint8_t)port);
        (void)port_read(port);
        n += 2;
    }
    for (dn = 0; dn < 32 * 8; dn++) {
        uint32_t addr = 0x80000000 | dn << 8 | 0xfc;

        for (int i = 0; i < 4; i++)
            port_write(0xcf8 + i, (uint8_t)(addr >> (8 * i)));
        for (int i = 0; i < 4; i++)
            (void)port_read(0xcfc + i);
        n += 8;
    }
    port_write(0xcf8, 0);
    report(dev_start(), "hostile port storm: %u accesses, the device still starts", n);
}

/* ---- set-up and the checks ---- */

/* The disk's PCI function, away from its driver, decoding memory, mastering, without INTx. */
static int take_device(const char *disk)
{
    char link[PATH_MAX + 16], *slash;
    int err;

    snprintf(link, sizeof(link), "/sys/block/%s/device/..", disk);
    if (!realpath(link, dev.dir))
        return errno;
    slash = strrchr(dev.dir, '/');
    dev.bdf = slash ? slash + 1 : dev.dir;
    err = write_text("/sys/bus/pci/drivers/virtio-pci/unbind", dev.bdf);
    if (err)
        return err;
    snprintf(link, sizeof(link), "%s/config", dev.dir);
    dev.cfg = open(link, O_RDWR);
    if (dev.cfg < 0)
        return errno;
    /* Memory decoding and bus mastering on; INTx off: no handler is left for it. */
    cfg_write(0x04, 2, cfg_read(0x04, 2) | 0x406);
    err = find_caps();
    return err ? err : own_pages();
}

void check_hostile(const char *disk)
{
    int err = take_device(disk);
    uint8_t st;

    if (err) {
        report(false, "hostile %s: cannot take the device from its driver: %s", disk,
               strerror(err));
        return;
    }
    printf("# hostile: %s is %s, its driver unbound\n", disk, dev.bdf);
    chain_attack("descriptor loop", loop_chain);
    chain_attack("next beyond the table", next_out_of_table);
    chain_attack("indirect table out of RAM", indirect_out_of_ram);
    chain_attack("indirect table looping", indirect_loop);
    chain_attack("indirect table of 17 bytes", indirect_odd_length);
    chain_attack("buffer out of RAM", buffer_out_of_ram);
    chain_attack("buffer of 4 GiB", buffer_huge);
    chain_attack("head beyond the ring", head_out_of_ring);
    queue_change_live();
    status_out_of_order();
    msix_out_of_range();
    config_every_width();
    bars_overlapping();
    mmio_storm();
    port_storm();
    /* Left broken, a chain in flight, for a save and restore to carry. */
    dev_start();
    loop_chain(descs());
    kick(0);
    st = wait_needs_reset();
    printf("qlite-agent: hostile done, %s left with status %#x\n", disk, st);
}

void check_hostile_recover(const char *disk)
{
    char path[PATH_MAX + 32], buf[512];
    int err = 0, fd;
    ssize_t n = -1;
    uint8_t st;

    if (dev.cfg < 0) {
        report(false, "hostile_recover %s: hostile did not take it", disk);
        return;
    }
    st = cc8(CC_STATUS);
    report(st & ST_NEEDS_RESET, "hostile %s still NEEDS_RESET after what ran since (%#x)", disk,
           st);
    dev_reset();
    err = write_text("/sys/bus/pci/drivers/virtio-pci/bind", dev.bdf);
    for (int i = 0; !err && i < 100; i++) {
        snprintf(path, sizeof(path), "/dev/%s", disk);
        fd = open(path, O_RDONLY);
        if (fd >= 0) {
            n = pread(fd, buf, sizeof(buf), 0);
            close(fd);
            break;
        }
        sleep_ms(50);
    }
    report(!err && n == (ssize_t)sizeof(buf),
           "hostile %s: back with its driver after a reset, reads (%s)", disk,
           err                         ? strerror(err)
           : n == (ssize_t)sizeof(buf) ? "512 bytes"
                                       : "no");
}
