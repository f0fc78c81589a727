/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "pci/pci.h"
#include "pci/msix.h"
#include "util/error.h"

#include <string.h>

#define PCI_CAP_FIRST 0x40

static bool pci_bar_is_io(const PciBar *b)
{
    return b->kind == PCI_BAR_KIND_IO;
}

void pci_device_init(PciDevice *d, const PciDeviceInfo *info)
{
    memset(d, 0, sizeof(*d));
    d->name = g_strdup(info->name);
    g_mutex_init(&d->lock);
    g_mutex_init(&d->intx_lock);
    pci_set_word(d->config + PCI_VENDOR_ID, info->vendor_id);
    pci_set_word(d->config + PCI_DEVICE_ID, info->device_id);
    d->config[PCI_REVISION_ID] = info->revision;
    d->config[PCI_CLASS_PROG] = (uint8_t)info->class_code;
    pci_set_word(d->config + PCI_CLASS_PROG + 1, (uint16_t)(info->class_code >> 8));
    pci_set_word(d->config + PCI_SUBSYSTEM_VENDOR_ID, info->subsystem_vendor_id);
    pci_set_word(d->config + PCI_SUBSYSTEM_ID, info->subsystem_id);
    d->config[PCI_INTERRUPT_PIN] = info->intx ? 1 : 0;
    d->cap_end = PCI_CAP_FIRST;
    /* Writable: the command bits we implement and the interrupt line. */
    pci_set_word(d->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                             PCI_COMMAND_INTX_DISABLE);
    d->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

static void pci_unmap_bar(PciDevice *d, int i)
{
    PciBar *b = &d->bars[i];
    if (!b->mapped) {
        return;
    }
    bus_unregister(pci_bar_is_io(b) ? d->pio : d->mmio, b->mapped_addr);
    b->mapped = false;
    if (d->bar_mapped) {
        d->bar_mapped(d->bar_opaque, i, false, b->mapped_addr);
    }
}

void pci_device_cleanup(PciDevice *d)
{
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        pci_unmap_bar(d, i);
    }
    msix_free(d->msix);
    d->msix = NULL;
    g_mutex_clear(&d->lock);
    g_mutex_clear(&d->intx_lock);
    g_free(d->name);
    d->name = NULL;
}

bool pci_register_bar(PciDevice *d, int bar, PciBarKind kind, uint64_t size, const BusOps *ops,
                      void *opaque, GError **error)
{
    unsigned slots = kind == PCI_BAR_KIND_MEM64 ? 2 : 1;
    uint64_t min = kind == PCI_BAR_KIND_IO ? 4 : 16;
    if (bar < 0 || bar + slots > PCI_NUM_BARS || d->bars[bar].size ||
        (slots == 2 && d->bars[bar + 1].size) || size < min || (size & (size - 1)) ||
        (kind != PCI_BAR_KIND_MEM64 && size > (1ULL << 31)) ||
        (kind == PCI_BAR_KIND_IO && size > 256)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s: invalid BAR %d (size 0x%" G_GINT64_MODIFIER "x)", d->name, bar, size);
        return false;
    }
    d->bars[bar] = (PciBar){.kind = kind, .size = size, .ops = ops, .opaque = opaque};
    uint8_t *cfg = d->config + PCI_BAR0 + 4 * bar;
    uint8_t *wm = d->wmask + PCI_BAR0 + 4 * bar;
    uint32_t flags = kind == PCI_BAR_KIND_IO      ? PCI_BAR_IO
                     : kind == PCI_BAR_KIND_MEM64 ? PCI_BAR_MEM_TYPE_64
                                                  : 0;
    pci_set_long(cfg, flags);
    /* The sizing protocol (PCI 3.0 §6.2.5.1): address bits below the size read as zero. */
    pci_set_long(wm, (uint32_t) ~(size - 1) & (kind == PCI_BAR_KIND_IO ? ~3U : ~15U));
    if (slots == 2) {
        pci_set_long(cfg + 4, 0);
        pci_set_long(wm + 4, (uint32_t)(~(size - 1) >> 32));
        d->bars[bar + 1].size = 0;
    }
    return true;
}

uint8_t pci_add_capability(PciDevice *d, uint8_t id, uint8_t len)
{
    unsigned off = (d->cap_end + 3) & ~3U;
    if (len < 2 || off + len > PCI_CONFIG_SIZE) {
        return 0;
    }
    /* Link it at the end of the list so capabilities appear in the order added. */
    uint8_t *link = d->config + PCI_CAPABILITY_LIST;
    while (*link) {
        link = d->config + *link + 1;
    }
    *link = (uint8_t)off;
    d->config[off] = id;
    d->config[off + 1] = 0;
    pci_set_word(d->config + PCI_STATUS,
                 pci_get_word(d->config + PCI_STATUS) | PCI_STATUS_CAP_LIST);
    d->cap_end = off + len;
    return (uint8_t)off;
}

