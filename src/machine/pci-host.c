/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/pci-host.h"
#include "util/error.h"

#include <string.h>

/* CONFIG_ADDRESS, PCI 3.0 §3.2.2.3.2: enable, bus, device, function, register. */
#define CFG_ADDR_ENABLE 0x80000000U

struct PciHost {
    Bus *pio;
    Bus *mmio;
    PciHostIrqFn set_irq;
    void *irq_opaque;

    PciDevice bridge; /* 00.0 */
    PciDevice *slots[PCI_HOST_SLOTS];
    uint32_t reserved; /* a bit per slot a caller placed a device in */
    uint64_t firmware_bar[PCI_HOST_SLOTS][PCI_NUM_BARS];
    uint64_t mmio_next;
    bool guest_firmware; /* the guest's firmware places the BARs */

    GMutex lock; /* config address latch and INTx levels */
    uint32_t config_addr;
    /* Per GSI, a bit per slot asserting it: shared level-triggered lines are ORed. */
    uint32_t intx_asserted[PCI_INTX_GSI_COUNT];
};

unsigned pci_host_intx_gsi(unsigned slot, unsigned pin)
{
    return PCI_INTX_GSI_BASE + (slot + pin) % PCI_INTX_GSI_COUNT;
}

static PciDevice *pci_host_device(PciHost *h, unsigned devfn)
{
    /* Single-function devices only: functions 1-7 are absent. */
    if (devfn & 7) {
        return NULL;
    }
    return h->slots[devfn >> 3];
}

static uint32_t pci_host_cfg_read(PciHost *h, unsigned bus, unsigned devfn, uint32_t reg,
                                  unsigned len)
{
    PciDevice *d = bus == 0 ? pci_host_device(h, devfn) : NULL;
    if (!d) {
        return 0xffffffffU >> (32 - 8 * len); /* master abort */
    }
    if (reg >= PCI_CONFIG_SIZE) {
        return 0; /* conventional functions: no extended capabilities */
    }
    return pci_config_read(d, reg, len);
}

static void pci_host_cfg_write(PciHost *h, unsigned bus, unsigned devfn, uint32_t reg,
                               uint32_t value, unsigned len)
{
    PciDevice *d = bus == 0 ? pci_host_device(h, devfn) : NULL;
    if (d && reg < PCI_CONFIG_SIZE) {
        pci_config_write(d, reg, value, len);
    }
}

/* ---- mechanism #1: 0xcf8 (address, dword only) and 0xcfc-0xcff (data) ---- */

static void pci_host_addr_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    PciHost *h = opaque;
    if (offset != 0 || len != 4) {
        memset(data, 0xff, len); /* byte accesses here are not CONFIG_ADDRESS */
        return;
    }
    g_mutex_lock(&h->lock);
    bus_data_set(data, 4, h->config_addr);
    g_mutex_unlock(&h->lock);
}

static void pci_host_addr_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    PciHost *h = opaque;
    if (offset != 0 || len != 4) {
        return;
    }
    g_mutex_lock(&h->lock);
    h->config_addr = (uint32_t)bus_data_get(data, 4) & 0x80fffffcU;
    g_mutex_unlock(&h->lock);
}

static bool pci_host_decode_addr(PciHost *h, uint64_t offset, unsigned len, unsigned *bus,
                                 unsigned *devfn, uint32_t *reg)
{
    g_mutex_lock(&h->lock);
    uint32_t a = h->config_addr;
    g_mutex_unlock(&h->lock);
    if (!(a & CFG_ADDR_ENABLE) || offset + len > 4) {
        return false;
    }
    *bus = (a >> 16) & 0xff;
    *devfn = (a >> 8) & 0xff;
    *reg = (a & 0xfc) + (uint32_t)offset;
    return true;
}

static void pci_host_data_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    PciHost *h = opaque;
    unsigned bus, devfn;
    uint32_t reg;
    if (!pci_host_decode_addr(h, offset, len, &bus, &devfn, &reg)) {
        memset(data, 0xff, len);
        return;
    }
    bus_data_set(data, len, pci_host_cfg_read(h, bus, devfn, reg, len));
}

