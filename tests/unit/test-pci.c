/* SPDX-License-Identifier: GPL-2.0-or-later */
/* PCI configuration space, BARs, MSI-X and the host bridge, without KVM. */
#include "machine/pci-host.h"
#include "mem/bus.h"
#include "pci/msix.h"
#include "pci/pci.h"
#include "pci-fake.h"

#include <string.h>
#include <unistd.h>

/* How many times vector v fired since the last call (no waiting: delivery is synchronous). */
static uint64_t fired(FakeIrq *f, unsigned v)
{
    return fake_msi_fired(f, v, 0);
}

/* ---- a device with a memory BAR that counts its accesses ---- */

typedef struct {
    PciDevice pci;
    unsigned reads, writes;
    uint64_t last_offset;
} TestDev;

static void tdev_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
    TestDev *t = opaque;
    t->reads++;
    t->last_offset = off;
    memset(data, 0xab, len);
}

static void tdev_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
    TestDev *t = opaque;
    t->writes++;
    t->last_offset = off;
}

static const BusOps tdev_ops = {.read = tdev_read, .write = tdev_write};

static void tdev_init(TestDev *t)
{
    memset(t, 0, sizeof(*t));
    PciDeviceInfo info = {.name = "test",
                          .vendor_id = 0x1234,
                          .device_id = 0x5678,
                          .class_code = 0xff0000,
                          .intx = true};
    pci_device_init(&t->pci, &info);
    g_assert_true(pci_register_bar(&t->pci, 0, PCI_BAR_KIND_MEM32, 0x4000, &tdev_ops, t, NULL));
    g_assert_true(pci_register_bar(&t->pci, 2, PCI_BAR_KIND_MEM64, 0x10000, &tdev_ops, t, NULL));
}

typedef struct {
    Bus *pio, *mmio;
    PciHost *host;
    FakeIrq irq;
    TestDev dev;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    memset(f, 0, sizeof(*f));
    f->pio = bus_new("pio");
    f->mmio = bus_new("mmio");
    f->host = pci_host_new(f->pio, f->mmio, fake_gsi, &f->irq, NULL);
    g_assert_nonnull(f->host);
    tdev_init(&f->dev);
    g_assert_true(pci_host_plug(f->host, &f->dev.pci, 0, NULL));
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    pci_device_cleanup(&f->dev.pci);
    pci_host_free(f->host);
    bus_free(f->pio);
    bus_free(f->mmio);
}

#define DEV_DEVFN (1 << 3) /* the first free slot is 1: the host bridge is 00.0 */

static void test_enumerate(Fixture *f, gconstpointer data)
{
    /* The host bridge at 00.0, our device at 01.0, nothing else. */
    g_assert_cmphex(fake_cfg_read(f->pio, 0, PCI_REVISION_ID, 4) >> 8, ==, 0x060000);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, 0, 4), ==, 0x56781234);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, PCI_DEVICE_ID, 2), ==, 0x5678);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN + 1, 0, 4), ==, 0xffffffff); /* function 1 */
    g_assert_cmphex(fake_cfg_read(f->pio, 2 << 3, 0, 2), ==, 0xffff);
    /* Without the enable bit, CONFIG_DATA is not a config cycle. */
    uint8_t buf[4];
    bus_data_set(buf, 4, DEV_DEVFN << 8);
    bus_write(f->pio, PCI_CONFIG_ADDR_PORT, buf, 4);
    bus_read(f->pio, PCI_CONFIG_DATA_PORT, buf, 4);
    g_assert_cmphex(bus_data_get(buf, 4), ==, 0xffffffff);
    /* ECAM reaches the same registers; offsets past 256 read as zero. */
    bus_read(f->mmio, PCI_ECAM_BASE + (DEV_DEVFN << 12), buf, 4);
    g_assert_cmphex(bus_data_get(buf, 4), ==, 0x56781234);
    bus_read(f->mmio, PCI_ECAM_BASE + (DEV_DEVFN << 12) + 0x100, buf, 4);
    g_assert_cmphex(bus_data_get(buf, 4), ==, 0);
    /* The interrupt line names the GSI the _PRT gives slot 1 INTA. */
    g_assert_cmpuint(fake_cfg_read(f->pio, DEV_DEVFN, PCI_INTERRUPT_LINE, 1), ==,
                     pci_host_intx_gsi(1, 0));
    g_assert_cmpuint(fake_cfg_read(f->pio, DEV_DEVFN, PCI_INTERRUPT_PIN, 1), ==, 1);
}