static uint64_t pci_bar_addr_locked(PciDevice *d, int i)
{
    const PciBar *b = &d->bars[i];
    uint64_t addr = pci_get_long(d->config + PCI_BAR0 + 4 * i);
    if (b->kind == PCI_BAR_KIND_MEM64) {
        addr |= (uint64_t)pci_get_long(d->config + PCI_BAR0 + 4 * (i + 1)) << 32;
    }
    return addr & ~(b->size - 1);
}

uint64_t pci_bar_addr(PciDevice *d, int bar)
{
    g_mutex_lock(&d->lock);
    uint64_t a = pci_bar_addr_locked(d, bar);
    g_mutex_unlock(&d->lock);
    return a;
}

/* Whether BAR i's register and the command register say it decodes, and where. */
static bool pci_bar_decodes_locked(PciDevice *d, int i, uint64_t *addr)
{
    const PciBar *b = &d->bars[i];
    bool io = pci_bar_is_io(b);
    uint16_t cmd = pci_get_word(d->config + PCI_COMMAND);
    uint64_t limit = io ? 0x10000 : (b->kind == PCI_BAR_KIND_MEM64 ? (1ULL << 52) : (1ULL << 32));
    *addr = pci_bar_addr_locked(d, i);
    return b->size && (cmd & (io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) && *addr != 0 &&
           *addr + b->size <= limit;
}

/* Puts BAR i on its bus at addr; false if the range is taken. */
static bool pci_map_bar_locked(PciDevice *d, int i, uint64_t addr)
{
    PciBar *b = &d->bars[i];
    g_autoptr(GError) err = NULL;
    if (!d->mmio || !bus_register(pci_bar_is_io(b) ? d->pio : d->mmio, addr, b->size, b->ops,
                                  b->opaque, d->name, &err)) {
        g_debug("%s: BAR %d not mapped: %s", d->name, i, err ? err->message : "no bus");
        return false;
    }
    b->mapped = true;
    b->mapped_addr = addr;
    if (d->bar_mapped) {
        d->bar_mapped(d->bar_opaque, i, true, addr);
    }
    return true;
}

/*
 * Puts each BAR where its register says if its decode bit is on, takes it off
 * otherwise. An address that would not fit (during sizing, all-ones, or over
 * another range) leaves the BAR unmapped, as a device outside every bridge
 * window would be; it is tried again at the next write.
 */
static void pci_update_mappings_locked(PciDevice *d)
{
    uint64_t addr;
    /* Every range given up first, so a BAR may move where another just left. */
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        if (d->bars[i].mapped &&
            !(pci_bar_decodes_locked(d, i, &addr) && d->bars[i].mapped_addr == addr)) {
            pci_unmap_bar(d, i);
        }
    }
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        if (!d->bars[i].mapped && pci_bar_decodes_locked(d, i, &addr)) {
            pci_map_bar_locked(d, i, addr);
        }
    }
}

void pci_device_unmap(PciDevice *d)
{
    g_mutex_lock(&d->lock);
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        pci_unmap_bar(d, i);
    }
    g_mutex_unlock(&d->lock);
}

/* Tells the host bridge the line's level: asserted and not disabled by the command register. */
static void pci_update_intx_locked(PciDevice *d)
{
    uint16_t cmd = pci_get_word(d->config + PCI_COMMAND);
    bool out = d->intx_level && !(cmd & PCI_COMMAND_INTX_DISABLE);
    if (out != d->intx_out && d->set_intx) {
        d->set_intx(d->intx_opaque, d, out);
    }
    d->intx_out = out;
}

static bool ranges_overlap(uint32_t a, unsigned alen, uint32_t b, unsigned blen)
{
    return a < b + blen && b < a + alen;
}

uint32_t pci_config_read(PciDevice *d, uint32_t offset, unsigned len)
{
    if (offset + len > PCI_CONFIG_SIZE || (len != 1 && len != 2 && len != 4)) {
        return 0xffffffff;
    }
    g_mutex_lock(&d->lock);
    if (d->hook_read && ranges_overlap(offset, len, d->hook_cap, d->hook_len)) {
        d->hook_read(d->hook_opaque, offset, len);
    }
    uint8_t bytes[4];
    memcpy(bytes, d->config + offset, len);
    g_mutex_unlock(&d->lock);
    /* The status register's interrupt bit shows the line's state (PCI 3.0 §6.2.3). */
    if (ranges_overlap(offset, len, PCI_STATUS, 1)) {
        g_mutex_lock(&d->intx_lock);
        if (d->intx_level) {
            bytes[PCI_STATUS - offset] |= PCI_STATUS_INTERRUPT;
        }
        g_mutex_unlock(&d->intx_lock);
    }
    uint32_t v = 0;
    for (unsigned i = 0; i < len; i++) {
        v |= (uint32_t)bytes[i] << (8 * i);
    }
    return v;
}

