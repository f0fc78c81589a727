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

static void fx_setup(Fx *f, gconstpointer data)
{
    memset(f, 0, sizeof(*f));
    f->mem = guest_mem_new(RAM_SIZE, RAM_SIZE, NULL);
    g_assert_nonnull(f->mem);
    f->pio = bus_new("pio");
    f->mmio = bus_new("mmio");
    f->host = pci_host_new(f->pio, f->mmio, fake_gsi, &f->irq, NULL);
    g_assert_nonnull(f->host);
    f->img_fd = g_file_open_tmp("qlite-vpci-XXXXXX.img", &f->img, NULL);
    g_assert_cmpint(f->img_fd, >=, 0);
    g_assert_cmpint(ftruncate(f->img_fd, IMG_SIZE), ==, 0);
    DriveConfig cfg = {.id = (char *)"d0", .file = f->img, .format = (char *)"raw"};
    g_autoptr(GError) err = NULL;
    VirtioDevice *vdev = virtio_blk_new(&cfg, f->mem, &err);
    g_assert_no_error(err);
    static const VirtioPciHostOps host_ops = {.ioeventfd = fake_ioeventfd};
    f->vp = virtio_pci_new(vdev, &host_ops, &f->irq, &fake_msi_ops, &f->irq, &err);
    g_assert_no_error(err);
    g_assert_true(pci_host_plug(f->host, virtio_pci_device(f->vp), &err));
    g_assert_no_error(err);
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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fx, NULL, fx_setup, fn, fx_teardown)
    ADD("/virtio-pci/msix", test_msix);
    ADD("/virtio-pci/intx", test_intx);
    ADD("/virtio-pci/bar-move", test_bar_move);
    ADD("/virtio-pci/pci-cfg-window", test_pci_cfg_window);
    ADD("/virtio-pci/bad-accesses", test_bad_accesses);
#undef ADD
    return g_test_run();
}