static void pci_host_data_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    PciHost *h = opaque;
    unsigned bus, devfn;
    uint32_t reg;
    if (pci_host_decode_addr(h, offset, len, &bus, &devfn, &reg)) {
        pci_host_cfg_write(h, bus, devfn, reg, (uint32_t)bus_data_get(data, len), len);
    }
}

static const BusOps pci_host_addr_ops = {.read = pci_host_addr_read, .write = pci_host_addr_write};
static const BusOps pci_host_cfg_ops = {.read = pci_host_data_read, .write = pci_host_data_write};

/* ---- ECAM: bus << 20 | device << 15 | function << 12 | register ---- */

static bool pci_host_ecam_decode(uint64_t offset, unsigned len, unsigned *bus, unsigned *devfn,
                                 uint32_t *reg)
{
    if ((len != 1 && len != 2 && len != 4) || (offset & (len - 1))) {
        return false;
    }
    *bus = (unsigned)(offset >> 20);
    *devfn = (unsigned)(offset >> 12) & 0xff;
    *reg = (uint32_t)offset & 0xfff;
    return true;
}

static void pci_host_ecam_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    unsigned bus, devfn;
    uint32_t reg;
    if (!pci_host_ecam_decode(offset, len, &bus, &devfn, &reg)) {
        memset(data, 0xff, len);
        return;
    }
    bus_data_set(data, len, pci_host_cfg_read(opaque, bus, devfn, reg, len));
}

static void pci_host_ecam_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    unsigned bus, devfn;
    uint32_t reg;
    if (pci_host_ecam_decode(offset, len, &bus, &devfn, &reg)) {
        pci_host_cfg_write(opaque, bus, devfn, reg, (uint32_t)bus_data_get(data, len), len);
    }
}

static const BusOps pci_host_ecam_ops = {.read = pci_host_ecam_read, .write = pci_host_ecam_write};

/* ---- INTx ---- */

static void pci_host_set_intx(void *opaque, PciDevice *d, bool level)
{
    PciHost *h = opaque;
    unsigned slot = d->devfn >> 3;
    unsigned pin = d->config[PCI_INTERRUPT_PIN];
    if (!pin) {
        return;
    }
    unsigned gsi = pci_host_intx_gsi(slot, pin - 1);
    uint32_t *asserted = &h->intx_asserted[gsi - PCI_INTX_GSI_BASE];
    g_mutex_lock(&h->lock);
    bool before = *asserted != 0;
    if (level) {
        *asserted |= 1U << slot;
    } else {
        *asserted &= ~(1U << slot);
    }
    bool after = *asserted != 0;
    if (before != after) {
        h->set_irq(h->irq_opaque, gsi, after);
    }
    g_mutex_unlock(&h->lock);
}

/* ---- save/restore ---- */

void pci_host_save(PciHost *h, GByteArray *out)
{
    g_mutex_lock(&h->lock);
    state_put_u32(out, h->config_addr);
    g_mutex_unlock(&h->lock);
    pci_device_save(&h->bridge, out);
}

void pci_host_load(PciHost *h, StateIn *in)
{
    uint32_t addr = state_get_u32(in);
    state_in_check(in, (addr & ~0x80fffffcU) == 0);
    if (!in->bad) {
        g_mutex_lock(&h->lock);
        h->config_addr = addr;
        g_mutex_unlock(&h->lock);
    }
    pci_device_load(&h->bridge, in);
}

/* ---- assembly ---- */

static void pci_host_assign_bars(PciHost *h, unsigned slot)
{
    PciDevice *d = h->slots[slot];
    if (h->guest_firmware) {
        return; /* as on real hardware: unassigned, decoding off, until firmware runs */
    }
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        if (h->firmware_bar[slot][i]) {
            pci_set_bar_addr(d, i, h->firmware_bar[slot][i]);
        }
    }
    pci_enable_decode(d);
}

void pci_host_reserve(PciHost *h, unsigned slot)
{
    g_assert(slot > 0 && slot < PCI_HOST_SLOTS);
    h->reserved |= 1u << slot;
}