void pci_config_write(PciDevice *d, uint32_t offset, uint32_t value, unsigned len)
{
    if (offset + len > PCI_CONFIG_SIZE || (len != 1 && len != 2 && len != 4)) {
        return;
    }
    g_mutex_lock(&d->lock);
    for (unsigned i = 0; i < len; i++) {
        uint8_t wm = d->wmask[offset + i];
        uint8_t *c = &d->config[offset + i];
        *c = (uint8_t)((*c & ~wm) | ((value >> (8 * i)) & wm));
    }
    if (ranges_overlap(offset, len, PCI_COMMAND, 2) ||
        ranges_overlap(offset, len, PCI_BAR0, 4 * PCI_NUM_BARS)) {
        pci_update_mappings_locked(d);
    }
    if (ranges_overlap(offset, len, PCI_COMMAND, 2)) {
        g_mutex_lock(&d->intx_lock);
        pci_update_intx_locked(d);
        g_mutex_unlock(&d->intx_lock);
    }
    if (d->msix && ranges_overlap(offset, len, msix_cap_offset(d->msix), MSIX_CAP_LEN)) {
        msix_control_written(d->msix);
    }
    if (d->hook_write && ranges_overlap(offset, len, d->hook_cap, d->hook_len)) {
        d->hook_write(d->hook_opaque, offset, len);
    }
    g_mutex_unlock(&d->lock);
}

void pci_set_bar_addr(PciDevice *d, int bar, uint64_t addr)
{
    g_mutex_lock(&d->lock);
    const PciBar *b = &d->bars[bar];
    uint8_t *cfg = d->config + PCI_BAR0 + 4 * bar;
    uint32_t flags = pci_get_long(cfg) & (pci_bar_is_io(b) ? 3U : 15U);
    pci_set_long(cfg, (uint32_t)addr | flags);
    if (b->kind == PCI_BAR_KIND_MEM64) {
        pci_set_long(cfg + 4, (uint32_t)(addr >> 32));
    }
    pci_update_mappings_locked(d);
    g_mutex_unlock(&d->lock);
}

void pci_enable_decode(PciDevice *d)
{
    g_mutex_lock(&d->lock);
    uint16_t cmd = pci_get_word(d->config + PCI_COMMAND);
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        if (d->bars[i].size) {
            cmd |= pci_bar_is_io(&d->bars[i]) ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
        }
    }
    pci_set_word(d->config + PCI_COMMAND, cmd);
    pci_update_mappings_locked(d);
    g_mutex_unlock(&d->lock);
}

void pci_set_intx(PciDevice *d, bool level)
{
    g_mutex_lock(&d->intx_lock);
    d->intx_level = level;
    pci_update_intx_locked(d);
    g_mutex_unlock(&d->intx_lock);
}

void pci_device_reset(PciDevice *d)
{
    g_mutex_lock(&d->lock);
    pci_set_word(d->config + PCI_COMMAND, 0);
    pci_update_mappings_locked(d);
    g_mutex_unlock(&d->lock);
    pci_set_intx(d, false);
    if (d->msix) {
        msix_reset(d->msix);
    }
}

/* ---- save/restore ---- */

void pci_device_save(PciDevice *d, GByteArray *out)
{
    g_mutex_lock(&d->lock);
    state_put_u16(out, PCI_CONFIG_SIZE);
    state_put_bytes(out, d->config, PCI_CONFIG_SIZE);
    uint8_t mapped = 0;
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        mapped |= (uint8_t)(d->bars[i].mapped << i);
    }
    state_put_u8(out, mapped);
    g_mutex_lock(&d->intx_lock);
    state_put_bool(out, d->intx_level);
    g_mutex_unlock(&d->intx_lock);
    g_mutex_unlock(&d->lock);
}

bool pci_device_load(PciDevice *d, StateIn *in)
{
    uint8_t config[PCI_CONFIG_SIZE];
    uint16_t size = state_get_u16(in);
    state_in_check(in, size == PCI_CONFIG_SIZE);
    if (in->bad) {
        return false;
    }
    state_get_bytes(in, config, sizeof(config));
    uint8_t mapped = state_get_u8(in);
    bool intx_level = state_get_bool(in);
    if (in->bad) {
        return false;
    }

    g_mutex_lock(&d->lock);
    /* Bits the guest cannot write are the device model's: any difference means another device. */
    for (unsigned i = 0; i < PCI_CONFIG_SIZE; i++) {
        state_in_check(in, !((config[i] ^ d->config[i]) & ~d->wmask[i]));
    }
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        state_in_check(in, !(mapped & (1u << i)) || d->bars[i].size);
    }
    state_in_check(in, !(mapped >> PCI_NUM_BARS));
    if (in->bad) {
        g_mutex_unlock(&d->lock);
        return false;
    }
    /*
     * Off the buses first, so BARs that traded places do not collide with
     * each other. Then exactly the BARs that decoded on the source decode
     * here: which of two overlapping BARs holds the range is history, not
     * configuration, so it is taken from the state.
     */
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        pci_unmap_bar(d, i);
    }
    memcpy(d->config, config, sizeof(config));
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        uint64_t addr;
        if (mapped & (1u << i)) {
            state_in_check(in,
                           pci_bar_decodes_locked(d, i, &addr) && pci_map_bar_locked(d, i, addr));
        }
    }
    g_mutex_lock(&d->intx_lock);
    d->intx_level = intx_level;
    pci_update_intx_locked(d);
    g_mutex_unlock(&d->intx_lock);
    g_mutex_unlock(&d->lock);
    return !in->bad;
}
