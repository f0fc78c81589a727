/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-pci as a guest drives it: the input is a list of operations
 * (configuration cycles of every width and offset, BAR reads and writes,
 * writes to guest RAM where rings and requests live) against a virtio-blk
 * function. Then the device is paused and saved, and the state must load
 * into a fresh machine and save again byte for byte: whatever a guest can
 * reach must migrate.
 */
#include "fuzz-devices.h"
#include "pci/pci.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { OP_CFG_READ, OP_CFG_WRITE, OP_BAR_READ, OP_BAR_WRITE, OP_RAM_WRITE, OP_COUNT };

static uint64_t take(const uint8_t **p, const uint8_t *end, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && *p < end; i++, (*p)++) {
        v |= (uint64_t) * *p << (8 * i);
    }
    return v;
}

static void run_ops(FuzzPc *pc, const uint8_t *p, const uint8_t *end)
{
    PciDevice *d = virtio_pci_device(pc->vp);
    for (unsigned n = 0; p < end && n < 256; n++) {
        unsigned op = (unsigned)take(&p, end, 1);
        unsigned width = 1u << (op >> 4 & 3);        /* 1, 2, 4 or 8 bytes */
        unsigned devfn = op & 0x80 ? 0 : FUZZ_DEVFN; /* now and then the host bridge */
        switch (op % OP_COUNT) {
        case OP_CFG_READ:
        case OP_CFG_WRITE: {
            unsigned reg = (unsigned)take(&p, end, 1);
            unsigned len = MIN(width, 4u);
            uint32_t v = (uint32_t)take(&p, end, 4);
            if (op % OP_COUNT == OP_CFG_WRITE) {
                fake_cfg_write(pc->pio, devfn, reg & ~(len - 1), v, len);
            } else {
                fake_cfg_read(pc->pio, devfn, reg & ~(len - 1), len);
            }
            break;
        }
        case OP_BAR_READ:
        case OP_BAR_WRITE: {
            int bar = (int)take(&p, end, 1) % 6;
            uint64_t addr = pci_bar_addr(d, bar) + take(&p, end, 2);
            uint8_t buf[8];
            uint64_t v = take(&p, end, 8);
            memcpy(buf, &v, sizeof(buf));
            if (op % OP_COUNT == OP_BAR_WRITE) {
                bus_write(pc->mmio, addr, buf, width);
            } else {
                bus_read(pc->mmio, addr, buf, width);
            }
            break;
        }
        case OP_RAM_WRITE: {
            uint64_t gpa = take(&p, end, 3) % (FUZZ_RAM_SIZE - 8);
            uint64_t v = take(&p, end, 8);
            memcpy(guest_mem_ptr(pc->mem, gpa, 8), &v, 8);
            break;
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Made once; each input starts from a machine reset, as after a reboot. */
    static FuzzPc *src, *dst;
    if (!src) {
        src = fuzz_pc_new(false);
        dst = fuzz_pc_new(true);
    } else {
        virtio_device_resume(virtio_pci_vdev(src->vp));
        virtio_pci_reset(src->vp);
        pci_host_reset(src->host);
        memset(guest_mem_ptr(src->mem, 0, FUZZ_RAM_SIZE), 0, FUZZ_RAM_SIZE);
    }
    run_ops(src, data, data + size);
    virtio_device_pause(virtio_pci_vdev(src->vp));
    g_autoptr(GByteArray) saved = g_byte_array_new();
    virtio_pci_save(src->vp, saved);

    memcpy(guest_mem_ptr(dst->mem, 0, FUZZ_RAM_SIZE), guest_mem_ptr(src->mem, 0, FUZZ_RAM_SIZE),
           FUZZ_RAM_SIZE);
    pci_device_unmap(virtio_pci_device(dst->vp));
    StateIn in;
    state_in_init(&in, saved->data, saved->len);
    g_autoptr(GError) err = NULL;
    if (!virtio_pci_load(dst->vp, &in, &err) || !state_in_finish(&in, "virtio0", &err)) {
        g_error("a state the guest reached does not load: %s", err->message);
    }
    g_autoptr(GByteArray) again = g_byte_array_new();
    virtio_pci_save(dst->vp, again);
    g_assert(again->len == saved->len && memcmp(again->data, saved->data, saved->len) == 0);
    return 0;
}