static void test_bar_sizing(Fixture *f, gconstpointer data)
{
    /* Firmware placed BAR 0 in the 32-bit window, aligned, and turned decoding on. */
    uint32_t bar0 = fake_cfg_read(f->pio, DEV_DEVFN, PCI_BAR0, 4);
    g_assert_cmphex(bar0 & 0x3fff, ==, 0);
    g_assert_cmphex(bar0, >=, PCI_MMIO32_BASE);
    g_assert_true(fake_cfg_read(f->pio, DEV_DEVFN, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
    uint8_t buf[4];
    g_assert_true(bus_read(f->mmio, bar0 + 0x10, buf, 4));
    g_assert_cmpuint(f->dev.reads, ==, 1);
    g_assert_cmphex(f->dev.last_offset, ==, 0x10);

    /* The sizing protocol, as Linux does it: decode off, write ones, read the mask back. */
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_COMMAND, 0, 2);
    g_assert_false(bus_read(f->mmio, bar0 + 0x10, buf, 4)); /* no longer decoded */
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_BAR0, 0xffffffff, 4);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, PCI_BAR0, 4), ==, 0xffffc000);
    /* A 64-bit BAR: type bits 0b100, the upper half all writable. */
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_BAR0 + 8, 0xffffffff, 4);
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_BAR0 + 12, 0xffffffff, 4);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, PCI_BAR0 + 8, 4), ==, 0xffff0004);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, PCI_BAR0 + 12, 4), ==, 0xffffffff);
    /* Unimplemented BARs read as zero and stay so. */
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_BAR0 + 4, 0xffffffff, 4);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, PCI_BAR0 + 4, 4), ==, 0);
    /* Read-only header fields ignore writes. */
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_VENDOR_ID, 0, 4);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, 0, 4), ==, 0x56781234);

    /* Relocation: a new address, decoding back on, accesses arrive at the new place. */
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_BAR0, 0xd0000000, 4);
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_BAR0 + 8, 0xd0010000, 4);
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_BAR0 + 12, 0, 4);
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_false(bus_read(f->mmio, bar0 + 0x10, buf, 4));
    g_assert_true(bus_read(f->mmio, 0xd0000020, buf, 4));
    g_assert_cmphex(f->dev.last_offset, ==, 0x20);
    g_assert_true(bus_write(f->mmio, 0xd0010008, buf, 4));
    g_assert_cmphex(f->dev.last_offset, ==, 0x8);
    g_assert_cmphex(pci_bar_addr(&f->dev.pci, 2), ==, 0xd0010000);
    /* A BAR moved over another range is left unmapped, not overlapping. */
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_BAR0 + 8, 0xd0000000, 4);
    g_assert_true(bus_read(f->mmio, 0xd0000020, buf, 4));
    g_assert_false(bus_read(f->mmio, 0xd0010008, buf, 4));
    /* Machine reset: firmware's addresses again. */
    pci_host_reset(f->host);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, PCI_BAR0, 4), ==, bar0);
    g_assert_true(bus_read(f->mmio, bar0, buf, 4));
}

static void test_capabilities(Fixture *f, gconstpointer data)
{
    PciDevice *d = &f->dev.pci;
    uint8_t a = pci_add_capability(d, PCI_CAP_ID_VNDR, 16);
    uint8_t b = pci_add_capability(d, PCI_CAP_ID_VNDR, 20);
    Msix *m = msix_new(d, 3, 0, 0x1000, 0x2000, &fake_msi_ops, &f->irq, NULL);
    g_assert_nonnull(m);
    g_assert_true(fake_cfg_read(f->pio, DEV_DEVFN, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    /* Walk the list as a driver does: ids in order, each pointer dword aligned, then 0. */
    uint8_t want[] = {PCI_CAP_ID_VNDR, PCI_CAP_ID_VNDR, PCI_CAP_ID_MSIX};
    uint8_t ptr = (uint8_t)fake_cfg_read(f->pio, DEV_DEVFN, PCI_CAPABILITY_LIST, 1);
    unsigned n = 0;
    while (ptr) {
        g_assert_cmpuint(n, <, G_N_ELEMENTS(want));
        g_assert_cmpuint(ptr & 3, ==, 0);
        g_assert_cmpuint(ptr, >=, 0x40);
        g_assert_cmpuint(fake_cfg_read(f->pio, DEV_DEVFN, ptr, 1), ==, want[n]);
        ptr = (uint8_t)fake_cfg_read(f->pio, DEV_DEVFN, ptr + 1, 1);
        n++;
    }
    g_assert_cmpuint(n, ==, 3);
    g_assert_cmpuint(a, <, b);
    g_assert_cmpuint(b, <, msix_cap_offset(m));
    /* MSI-X message control: table size N-1, table and PBA in BAR 0. */
    uint8_t c = msix_cap_offset(m);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, c + 2, 2), ==, 2);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, c + 4, 4), ==, 0x1000);
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, c + 8, 4), ==, 0x2000);
    /* Capabilities do not overflow the 256-byte space. */
    while (pci_add_capability(d, PCI_CAP_ID_VNDR, 16)) {
    }
    g_assert_cmpuint(pci_add_capability(d, PCI_CAP_ID_VNDR, 16), ==, 0);
}