bool pci_host_plug(PciHost *h, PciDevice *d, unsigned slot, GError **error)
{
    if (slot == 0) {
        slot = 1;
        while (slot < PCI_HOST_SLOTS && (h->slots[slot] || (h->reserved & (1u << slot)))) {
            slot++;
        }
        if (slot == PCI_HOST_SLOTS) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "%s: no free PCI slot (bus 0 has %d)", d->name, PCI_HOST_SLOTS);
            return false;
        }
    } else if (slot >= PCI_HOST_SLOTS || h->slots[slot]) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "PCI: slot %u function 0 not available for %s%s%s", slot, d->name,
                    slot < PCI_HOST_SLOTS ? ", in use by " : "",
                    slot < PCI_HOST_SLOTS ? h->slots[slot]->name : "");
        return false;
    }
    /* What firmware does before the OS runs: place BARs, largest alignment first is not
     * needed with a bump allocator that aligns each BAR to its size. */
    uint64_t addr[PCI_NUM_BARS] = {0};
    uint64_t next = h->mmio_next;
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        const PciBar *b = &d->bars[i];
        if (!b->size) {
            continue;
        }
        if (b->kind == PCI_BAR_KIND_IO) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s: I/O BARs are not supported",
                        d->name);
            return false;
        }
        uint64_t a = (next + b->size - 1) & ~(b->size - 1);
        if (a + b->size > PCI_MMIO32_BASE + PCI_MMIO32_SIZE) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "%s: the PCI memory window is full", d->name);
            return false;
        }
        addr[i] = a;
        next = a + b->size;
    }
    h->mmio_next = next;
    memcpy(h->firmware_bar[slot], addr, sizeof(addr));
    d->devfn = (uint8_t)(slot << 3);
    d->pio = h->pio;
    d->mmio = h->mmio;
    d->set_intx = pci_host_set_intx;
    d->intx_opaque = h;
    if (d->config[PCI_INTERRUPT_PIN]) {
        d->config[PCI_INTERRUPT_LINE] =
            (uint8_t)pci_host_intx_gsi(slot, d->config[PCI_INTERRUPT_PIN] - 1);
    }
    h->slots[slot] = d;
    pci_host_assign_bars(h, slot);
    return true;
}

void pci_host_leave_bars(PciHost *h)
{
    h->guest_firmware = true;
}

void pci_host_reset(PciHost *h)
{
    g_mutex_lock(&h->lock);
    h->config_addr = 0;
    g_mutex_unlock(&h->lock);
    for (unsigned slot = 1; slot < PCI_HOST_SLOTS; slot++) {
        if (h->slots[slot]) {
            pci_device_reset(h->slots[slot]);
            pci_host_assign_bars(h, slot);
        }
    }
}

PciHost *pci_host_new(Bus *pio, Bus *mmio, PciHostIrqFn set_irq, void *irq_opaque, GError **error)
{
    g_autoptr(PciHost) h = g_new0(PciHost, 1);
    h->pio = pio;
    h->mmio = mmio;
    h->set_irq = set_irq;
    h->irq_opaque = irq_opaque;
    h->mmio_next = PCI_MMIO32_BASE;
    g_mutex_init(&h->lock);
    /*
     * A host bridge class is what Linux's mechanism #1 sanity check looks
     * for; QEMU's subsystem IDs (Red Hat, "QEMU virtual machine") are how
     * SeaBIOS knows it runs on QEMU's platform, with fw_cfg.
     */
    PciDeviceInfo info = {.name = "pci-host",
                          .vendor_id = 0x1b36,
                          .device_id = 0x0008,
                          .subsystem_vendor_id = 0x1af4,
                          .subsystem_id = 0x1100,
                          .class_code = 0x060000};
    pci_device_init(&h->bridge, &info);
    h->slots[0] = &h->bridge;
    if (!bus_register(pio, PCI_CONFIG_ADDR_PORT, 4, &pci_host_addr_ops, h, "pci-config-address",
                      error) ||
        !bus_register(pio, PCI_CONFIG_DATA_PORT, 4, &pci_host_cfg_ops, h, "pci-config-data",
                      error) ||
        !bus_register(mmio, PCI_ECAM_BASE, PCI_ECAM_SIZE, &pci_host_ecam_ops, h, "pci-ecam",
                      error)) {
        return NULL;
    }
    return g_steal_pointer(&h);
}

void pci_host_free(PciHost *h)
{
    if (!h) {
        return;
    }
    pci_device_cleanup(&h->bridge);
    g_mutex_clear(&h->lock);
    g_free(h);
}
