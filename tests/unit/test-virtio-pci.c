/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The virtio-pci transport driven as a guest driver would, through PCI
 * configuration cycles and BAR accesses, with a real virtio-blk behind it
 * and fake KVM pieces (MSI routes, GSIs, ioeventfds) in front: no KVM.
 */
#include "block/block.h"
#include "machine/pci-host.h"
#include "mem/bus.h"
#include "pci-fake.h"
#include "virtio-fake.h"
#include "virtio/blk.h"
#include "virtio/virtio-pci.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define DEVFN     (1 << 3) /* slot 1 */
#define RAM_SIZE  (16 << 20)
#define RING_BASE 0x100000
#define REQ_GPA   0x200000
#define DATA_GPA  0x201000
#define IMG_SIZE  (1 << 20)

/* Offsets in struct virtio_pci_common_cfg, §4.1.4.3. */
#define C_DFSELECT 0x00
#define C_DF       0x04
#define C_GFSELECT 0x08
#define C_GF       0x0c
#define C_MSIX     0x10
#define C_NUMQ     0x12
#define C_STATUS   0x14
#define C_QSELECT  0x16
#define C_QSIZE    0x18
#define C_QMSIX    0x1a
#define C_QENABLE  0x1c
#define C_QNOFF    0x1e
#define C_QDESC    0x20
#define C_QAVAIL   0x28
#define C_QUSED    0x30

typedef struct {
    GuestMem *mem;
    Bus *pio, *mmio;
    PciHost *host;
    FakeIrq irq;
    VirtioPci *vp;
    char *img;
    int img_fd;
    uint64_t bar0;
    uint32_t off[6]; /* BAR 0 offset of each capability type */
    uint32_t notify_mult;
    uint8_t cfg_cap; /* the pci_cfg capability */
    FakeVq vq;
} Fx;

/* A virtio-blk function called id in the next free slot of f's host, on a scratch image. */
static VirtioPci *blk_function(Fx *f, const char *id, char **img, int *fd)
{
    *fd = g_file_open_tmp("qlite-vpci-XXXXXX.img", img, NULL);
    g_assert_cmpint(*fd, >=, 0);
    g_assert_cmpint(ftruncate(*fd, IMG_SIZE), ==, 0);
    DriveConfig cfg = {.id = (char *)id, .file = *img, .format = (char *)"raw"};
    g_autoptr(GError) err = NULL;
    VirtioDevice *vdev = virtio_blk_new(&cfg, f->mem, &err);
    g_assert_no_error(err);
    static const VirtioPciHostOps host_ops = {.ioeventfd = fake_ioeventfd};
    VirtioPci *vp = virtio_pci_new(vdev, &host_ops, &f->irq, &fake_msi_ops, &f->irq, &err);
    g_assert_no_error(err);
    g_assert_true(pci_host_plug(f->host, virtio_pci_device(vp), 0, &err));
    g_assert_no_error(err);
    return vp;
}

static void fx_setup(Fx *f, gconstpointer data)
{
    memset(f, 0, sizeof(*f));
    f->mem = guest_mem_new(RAM_SIZE, RAM_SIZE, NULL);
    g_assert_nonnull(f->mem);
    f->pio = bus_new("pio");
    f->mmio = bus_new("mmio");
    f->host = pci_host_new(f->pio, f->mmio, fake_gsi, &f->irq, NULL);
    g_assert_nonnull(f->host);
    f->vp = blk_function(f, "d0", &f->img, &f->img_fd);
    fake_vq_init(&f->vq, f->mem, RING_BASE, 16);
}

static void fx_teardown(Fx *f, gconstpointer data)
{
    virtio_pci_free(f->vp);
    pci_host_free(f->host);
    bus_free(f->pio);
    bus_free(f->mmio);
    guest_mem_free(f->mem);
    close(f->img_fd);
    unlink(f->img);
    g_free(f->img);
}

static uint32_t cfg_rd(Fx *f, unsigned reg, unsigned len)
{
    return fake_cfg_read(f->pio, DEVFN, reg, len);
}

static void cfg_wr(Fx *f, unsigned reg, uint32_t v, unsigned len)
{
    fake_cfg_write(f->pio, DEVFN, reg, v, len);
}

static uint32_t bar_rd(Fx *f, unsigned type, uint32_t off, unsigned len)
{
    uint8_t buf[4];
    g_assert_true(bus_read(f->mmio, f->bar0 + f->off[type] + off, buf, len));
    return (uint32_t)bus_data_get(buf, len);
}

static void bar_wr(Fx *f, unsigned type, uint32_t off, uint32_t v, unsigned len)
{
    uint8_t buf[4];
    bus_data_set(buf, len, v);
    g_assert_true(bus_write(f->mmio, f->bar0 + f->off[type] + off, buf, len));
}

#define COMMON 1
#define NOTIFY 2
#define ISR    3
#define DEVICE 4