static void table_write(Msix *m, unsigned vec, unsigned field, uint32_t v)
{
    uint8_t buf[4];
    bus_data_set(buf, 4, v);
    msix_table_write(m, vec * MSIX_ENTRY_SIZE + field, buf, 4);
}

static uint64_t pba(Msix *m)
{
    uint8_t buf[8];
    msix_pba_read(m, 0, buf, 8);
    return bus_data_get(buf, 8);
}

static void test_msix_masking(Fixture *f, gconstpointer data)
{
    PciDevice *d = &f->dev.pci;
    Msix *m = msix_new(d, 4, 0, 0x1000, 0x2000, &fake_msi_ops, &f->irq, NULL);
    g_assert_nonnull(m);
    uint8_t c = msix_cap_offset(m);
    /* Off: notifications go nowhere (the transport uses INTx instead). */
    msix_notify(m, 1);
    g_assert_cmpuint(fired(&f->irq, 1), ==, 0);
    g_assert_cmphex(pba(m), ==, 0);

    /* Enabled with every vector masked, as at power-on: the notification is pending. */
    fake_cfg_write(f->pio, DEV_DEVFN, c + 2, 0x8000, 2);
    g_assert_true(msix_enabled(m));
    msix_notify(m, 1);
    g_assert_cmpuint(fired(&f->irq, 1), ==, 0);
    g_assert_cmphex(pba(m), ==, 0x2);

    /* Program the vector: the route follows the table. */
    table_write(m, 1, 0, 0xfee00000);
    table_write(m, 1, 4, 0);
    table_write(m, 1, 8, 0x4041);
    g_assert_cmphex(f->irq.addr[1], ==, 0xfee00000);
    g_assert_cmphex(f->irq.data[1], ==, 0x4041);
    uint8_t buf[4];
    msix_table_read(m, 1 * MSIX_ENTRY_SIZE + 8, buf, 4);
    g_assert_cmphex(bus_data_get(buf, 4), ==, 0x4041);
    msix_table_read(m, 1 * MSIX_ENTRY_SIZE + 12, buf, 4);
    g_assert_cmphex(bus_data_get(buf, 4), ==, 1); /* still masked */
    /* Unmask: the pending message is delivered once, the pending bit cleared. */
    table_write(m, 1, 12, 0);
    g_assert_cmpuint(fired(&f->irq, 1), ==, 1);
    g_assert_cmphex(pba(m), ==, 0);
    msix_notify(m, 1);
    g_assert_cmpuint(fired(&f->irq, 1), ==, 1);

    /* Function mask holds everything back until cleared. */
    fake_cfg_write(f->pio, DEV_DEVFN, c + 2, 0xc000, 2);
    msix_notify(m, 1);
    g_assert_cmpuint(fired(&f->irq, 1), ==, 0);
    g_assert_cmphex(pba(m), ==, 0x2);
    fake_cfg_write(f->pio, DEV_DEVFN, c + 2, 0x8000, 2);
    g_assert_cmpuint(fired(&f->irq, 1), ==, 1);
    g_assert_cmphex(pba(m), ==, 0);
    /* The table size field is read-only. */
    g_assert_cmphex(fake_cfg_read(f->pio, DEV_DEVFN, c + 2, 2), ==, 0x8003);

    /* Out-of-range vectors and misaligned table accesses are ignored. */
    msix_notify(m, 4);
    bus_data_set(buf, 2, 0);
    msix_table_write(m, 1 * MSIX_ENTRY_SIZE + 12, buf, 2);
    msix_table_read(m, 1 * MSIX_ENTRY_SIZE + 12, buf, 4);
    g_assert_cmphex(bus_data_get(buf, 4), ==, 0);
    table_write(m, 64, 0, 0x1234); /* past the table */

    /* Reset: masked, disabled, nothing pending. */
    msix_reset(m);
    g_assert_false(msix_enabled(m));
    msix_table_read(m, 1 * MSIX_ENTRY_SIZE + 12, buf, 4);
    g_assert_cmphex(bus_data_get(buf, 4), ==, 1);
}

static void test_intx(Fixture *f, gconstpointer data)
{
    unsigned gsi = pci_host_intx_gsi(1, 0);
    pci_set_intx(&f->dev.pci, true);
    g_assert_cmpuint(f->irq.gsi_level[gsi], ==, 1);
    g_assert_true(fake_cfg_read(f->pio, DEV_DEVFN, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    /* INTX_DISABLE masks the line without forgetting the device's level. */
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE,
                   2);
    g_assert_cmpuint(f->irq.gsi_level[gsi], ==, 0);
    g_assert_true(fake_cfg_read(f->pio, DEV_DEVFN, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    fake_cfg_write(f->pio, DEV_DEVFN, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_cmpuint(f->irq.gsi_level[gsi], ==, 1);

    /* A second device whose INTA shares the GSI (slot 9): the line is the OR of both. */
    TestDev other;
    tdev_init(&other);
    PciDevice fillers[7];
    for (unsigned i = 0; i < G_N_ELEMENTS(fillers); i++) {
        PciDeviceInfo info = {.name = "filler", .vendor_id = 1, .device_id = 1};
        pci_device_init(&fillers[i], &info);
        g_assert_true(pci_host_plug(f->host, &fillers[i], 0, NULL));
    }
    g_assert_true(pci_host_plug(f->host, &other.pci, 0, NULL));
    g_assert_cmpuint(pci_host_intx_gsi(9, 0), ==, gsi);
    pci_set_intx(&other.pci, true);
    pci_set_intx(&f->dev.pci, false);
    g_assert_cmpuint(f->irq.gsi_level[gsi], ==, 1);
    pci_set_intx(&other.pci, false);
    g_assert_cmpuint(f->irq.gsi_level[gsi], ==, 0);
    pci_device_cleanup(&other.pci);
    for (unsigned i = 0; i < G_N_ELEMENTS(fillers); i++) {
        pci_device_cleanup(&fillers[i]);
    }
}

/* -device ...,addr=: a caller's slot is kept from devices placed automatically. */
static void test_slots(Fixture *f, gconstpointer data)
{
    PciDevice a, b, c;
    PciDeviceInfo info = {.name = "filler", .vendor_id = 1, .device_id = 1};
    pci_device_init(&a, &info);
    pci_device_init(&b, &info);
    pci_device_init(&c, &info);
    pci_host_reserve(f->host, 2);
    g_assert_true(pci_host_plug(f->host, &a, 0, NULL)); /* 1 is f->dev's, 2 reserved */
    g_assert_cmpuint(a.devfn, ==, 3 << 3);
    g_assert_true(pci_host_plug(f->host, &b, 2, NULL));
    g_assert_cmpuint(b.devfn, ==, 2 << 3);
    g_autoptr(GError) err = NULL;
    g_assert_false(pci_host_plug(f->host, &c, 3, &err));
    g_assert_cmpstr(err->message, ==,
                    "PCI: slot 3 function 0 not available for filler, in use by filler");
    g_clear_error(&err);
    g_assert_false(pci_host_plug(f->host, &c, 32, &err));
    g_assert_nonnull(strstr(err->message, "slot 32"));
    g_assert_cmphex(fake_cfg_read(f->pio, 2 << 3, PCI_VENDOR_ID, 2), ==, 1);
    pci_device_cleanup(&a);
    pci_device_cleanup(&b);
    pci_device_cleanup(&c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/pci/host/enumerate", test_enumerate);
    ADD("/pci/bar/sizing", test_bar_sizing);
    ADD("/pci/capabilities", test_capabilities);
    ADD("/pci/msix/masking", test_msix_masking);
    ADD("/pci/intx", test_intx);
    ADD("/pci/host/slots", test_slots);
#undef ADD
    return g_test_run();
}