/* What a driver does first: identify the function and walk its vendor capabilities. */
static void probe(Fx *f)
{
    g_assert_cmphex(cfg_rd(f, PCI_VENDOR_ID, 2), ==, 0x1af4);
    g_assert_cmphex(cfg_rd(f, PCI_DEVICE_ID, 2), ==, 0x1042); /* 0x1040 + block */
    g_assert_cmpuint(cfg_rd(f, PCI_REVISION_ID, 1), >=, 1);
    g_assert_cmphex(cfg_rd(f, PCI_SUBSYSTEM_ID, 2), >=, 0x40);
    f->bar0 = cfg_rd(f, PCI_BAR0, 4) & ~0xfULL;
    g_assert_cmphex(f->bar0, !=, 0);
    for (unsigned p = cfg_rd(f, PCI_CAPABILITY_LIST, 1); p; p = cfg_rd(f, p + 1, 1)) {
        if (cfg_rd(f, p, 1) != PCI_CAP_ID_VNDR) {
            continue;
        }
        unsigned type = cfg_rd(f, p + 3, 1);
        g_assert_cmpuint(type, >=, 1);
        g_assert_cmpuint(type, <=, 5);
        if (type == 5) {
            f->cfg_cap = (uint8_t)p;
            continue;
        }
        g_assert_cmpuint(cfg_rd(f, p + 4, 1), ==, 0); /* BAR 0 */
        f->off[type] = cfg_rd(f, p + 8, 4);
        if (type == NOTIFY) {
            f->notify_mult = cfg_rd(f, p + 16, 4);
        }
    }
    g_assert_cmpuint(f->cfg_cap, !=, 0);
    g_assert_cmpuint(f->off[ISR], !=, 0);
    g_assert_cmpuint(f->off[DEVICE], !=, 0);
    g_assert_cmpuint(f->notify_mult, ==, 4);
}

/* §3.1.1 through the common configuration, queue 0 on the fake rings. */
static void init_device(Fx *f, bool msix)
{
    bar_wr(f, COMMON, C_STATUS, 0, 1);
    g_assert_cmpuint(bar_rd(f, COMMON, C_STATUS, 1), ==, 0);
    bar_wr(f, COMMON, C_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
    bar_wr(f, COMMON, C_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
    bar_wr(f, COMMON, C_DFSELECT, 1, 4);
    g_assert_true(bar_rd(f, COMMON, C_DF, 4) & 1); /* VERSION_1 is bit 32 */
    bar_wr(f, COMMON, C_GFSELECT, 1, 4);
    bar_wr(f, COMMON, C_GF, 1, 4);
    bar_wr(f, COMMON, C_GFSELECT, 0, 4);
    bar_wr(f, COMMON, C_GF, 0, 4);
    uint8_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    bar_wr(f, COMMON, C_STATUS, s, 1);
    g_assert_cmpuint(bar_rd(f, COMMON, C_STATUS, 1), ==, s);
    g_assert_cmpuint(bar_rd(f, COMMON, C_NUMQ, 2), ==, 1);

    if (msix) {
        Msix *m = virtio_pci_device(f->vp)->msix;
        uint8_t c = msix_cap_offset(m);
        cfg_wr(f, c + 2, 0x8000, 2);
        /* Vectors 0 (queue) and 1 (config), unmasked, through BAR 1. */
        uint64_t bar1 = cfg_rd(f, PCI_BAR0 + 4, 4) & ~0xfULL;
        for (unsigned v = 0; v < 2; v++) {
            uint32_t words[4] = {0xfee00000, 0, 0x40 + v, 0};
            for (unsigned w = 0; w < 4; w++) {
                uint8_t buf[4];
                bus_data_set(buf, 4, words[w]);
                g_assert_true(bus_write(f->mmio, bar1 + v * 16 + w * 4, buf, 4));
            }
        }
        bar_wr(f, COMMON, C_MSIX, 1, 2);
        g_assert_cmpuint(bar_rd(f, COMMON, C_MSIX, 2), ==, 1);
    }
    bar_wr(f, COMMON, C_QSELECT, 0, 2);
    g_assert_cmpuint(bar_rd(f, COMMON, C_QSIZE, 2), >=, 16);
    bar_wr(f, COMMON, C_QSIZE, f->vq.size, 2);
    if (msix) {
        bar_wr(f, COMMON, C_QMSIX, 7, 2); /* no such vector: refused */
        g_assert_cmphex(bar_rd(f, COMMON, C_QMSIX, 2), ==, VIRTIO_NO_VECTOR);
        bar_wr(f, COMMON, C_QMSIX, 0, 2);
        g_assert_cmpuint(bar_rd(f, COMMON, C_QMSIX, 2), ==, 0);
    }
    const uint64_t addr[3] = {f->vq.desc_gpa, f->vq.avail_gpa, f->vq.used_gpa};
    const uint32_t reg[3] = {C_QDESC, C_QAVAIL, C_QUSED};
    for (unsigned i = 0; i < 3; i++) {
        bar_wr(f, COMMON, reg[i], (uint32_t)addr[i], 4);
        bar_wr(f, COMMON, reg[i] + 4, (uint32_t)(addr[i] >> 32), 4);
        g_assert_cmphex(bar_rd(f, COMMON, reg[i], 4), ==, (uint32_t)addr[i]);
    }
    bar_wr(f, COMMON, C_QENABLE, 1, 2);
    g_assert_cmpuint(bar_rd(f, COMMON, C_QENABLE, 2), ==, 1);
    /* An enabled queue's settings are frozen. */
    bar_wr(f, COMMON, C_QSIZE, 8, 2);
    g_assert_cmpuint(bar_rd(f, COMMON, C_QSIZE, 2), ==, f->vq.size);
    bar_wr(f, COMMON, C_STATUS, s | VIRTIO_STATUS_DRIVER_OK, 1);
    g_assert_cmpuint(bar_rd(f, COMMON, C_STATUS, 1), ==, s | VIRTIO_STATUS_DRIVER_OK);
}

/* Writes one sector through the queue and kicks it through the notify area. */
static void write_sector(Fx *f, uint64_t sector, uint8_t fill)
{
    memset(guest_mem_ptr(f->mem, DATA_GPA, 512), fill, 512);
    fake_blk_submit(&f->vq, REQ_GPA, 1 /* VIRTIO_BLK_T_OUT */, sector, DATA_GPA, 512, false, 0);
    uint32_t noff = bar_rd(f, COMMON, C_QNOFF, 2) * f->notify_mult;
    /* No KVM behind the fake ioeventfd: the write reaches the transport, which kicks. */
    bar_wr(f, NOTIFY, noff, 0, 2);
}

static void check_completed(Fx *f, uint64_t sector, uint8_t fill)
{
    uint32_t id, len;
    g_assert_true(fake_vq_pop_used(&f->vq, &id, &len));
    g_assert_cmpuint(len, ==, 1);
    g_assert_cmpuint(fake_blk_status(&f->vq, REQ_GPA), ==, 0);
    uint8_t buf[512];
    g_assert_cmpint(pread(f->img_fd, buf, 512, (off_t)sector * 512), ==, 512);
    for (unsigned i = 0; i < 512; i++) {
        g_assert_cmpuint(buf[i], ==, fill);
    }
}

static void test_msix(Fx *f, gconstpointer data)
{
    probe(f);
    /* The queue's ioeventfd is bound at its notify address as soon as BAR 0 decodes. */
    g_assert_cmpuint(f->irq.nioeventfds, ==, 1);
    g_assert_cmphex(f->irq.ioeventfds[0].addr, ==, f->bar0 + f->off[NOTIFY]);
    g_assert_cmpuint(f->irq.ioeventfds[0].len, ==, 2);
    init_device(f, true);
    /* Device config: capacity in 512-byte sectors, read as two dwords. */
    uint64_t cap = bar_rd(f, DEVICE, 0, 4) | (uint64_t)bar_rd(f, DEVICE, 4, 4) << 32;
    g_assert_cmpuint(cap, ==, IMG_SIZE / 512);

    write_sector(f, 3, 0x5a);
    g_assert_cmpuint(fake_msi_fired(&f->irq, 0, 5000), ==, 1);
    check_completed(f, 3, 0x5a);
    g_assert_cmphex(f->irq.addr[0], ==, 0xfee00000);
    g_assert_cmphex(f->irq.data[0], ==, 0x40);
    /* MSI-X on: the ISR is not used, INTx stays low. */
    g_assert_cmpuint(bar_rd(f, ISR, 0, 1), ==, 0);
    g_assert_cmpint(f->irq.gsi_level[pci_host_intx_gsi(1, 0)], ==, 0);

    /* Reset through the status register: the queue is disabled again. */
    bar_wr(f, COMMON, C_STATUS, 0, 1);
    g_assert_cmpuint(bar_rd(f, COMMON, C_STATUS, 1), ==, 0);
    g_assert_cmpuint(bar_rd(f, COMMON, C_QENABLE, 2), ==, 0);
    g_assert_cmphex(bar_rd(f, COMMON, C_MSIX, 2), ==, VIRTIO_NO_VECTOR);
}

static void test_intx(Fx *f, gconstpointer data)
{
    probe(f);
    init_device(f, false);
    unsigned gsi = pci_host_intx_gsi(1, 0);
    write_sector(f, 7, 0xc3);
    g_assert_true(fake_gsi_wait(&f->irq, gsi, true, 5000));
    check_completed(f, 7, 0xc3);
    /* Reading the ISR returns the queue bit, clears it and lowers the line (§4.1.4.5). */
    g_assert_cmpuint(bar_rd(f, ISR, 0, 1), ==, 1);
    g_assert_cmpint(f->irq.gsi_level[gsi], ==, 0);
    g_assert_cmpuint(bar_rd(f, ISR, 0, 1), ==, 0);
}

static void test_bar_move(Fx *f, gconstpointer data)
{
    probe(f);
    /* The guest moves BAR 0: the notify ioeventfd follows, the old one is gone. */
    cfg_wr(f, PCI_COMMAND, 0, 2);
    g_assert_cmpuint(f->irq.nioeventfds, ==, 0);
    cfg_wr(f, PCI_BAR0, 0xd0000000, 4);
    cfg_wr(f, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    g_assert_cmpuint(f->irq.nioeventfds, ==, 1);
    g_assert_cmphex(f->irq.ioeventfds[0].addr, ==, 0xd0000000 + f->off[NOTIFY]);
    f->bar0 = 0xd0000000;
    init_device(f, true);
    write_sector(f, 1, 0x11);
    g_assert_cmpuint(fake_msi_fired(&f->irq, 0, 5000), ==, 1);
    check_completed(f, 1, 0x11);
}

static void test_pci_cfg_window(Fx *f, gconstpointer data)
{
    probe(f);
    /* §4.1.4.9: BAR 0 through configuration space; num_queues is 1. */
    cfg_wr(f, f->cfg_cap + 4, 0, 1);
    cfg_wr(f, f->cfg_cap + 8, f->off[COMMON] + C_NUMQ, 4);
    cfg_wr(f, f->cfg_cap + 12, 2, 4);
    g_assert_cmpuint(cfg_rd(f, f->cfg_cap + 16, 2), ==, 1);
    /* A write through the window: device status ACKNOWLEDGE. */
    cfg_wr(f, f->cfg_cap + 8, f->off[COMMON] + C_STATUS, 4);
    cfg_wr(f, f->cfg_cap + 12, 1, 4);
    cfg_wr(f, f->cfg_cap + 16, VIRTIO_STATUS_ACKNOWLEDGE, 1);
    g_assert_cmpuint(bar_rd(f, COMMON, C_STATUS, 1), ==, VIRTIO_STATUS_ACKNOWLEDGE);
    /* A window outside BAR 0 or with a bad length does nothing. */
    cfg_wr(f, f->cfg_cap + 8, 0x100000, 4);
    cfg_wr(f, f->cfg_cap + 16, 0, 1);
    cfg_wr(f, f->cfg_cap + 8, f->off[COMMON] + C_STATUS, 4);
    cfg_wr(f, f->cfg_cap + 12, 3, 4);
    cfg_wr(f, f->cfg_cap + 16, 0, 4);
    g_assert_cmpuint(bar_rd(f, COMMON, C_STATUS, 1), ==, VIRTIO_STATUS_ACKNOWLEDGE);
}

static void test_bad_accesses(Fx *f, gconstpointer data)
{
    probe(f);
    /* Wrong widths on the common area are ignored; reads of them return zero. */
    bar_wr(f, COMMON, C_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 4);
    g_assert_cmpuint(bar_rd(f, COMMON, C_STATUS, 1), ==, 0);
    g_assert_cmpuint(bar_rd(f, COMMON, C_NUMQ, 4), ==, 0);
    /* Device config beyond its size, a notify for a queue that does not exist. */
    g_assert_cmpuint(bar_rd(f, DEVICE, 0x800, 4), ==, 0);
    bar_wr(f, NOTIFY, 0x100, 0, 2);
    /* A queue select past the last queue reads as size 0 and takes no settings. */
    bar_wr(f, COMMON, C_QSELECT, 9, 2);
    g_assert_cmpuint(bar_rd(f, COMMON, C_QSIZE, 2), ==, 0);
    bar_wr(f, COMMON, C_QENABLE, 1, 2);
    g_assert_cmpuint(bar_rd(f, COMMON, C_QENABLE, 2), ==, 0);
}

/* ---- save/restore ---- */

#define MOVED_BAR0 0xd0000000ULL

/* Device A as a driver leaves it: BAR 0 moved, MSI-X on, queue 0 live, one request done. */
static void drive_source(Fx *a)
{
    probe(a);
    uint64_t firmware_bar0 = a->bar0;
    cfg_wr(a, PCI_COMMAND, 0, 2);
    cfg_wr(a, PCI_BAR0, (uint32_t)MOVED_BAR0, 4);
    cfg_wr(a, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    a->bar0 = MOVED_BAR0;
    g_assert_cmphex(firmware_bar0, !=, MOVED_BAR0);
    init_device(a, true);
    /* Transport registers away from their reset values, and a pci_cfg window set up. */
    bar_wr(a, COMMON, C_DFSELECT, 1, 4);
    bar_wr(a, COMMON, C_GFSELECT, 1, 4);
    cfg_wr(a, a->cfg_cap + 8, a->off[COMMON] + C_NUMQ, 4);
    cfg_wr(a, a->cfg_cap + 12, 2, 4);
    write_sector(a, 3, 0x5a);
    g_assert_cmpuint(fake_msi_fired(&a->irq, 0, 5000), ==, 1);
    check_completed(a, 3, 0x5a);
    virtio_device_pause(virtio_pci_vdev(a->vp));
}

static GByteArray *save_vp(Fx *f)
{
    GByteArray *out = g_byte_array_new();
    virtio_pci_save(f->vp, out);
    return out;
}

/* What arrives with the state: guest RAM, and the driver's view of its rings. */
static void copy_guest(Fx *b, const Fx *a)
{
    memcpy(guest_mem_ptr(b->mem, 0, RAM_SIZE), guest_mem_ptr(a->mem, 0, RAM_SIZE), RAM_SIZE);
    b->vq = a->vq;
    b->vq.mem = b->mem;
    b->bar0 = a->bar0;
    memcpy(b->off, a->off, sizeof(b->off));
    b->notify_mult = a->notify_mult;
    b->cfg_cap = a->cfg_cap;
}

static bool load_vp(Fx *f, const uint8_t *data, size_t len, GError **error)
{
    StateIn in;
    state_in_init(&in, data, len);
    bool ok = virtio_pci_load(f->vp, &in, error);
    g_assert_cmpint(ok, ==, !in.bad);
    return ok && state_in_finish(&in, "virtio-pci", error);
}

/*
 * Pauses a, saves it and loads the state into b, set up fresh with a's guest
 * RAM; returns the state.
 */
static GByteArray *migrate_to(Fx *a, Fx *b)
{
    virtio_device_pause(virtio_pci_vdev(a->vp));
    GByteArray *saved = save_vp(a);
    fx_setup(b, NULL);
    copy_guest(b, a);
    g_autoptr(GError) err = NULL;
    g_assert_true(load_vp(b, saved->data, saved->len, &err));
    g_assert_no_error(err);
    return saved;
}

static void test_save_load(Fx *a, gconstpointer data)
{
    drive_source(a);
    g_autoptr(GByteArray) saved = save_vp(a);

    Fx b;
    fx_setup(&b, NULL);
    uint64_t firmware_bar0 = cfg_rd(&b, PCI_BAR0, 4) & ~0xfULL;
    copy_guest(&b, a);
    g_autoptr(GError) err = NULL;
    g_assert_true(load_vp(&b, saved->data, saved->len, &err));
    g_assert_no_error(err);

    /* The same state comes out again, byte for byte. */
    g_autoptr(GByteArray) again = save_vp(&b);
    g_assert_cmpmem(saved->data, saved->len, again->data, again->len);
    /* Configuration space as on A (the pci_cfg data dword reads through the window). */
    for (unsigned reg = 0; reg < PCI_CONFIG_SIZE; reg += 4) {
        g_assert_cmphex(cfg_rd(&b, reg, 4), ==, cfg_rd(a, reg, 4));
    }
    g_assert_cmpuint(cfg_rd(&b, b.cfg_cap + 16, 2), ==, 1); /* num_queues through the window */
    /* BAR 0 decodes at the moved address, not at the firmware's, notifications follow it. */
    uint8_t buf[1];
    g_assert_false(bus_read(b.mmio, firmware_bar0 + b.off[COMMON] + C_STATUS, buf, 1));
    uint8_t live = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                   VIRTIO_STATUS_DRIVER_OK;
    g_assert_cmpuint(bar_rd(&b, COMMON, C_STATUS, 1), ==, live);
    g_assert_cmpuint(bar_rd(&b, COMMON, C_DFSELECT, 4), ==, 1);
    g_assert_cmpuint(bar_rd(&b, COMMON, C_QMSIX, 2), ==, 0);
    g_assert_cmpuint(bar_rd(&b, COMMON, C_MSIX, 2), ==, 1);
    g_assert_cmpuint(b.irq.nioeventfds, ==, 1);
    g_assert_cmphex(b.irq.ioeventfds[0].addr, ==, MOVED_BAR0 + b.off[NOTIFY]);
    /* Both vectors routed where A's were. */
    for (unsigned v = 0; v < 2; v++) {
        g_assert_cmphex(b.irq.addr[v], ==, 0xfee00000);
        g_assert_cmphex(b.irq.data[v], ==, 0x40 + v);
    }

    /* Loaded paused: a request waits for the resume, then completes in the next used slot. */
    write_sector(&b, 5, 0x77);
    g_assert_cmpuint(fake_msi_fired(&b.irq, 0, 100), ==, 0);
    g_assert_cmpuint(fake_vq_used_idx(&b.vq), ==, 1);
    virtio_device_resume(virtio_pci_vdev(b.vp));
    g_assert_cmpuint(fake_msi_fired(&b.irq, 0, 5000), ==, 1);
    g_assert_cmpuint(fake_vq_used_idx(&b.vq), ==, 2);
    check_completed(&b, 5, 0x77);
    /* And the next one too, kicked while live. */
    write_sector(&b, 6, 0x78);
    g_assert_cmpuint(fake_msi_fired(&b.irq, 0, 5000), ==, 1);
    check_completed(&b, 6, 0x78);
    fx_teardown(&b, NULL);
}

/*
 * A driver that clears DRIVER_OK or FEATURES_OK without a reset (a driver
 * error, §2.1.2) changes nothing: the device stays live, the queue keeps
 * working, and the state saves and loads (it used to leave a live device
 * with DRIVER_OK clear, which the load refused, and to re-activate running
 * queues when DRIVER_OK came back).
 */
static void test_status_clear(Fx *a, gconstpointer data)
{
    probe(a);
    init_device(a, true);
    uint8_t live = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                   VIRTIO_STATUS_DRIVER_OK;
    write_sector(a, 3, 0x33);
    bar_wr(a, COMMON, C_STATUS, live & ~VIRTIO_STATUS_DRIVER_OK, 1);
    g_assert_cmpuint(bar_rd(a, COMMON, C_STATUS, 1), ==, live);
    bar_wr(a, COMMON, C_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
    g_assert_cmpuint(bar_rd(a, COMMON, C_STATUS, 1), ==, live);
    bar_wr(a, COMMON, C_STATUS, live, 1);
    g_assert_cmpuint(fake_msi_fired(&a->irq, 0, 5000), ==, 1);
    check_completed(a, 3, 0x33);
    write_sector(a, 4, 0x44);
    g_assert_cmpuint(fake_msi_fired(&a->irq, 0, 5000), ==, 1);
    check_completed(a, 4, 0x44);
    Fx b;
    g_byte_array_unref(migrate_to(a, &b));
    g_assert_cmpuint(bar_rd(&b, COMMON, C_STATUS, 1), ==, live);
    fx_teardown(&b, NULL);
}

/* BARs that traded places on the source: the fresh device has them the other way round. */
static void test_save_load_swapped_bars(Fx *a, gconstpointer data)
{
    probe(a);
    uint32_t bar0 = cfg_rd(a, PCI_BAR0, 4) & ~0xfU;
    uint32_t bar1 = cfg_rd(a, PCI_BAR0 + 4, 4) & ~0xfU;
    cfg_wr(a, PCI_COMMAND, 0, 2);
    cfg_wr(a, PCI_BAR0, bar1, 4);
    cfg_wr(a, PCI_BAR0 + 4, bar0, 4);
    cfg_wr(a, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    a->bar0 = bar1;
    Fx b;
    g_byte_array_unref(migrate_to(a, &b));
    g_assert_cmpuint(bar_rd(&b, COMMON, C_NUMQ, 2), ==, 1);
    uint8_t buf[4];
    g_assert_true(bus_read(b.mmio, bar0, buf, 4)); /* the MSI-X table: vector 0 address */
    g_assert_cmpuint(b.irq.nioeventfds, ==, 1);
    g_assert_cmphex(b.irq.ioeventfds[0].addr, ==, bar1 + b.off[NOTIFY]);
    fx_teardown(&b, NULL);
}

/*
 * BAR 0 moved onto BAR 1: BAR 1 keeps the range and BAR 0 waits, unmapped.
 * The state saves and loads as it is (the load used to map BAR 0 first and
 * then refuse because BAR 1 could not be), and when BAR 1 moves away BAR 0
 * comes in, on both sides.
 */
static void test_save_load_overlapping_bars(Fx *a, gconstpointer data)
{
    probe(a);
    uint32_t bar1 = cfg_rd(a, PCI_BAR0 + 4, 4) & ~0xfU;
    cfg_wr(a, PCI_BAR0, bar1, 4);
    a->bar0 = bar1;
    uint8_t buf[4];
    g_assert_true(bus_read(a->mmio, bar1, buf, 4)); /* BAR 1: the MSI-X table */
    g_assert_cmpuint(bus_data_get(buf, 4), ==, 0);
    Fx b;
    g_autoptr(GByteArray) saved = migrate_to(a, &b);
    g_autoptr(GByteArray) again = save_vp(&b);
    g_assert_cmpmem(saved->data, saved->len, again->data, again->len);
    b.bar0 = bar1;
    for (Fx *f = a; f; f = f == a ? &b : NULL) {
        cfg_wr(f, PCI_BAR0 + 4, MOVED_BAR0, 4);
        g_assert_cmpuint(bar_rd(f, COMMON, C_NUMQ, 2), ==, 1); /* BAR 0 decodes now */
    }
    fx_teardown(&b, NULL);
}

/* A second virtio-blk function on f's host, in slot 2, on an image of its own. */
typedef struct {
    VirtioPci *vp;
    char *img;
    int fd;
} Second;

#define DEVFN2 (2 << 3)

static void second_add(Fx *f, Second *s)
{
    s->vp = blk_function(f, "d1", &s->img, &s->fd);
}

static void second_free(Second *s)
{
    virtio_pci_free(s->vp);
    close(s->fd);
    unlink(s->img);
    g_free(s->img);
}

/*
 * Two functions whose BAR 0s traded places: with both taken off the buses
 * first (as the machine's load does), each loads where the other was.
 */
static void test_save_load_bars_traded_between(Fx *a, gconstpointer data)
{
    Second a2;
    second_add(a, &a2);
    probe(a);
    uint32_t bar0 = cfg_rd(a, PCI_BAR0, 4) & ~0xfU;
    uint32_t other = fake_cfg_read(a->pio, DEVFN2, PCI_BAR0, 4) & ~0xfU;
    g_assert_cmphex(bar0, !=, other);
    cfg_wr(a, PCI_COMMAND, 0, 2);
    fake_cfg_write(a->pio, DEVFN2, PCI_COMMAND, 0, 2);
    cfg_wr(a, PCI_BAR0, other, 4);
    fake_cfg_write(a->pio, DEVFN2, PCI_BAR0, bar0, 4);
    cfg_wr(a, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    fake_cfg_write(a->pio, DEVFN2, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    virtio_device_pause(virtio_pci_vdev(a->vp));
    virtio_device_pause(virtio_pci_vdev(a2.vp));
    g_autoptr(GByteArray) saved = save_vp(a);
    g_autoptr(GByteArray) saved2 = g_byte_array_new();
    virtio_pci_save(a2.vp, saved2);

    Fx b;
    fx_setup(&b, NULL);
    Second b2;
    second_add(&b, &b2);
    pci_device_unmap(virtio_pci_device(b.vp));
    pci_device_unmap(virtio_pci_device(b2.vp));
    g_autoptr(GError) err = NULL;
    g_assert_true(load_vp(&b, saved->data, saved->len, &err));
    g_assert_no_error(err);
    StateIn in;
    state_in_init(&in, saved2->data, saved2->len);
    g_assert_true(virtio_pci_load(b2.vp, &in, &err));
    g_assert_no_error(err);
    b.bar0 = other;
    probe(&b);
    g_assert_cmphex(b.bar0, ==, other);
    g_assert_cmpuint(bar_rd(&b, COMMON, C_NUMQ, 2), ==, 1);
    second_free(&b2);
    fx_teardown(&b, NULL);
    second_free(&a2);
}

/* A device the driver never touched saves and loads too, and stays usable. */
static void test_save_load_fresh(Fx *a, gconstpointer data)
{
    probe(a);
    virtio_device_pause(virtio_pci_vdev(a->vp));
    g_autoptr(GByteArray) saved = save_vp(a);
    Fx b;
    fx_setup(&b, NULL);
    copy_guest(&b, a);
    g_autoptr(GError) err = NULL;
    g_assert_true(load_vp(&b, saved->data, saved->len, &err));
    g_autoptr(GByteArray) again = save_vp(&b);
    g_assert_cmpmem(saved->data, saved->len, again->data, again->len);
    virtio_device_resume(virtio_pci_vdev(b.vp));
    init_device(&b, true);
    write_sector(&b, 2, 0x22);
    g_assert_cmpuint(fake_msi_fired(&b.irq, 0, 5000), ==, 1);
    check_completed(&b, 2, 0x22);
    fx_teardown(&b, NULL);
}

/* Where the parts of the saved state start, from the parts' own save functions. */
typedef struct {
    size_t msix;      /* after the PCI function */
    size_t transport; /* after MSI-X */
    size_t virtio;    /* the virtio device */
    size_t queue0;
} SavedLayout;

static SavedLayout saved_layout(Fx *f, size_t total)
{
    g_autoptr(GByteArray) pci = g_byte_array_new();
    g_autoptr(GByteArray) msix = g_byte_array_new();
    g_autoptr(GByteArray) vdev = g_byte_array_new();
    PciDevice *d = virtio_pci_device(f->vp);
    pci_device_save(d, pci);
    msix_save(d->msix, msix);
    virtio_device_save(virtio_pci_vdev(f->vp), vdev);
    SavedLayout l = {.msix = pci->len, .transport = pci->len + msix->len};
    l.virtio = total - vdev->len;
    /* id, host and guest features, status, generation, config size and bytes, live, nqueues. */
    l.queue0 = l.virtio + 2 + 8 + 8 + 1 + 1 + 4 + virtio_pci_vdev(f->vp)->config_size + 1 + 2;
    return l;
}

typedef enum {
    SPOIL_TRUNCATE_PCI,
    SPOIL_TRUNCATE_END,
    SPOIL_LEFTOVER,
    SPOIL_VENDOR,
    SPOIL_HOST_FEATURES,
    SPOIL_GUEST_FEATURES,
    SPOIL_MSIX_CTRL,
    SPOIL_QUEUE_VECTOR,
    SPOIL_ISR,
    SPOIL_CONFIG,
    SPOIL_QUEUE_SIZE,
    SPOIL_QUEUE_DESC,
} Spoil;

static const struct {
    const char *name;
    Spoil spoil;
    const char *msg;
} bad_states[] = {
    {"truncated-pci", SPOIL_TRUNCATE_PCI, "PCI configuration"},
    {"truncated-end", SPOIL_TRUNCATE_END, "truncated"},
    {"leftover", SPOIL_LEFTOVER, "bytes left over"},
    {"vendor-id", SPOIL_VENDOR, "PCI configuration"},
    {"host-features", SPOIL_HOST_FEATURES, "another device"},
    {"guest-features", SPOIL_GUEST_FEATURES, "FEATURES_OK"},
    {"msix-vector-control", SPOIL_MSIX_CTRL, "MSI-X"},
    {"queue-vector", SPOIL_QUEUE_VECTOR, "transport registers"},
    {"isr", SPOIL_ISR, "transport registers"},
    {"config-space", SPOIL_CONFIG, "config space"},
    {"queue-size", SPOIL_QUEUE_SIZE, "power of two"},
    {"queue-desc-outside-ram", SPOIL_QUEUE_DESC, "outside guest RAM"},
};

static void put_le(uint8_t *p, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void test_load_bad(Fx *a, gconstpointer data)
{
    unsigned which = GPOINTER_TO_UINT(data);
    drive_source(a);
    g_autoptr(GByteArray) st = save_vp(a);
    SavedLayout l = saved_layout(a, st->len);
    g_assert_cmpuint(st->data[l.virtio], ==, VIRTIO_ID_BLOCK);
    g_assert_cmpuint(st->data[l.queue0] | st->data[l.queue0 + 1] << 8, ==, 256); /* max_size */
    size_t len = st->len;
    switch (bad_states[which].spoil) {
    case SPOIL_TRUNCATE_PCI:
        len = 100;
        break;
    case SPOIL_TRUNCATE_END:
        len--;
        break;
    case SPOIL_LEFTOVER:
        g_byte_array_append(st, (const uint8_t *)"x", 1);
        len++;
        break;
    case SPOIL_VENDOR:
        st->data[2 + PCI_VENDOR_ID] ^= 1;
        break;
    case SPOIL_HOST_FEATURES:
        st->data[l.virtio + 2] ^= 0x02;
        break;
    case SPOIL_GUEST_FEATURES: /* bit 31, not offered */
        st->data[l.virtio + 10 + 3] ^= 0x80;
        break;
    case SPOIL_MSIX_CTRL: /* vector 0's control word: a reserved bit */
        st->data[l.msix + 4 + 12] = 2;
        break;
    case SPOIL_QUEUE_VECTOR:
        st->data[l.transport + 14] = 7;
        break;
    case SPOIL_ISR:
        st->data[l.transport + 16] = 4;
        break;
    case SPOIL_CONFIG: /* capacity */
        st->data[l.virtio + 24] ^= 1;
        break;
    case SPOIL_QUEUE_SIZE:
        put_le(st->data + l.queue0 + 2, 12, 2);
        break;
    case SPOIL_QUEUE_DESC:
        put_le(st->data + l.queue0 + 5, RAM_SIZE, 8);
        break;
    }

    Fx b;
    fx_setup(&b, NULL);
    copy_guest(&b, a);
    g_autoptr(GError) err = NULL;
    g_assert_false(load_vp(&b, st->data, len, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, bad_states[which].msg)) {
        g_error("'%s' does not mention '%s'", err->message, bad_states[which].msg);
    }
    fx_teardown(&b, NULL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fx, NULL, fx_setup, fn, fx_teardown)
    ADD("/virtio-pci/msix", test_msix);
    ADD("/virtio-pci/intx", test_intx);
    ADD("/virtio-pci/bar-move", test_bar_move);
    ADD("/virtio-pci/pci-cfg-window", test_pci_cfg_window);
    ADD("/virtio-pci/bad-accesses", test_bad_accesses);
    ADD("/virtio-pci/save-load", test_save_load);
    ADD("/virtio-pci/save-load-fresh", test_save_load_fresh);
    ADD("/virtio-pci/save-load-swapped-bars", test_save_load_swapped_bars);
    ADD("/virtio-pci/save-load-overlapping-bars", test_save_load_overlapping_bars);
    ADD("/virtio-pci/save-load-bars-traded-between", test_save_load_bars_traded_between);
    ADD("/virtio-pci/status-clear", test_status_clear);
#undef ADD
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_states); i++) {
        g_autofree char *path = g_strdup_printf("/virtio-pci/load-bad/%s", bad_states[i].name);
        g_test_add(path, Fx, GUINT_TO_POINTER(i), fx_setup, test_load_bad, fx_teardown);
    }
    return g_test_run();
}
