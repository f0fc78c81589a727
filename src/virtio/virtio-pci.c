/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Virtio over PCI, modern interface: virtio 1.2 §4.1.
 */
#include "virtio/virtio-pci.h"
#include "util/error.h"

#include <string.h>

/* Capability types, §4.1.4. */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG    5
#define VIRTIO_PCI_CAP_LEN        16
#define VIRTIO_PCI_NOTIFY_CAP_LEN 20
#define VIRTIO_PCI_CFG_CAP_LEN    20

/* struct virtio_pci_common_cfg, §4.1.4.3. */
#define COMMON_DFSELECT      0x00
#define COMMON_DF            0x04
#define COMMON_GFSELECT      0x08
#define COMMON_GF            0x0c
#define COMMON_MSIX          0x10
#define COMMON_NUMQ          0x12
#define COMMON_STATUS        0x14
#define COMMON_CFGGENERATION 0x15
#define COMMON_Q_SELECT      0x16
#define COMMON_Q_SIZE        0x18
#define COMMON_Q_MSIX        0x1a
#define COMMON_Q_ENABLE      0x1c
#define COMMON_Q_NOFF        0x1e
#define COMMON_Q_DESCLO      0x20
#define COMMON_Q_DESCHI      0x24
#define COMMON_Q_AVAILLO     0x28
#define COMMON_Q_AVAILHI     0x2c
#define COMMON_Q_USEDLO      0x30
#define COMMON_Q_USEDHI      0x34
#define COMMON_LEN           0x38

/* ISR bits, §4.1.4.5. */
#define VIRTIO_ISR_QUEUE  0x1
#define VIRTIO_ISR_CONFIG 0x2

/* BAR 0 layout: one page per area. BAR 1: the MSI-X table and PBA. */
#define VP_BAR_AREAS       0
#define VP_BAR_MSIX        1
#define VP_COMMON_OFF      0x0000
#define VP_ISR_OFF         0x1000
#define VP_DEVICE_OFF      0x2000
#define VP_NOTIFY_OFF      0x3000
#define VP_AREA_SIZE       0x1000
#define VP_BAR_AREAS_SIZE  0x4000
#define VP_NOTIFY_MULT     4
#define VP_MSIX_TABLE_OFF  0x0000
#define VP_MSIX_PBA_OFF    0x0800
#define VP_BAR_MSIX_SIZE   0x1000

struct VirtioPci {
    PciDevice pci;
    VirtioDevice *vdev;
    const VirtioPciHostOps *host;
    void *host_opaque;
    Msix *msix;

    /* Register state of the common area; vCPU threads only. */
    GMutex lock;
    uint32_t dfselect;
    uint32_t gfselect;
    uint16_t queue_select;
    /* Read by device threads when they interrupt: atomics, not the lock. */
    gint config_vector;
    gint queue_vector[VIRTIO_MAX_QUEUES];

    /* ISR and the INTx line change together (§4.1.4.5: reading clears). */
    GMutex isr_lock;
    uint8_t isr;

    bool notify_mapped;
    uint64_t notify_addr;

    uint8_t pci_cfg_cap; /* offset of the VIRTIO_PCI_CAP_PCI_CFG capability */
};

/* ---- capabilities ---- */

static uint8_t vp_add_cap(VirtioPci *vp, uint8_t type, uint8_t len, uint32_t offset,
                          uint32_t length)
{
    PciDevice *d = &vp->pci;
    uint8_t c = pci_add_capability(d, PCI_CAP_ID_VNDR, len);
    if (!c) {
        return 0;
    }
    d->config[c + 2] = len;
    d->config[c + 3] = type;
    d->config[c + 4] = VP_BAR_AREAS;
    pci_set_long(d->config + c + 8, offset);
    pci_set_long(d->config + c + 12, length);
    return c;
}

/* ---- the common configuration area ---- */

static VirtQueue *vp_selected_queue_locked(VirtioPci *vp)
{
    return virtio_queue(vp->vdev, vp->queue_select);
}

static uint32_t vp_common_read(VirtioPci *vp, uint64_t off, unsigned len)
{
    VirtioDevice *vdev = vp->vdev;
    g_mutex_lock(&vp->lock);
    VirtQueue *vq = vp_selected_queue_locked(vp);
    uint32_t v = 0;
    switch (off) {
    case COMMON_DFSELECT: v = vp->dfselect; break;
    case COMMON_DF: v = virtio_get_host_features(vdev, vp->dfselect); break;
    case COMMON_GFSELECT: v = vp->gfselect; break;
    case COMMON_GF: v = virtio_get_guest_features(vdev, vp->gfselect); break;
    case COMMON_MSIX: v = (uint16_t)g_atomic_int_get(&vp->config_vector); break;
    case COMMON_NUMQ: v = vdev->nqueues; break;
    case COMMON_STATUS: v = virtio_get_status(vdev); break;
    case COMMON_CFGGENERATION: v = __atomic_load_n(&vdev->config_generation, __ATOMIC_RELAXED); break;
    case COMMON_Q_SELECT: v = vp->queue_select; break;
    case COMMON_Q_SIZE: v = vq ? vq->size : 0; break;
    case COMMON_Q_MSIX:
        v = vq ? (uint16_t)g_atomic_int_get(&vp->queue_vector[vp->queue_select]) : VIRTIO_NO_VECTOR;
        break;
    case COMMON_Q_ENABLE: v = vq ? vq->enabled : 0; break;
    case COMMON_Q_NOFF: v = vp->queue_select; break;
    case COMMON_Q_DESCLO: v = vq ? (uint32_t)vq->desc_gpa : 0; break;
    case COMMON_Q_DESCHI: v = vq ? (uint32_t)(vq->desc_gpa >> 32) : 0; break;
    case COMMON_Q_AVAILLO: v = vq ? (uint32_t)vq->avail_gpa : 0; break;
    case COMMON_Q_AVAILHI: v = vq ? (uint32_t)(vq->avail_gpa >> 32) : 0; break;
    case COMMON_Q_USEDLO: v = vq ? (uint32_t)vq->used_gpa : 0; break;
    case COMMON_Q_USEDHI: v = vq ? (uint32_t)(vq->used_gpa >> 32) : 0; break;
    default: break;
    }
    g_mutex_unlock(&vp->lock);
    return len == 4 ? v : len == 2 ? (uint16_t)v : (uint8_t)v;
}

/* A vector the driver may use: one we have, or NO_VECTOR (§4.1.5.1.2). */
static uint16_t vp_valid_vector(VirtioPci *vp, uint32_t v)
{
    return v < msix_nvectors(vp->msix) ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static void vp_set_addr_half(uint64_t *addr, bool high, uint32_t v)
{
    *addr = high ? (*addr & 0xffffffffULL) | (uint64_t)v << 32
                 : (*addr & ~0xffffffffULL) | v;
}

static void vp_reset_transport(VirtioPci *vp)
{
    g_atomic_int_set(&vp->config_vector, VIRTIO_NO_VECTOR);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        g_atomic_int_set(&vp->queue_vector[q], VIRTIO_NO_VECTOR);
    }
    vp->dfselect = vp->gfselect = 0;
    vp->queue_select = 0;
    g_mutex_lock(&vp->isr_lock);
    vp->isr = 0;
    pci_set_intx(&vp->pci, false);
    g_mutex_unlock(&vp->isr_lock);
}

static void vp_common_write(VirtioPci *vp, uint64_t off, unsigned len, uint32_t v)
{
    VirtioDevice *vdev = vp->vdev;
    g_mutex_lock(&vp->lock);
    VirtQueue *vq = vp_selected_queue_locked(vp);
    /* Queue registers are frozen once the queue is enabled or the driver is live (§4.1.4.3.2). */
    bool queue_writable = vq && !vq->enabled && !(virtio_get_status(vdev) & VIRTIO_STATUS_DRIVER_OK);
    switch (off) {
    case COMMON_DFSELECT: vp->dfselect = v; break;
    case COMMON_GFSELECT: vp->gfselect = v; break;
    case COMMON_GF: virtio_set_guest_features(vdev, vp->gfselect, v); break;
    case COMMON_MSIX: g_atomic_int_set(&vp->config_vector, vp_valid_vector(vp, v)); break;
    case COMMON_STATUS:
        virtio_set_status(vdev, (uint8_t)v);
        if ((uint8_t)v == 0) {
            vp_reset_transport(vp);
        }
        break;
    case COMMON_Q_SELECT: vp->queue_select = (uint16_t)v; break;
    case COMMON_Q_SIZE:
        if (queue_writable) {
            vq->size = (uint16_t)v; /* checked against max_size when the queue starts */
        }
        break;
    case COMMON_Q_MSIX:
        if (vq) {
            g_atomic_int_set(&vp->queue_vector[vp->queue_select], vp_valid_vector(vp, v));
        }
        break;
    case COMMON_Q_ENABLE:
        /* Only 1 may be written (§4.1.4.3.2); a queue is disabled by a device reset. */
        if (queue_writable && v == 1) {
            vq->enabled = true;
        }
        break;
    case COMMON_Q_DESCLO:
    case COMMON_Q_DESCHI:
        if (queue_writable) {
            vp_set_addr_half(&vq->desc_gpa, off == COMMON_Q_DESCHI, v);
        }
        break;
    case COMMON_Q_AVAILLO:
    case COMMON_Q_AVAILHI:
        if (queue_writable) {
            vp_set_addr_half(&vq->avail_gpa, off == COMMON_Q_AVAILHI, v);
        }
        break;
    case COMMON_Q_USEDLO:
    case COMMON_Q_USEDHI:
        if (queue_writable) {
            vp_set_addr_half(&vq->used_gpa, off == COMMON_Q_USEDHI, v);
        }
        break;
    default: /* read-only fields and the reserved rest */
        break;
    }
    g_mutex_unlock(&vp->lock);
}

/* Field widths of the common area: accesses must match them (§4.1.3.1). */
static unsigned vp_common_width(uint64_t off)
{
    if (off < COMMON_MSIX) {
        return 4;
    }
    if (off == COMMON_STATUS || off == COMMON_CFGGENERATION) {
        return 1;
    }
    if (off < COMMON_Q_DESCLO) {
        return 2;
    }
    return off < COMMON_LEN ? 4 : 0;
}

/* ---- BAR 0 ---- */

static uint8_t vp_isr_read(VirtioPci *vp)
{
    g_mutex_lock(&vp->isr_lock);
    uint8_t v = vp->isr;
    vp->isr = 0;
    pci_set_intx(&vp->pci, false);
    g_mutex_unlock(&vp->isr_lock);
    return v;
}

static void vp_bar_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
    VirtioPci *vp = opaque;
    memset(data, 0, len);
    if (off < VP_COMMON_OFF + VP_AREA_SIZE) {
        if (vp_common_width(off) == len) {
            bus_data_set(data, len, vp_common_read(vp, off, len));
        }
    } else if (off == VP_ISR_OFF && len == 1) {
        data[0] = vp_isr_read(vp);
    } else if (off >= VP_DEVICE_OFF && off - VP_DEVICE_OFF + len <= vp->vdev->config_size) {
        virtio_config_read(vp->vdev, (uint32_t)(off - VP_DEVICE_OFF), data, len);
    }
}

static void vp_bar_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
    VirtioPci *vp = opaque;
    if (off < VP_COMMON_OFF + VP_AREA_SIZE) {
        if (vp_common_width(off) == len) {
            vp_common_write(vp, off, len, (uint32_t)bus_data_get(data, len));
        }
    } else if (off >= VP_DEVICE_OFF && off - VP_DEVICE_OFF + len <= vp->vdev->config_size) {
        virtio_config_write(vp->vdev, (uint32_t)(off - VP_DEVICE_OFF), data, len);
    } else if (off >= VP_NOTIFY_OFF && off < VP_NOTIFY_OFF + VP_AREA_SIZE) {
        /* Reached only when no ioeventfd took the write (another width, or none bound). */
        uint64_t q = (off - VP_NOTIFY_OFF) / VP_NOTIFY_MULT;
        if (q < vp->vdev->nqueues) {
            virtio_kick(vp->vdev, (unsigned)q);
        }
    }
}

static const BusOps vp_bar_ops = {.read = vp_bar_read, .write = vp_bar_write};

/* ---- BAR 1: MSI-X ---- */

static void vp_msix_bar_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
    VirtioPci *vp = opaque;
    if (off >= VP_MSIX_PBA_OFF) {
        msix_pba_read(vp->msix, off - VP_MSIX_PBA_OFF, data, len);
    } else {
        msix_table_read(vp->msix, off - VP_MSIX_TABLE_OFF, data, len);
    }
}

static void vp_msix_bar_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
    VirtioPci *vp = opaque;
    if (off < VP_MSIX_PBA_OFF) {
        msix_table_write(vp->msix, off - VP_MSIX_TABLE_OFF, data, len);
    }
}

static const BusOps vp_msix_bar_ops = {.read = vp_msix_bar_read, .write = vp_msix_bar_write};

/* ---- the pci_cfg window, §4.1.4.9: BAR access through configuration space ---- */

static bool vp_cfg_window(VirtioPci *vp, uint64_t *off, unsigned *len)
{
    const uint8_t *c = vp->pci.config + vp->pci_cfg_cap;
    *off = pci_get_long(c + 8);
    *len = pci_get_long(c + 12);
    /* Only BAR 0, naturally aligned 1-, 2- and 4-byte accesses inside it. */
    return c[4] == VP_BAR_AREAS && (*len == 1 || *len == 2 || *len == 4) &&
           (*off & (*len - 1)) == 0 && *off + *len <= VP_BAR_AREAS_SIZE;
}

/* An access to pci_cfg_data (after the 16-byte header) turns into the BAR access it names. */
static void vp_cfg_hook(VirtioPci *vp, uint32_t offset, unsigned len, bool write)
{
    uint64_t off;
    unsigned n;
    if (offset + len <= (uint32_t)vp->pci_cfg_cap + VIRTIO_PCI_CAP_LEN ||
        !vp_cfg_window(vp, &off, &n)) {
        return;
    }
    uint8_t *data = vp->pci.config + vp->pci_cfg_cap + VIRTIO_PCI_CAP_LEN;
    if (write) {
        vp_bar_write(vp, off, data, n);
    } else {
        vp_bar_read(vp, off, data, n);
    }
}

static void vp_cfg_hook_read(void *opaque, uint32_t offset, unsigned len)
{
    vp_cfg_hook(opaque, offset, len, false);
}

static void vp_cfg_hook_write(void *opaque, uint32_t offset, unsigned len)
{
    vp_cfg_hook(opaque, offset, len, true);
}

/* ---- notifications: ioeventfds follow BAR 0 ---- */

static void vp_bind_notify(VirtioPci *vp, uint64_t base, bool assign)
{
    for (unsigned q = 0; q < vp->vdev->nqueues; q++) {
        g_autoptr(GError) err = NULL;
        uint64_t addr = base + VP_NOTIFY_OFF + (uint64_t)q * VP_NOTIFY_MULT;
        /* Drivers write the 16-bit queue index (§4.1.5.2). */
        if (!vp->host->ioeventfd(vp->host_opaque, vp->vdev->kick_fd[q], addr, 2, assign, &err)) {
            g_warning("%s: queue %u notifications go through userspace: %s", vp->pci.name, q,
                      err->message);
        }
    }
}

static void vp_bar_mapped(void *opaque, int bar, bool mapped, uint64_t addr)
{
    VirtioPci *vp = opaque;
    if (bar != VP_BAR_AREAS) {
        return;
    }
    if (vp->notify_mapped) {
        vp_bind_notify(vp, vp->notify_addr, false);
        vp->notify_mapped = false;
    }
    if (mapped) {
        vp_bind_notify(vp, addr, true);
        vp->notify_mapped = true;
        vp->notify_addr = addr;
    }
}

/* ---- interrupts, from the device's thread ---- */

static void vp_interrupt(VirtioPci *vp, unsigned vector, uint8_t isr_bit)
{
    /* NO_VECTOR is out of the table's range: with MSI-X on, nothing is sent (§4.1.5.1.2). */
    if (msix_notify(vp->msix, vector)) {
        return;
    }
    g_mutex_lock(&vp->isr_lock);
    vp->isr |= isr_bit;
    pci_set_intx(&vp->pci, true);
    g_mutex_unlock(&vp->isr_lock);
}

static void vp_notify_queue(void *opaque, unsigned q)
{
    VirtioPci *vp = opaque;
    if (q < VIRTIO_MAX_QUEUES) {
        vp_interrupt(vp, (unsigned)g_atomic_int_get(&vp->queue_vector[q]), VIRTIO_ISR_QUEUE);
    }
}

static void vp_notify_config(void *opaque)
{
    VirtioPci *vp = opaque;
    vp_interrupt(vp, (unsigned)g_atomic_int_get(&vp->config_vector), VIRTIO_ISR_CONFIG);
}

static const VirtioTransportOps vp_transport_ops = {
    .notify_queue = vp_notify_queue,
    .notify_config = vp_notify_config,
};

/* ---- lifecycle ---- */

static uint32_t vp_class_code(uint16_t device_id)
{
    switch (device_id) {
    case VIRTIO_ID_NET: return 0x020000;   /* network controller */
    case VIRTIO_ID_BLOCK: return 0x018000; /* other mass storage */
    default: return 0xff0000;
    }
}

VirtioPci *virtio_pci_new(VirtioDevice *vdev, const VirtioPciHostOps *host, void *host_opaque,
                          const MsiControllerOps *msi, void *msi_opaque, GError **error)
{
    VirtioPci *vp = g_new0(VirtioPci, 1);
    vp->vdev = vdev;
    vp->host = host;
    vp->host_opaque = host_opaque;
    g_mutex_init(&vp->lock);
    g_mutex_init(&vp->isr_lock);
    g_autofree char *name = g_strdup_printf("%s-pci %s", vdev->name, vdev->id);
    /* Non-transitional: device id 0x1040 + type, revision 1, subsystem id >= 0x40 (§4.1.2.1). */
    PciDeviceInfo info = {.name = name,
                          .vendor_id = VIRTIO_PCI_VENDOR_ID,
                          .device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + vdev->device_id),
                          .subsystem_vendor_id = VIRTIO_PCI_VENDOR_ID,
                          .subsystem_id = 0x1100,
                          .revision = 1,
                          .class_code = vp_class_code(vdev->device_id),
                          .intx = true};
    pci_device_init(&vp->pci, &info);
    vp->pci.bar_mapped = vp_bar_mapped;
    vp->pci.bar_opaque = vp;
    vp_reset_transport(vp);

    unsigned nvectors = vdev->nqueues + 1;
    uint8_t notify, cfg;
    if (!pci_register_bar(&vp->pci, VP_BAR_AREAS, PCI_BAR_KIND_MEM32, VP_BAR_AREAS_SIZE,
                          &vp_bar_ops, vp, error) ||
        !pci_register_bar(&vp->pci, VP_BAR_MSIX, PCI_BAR_KIND_MEM32, VP_BAR_MSIX_SIZE,
                          &vp_msix_bar_ops, vp, error) ||
        !vp_add_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_LEN, VP_COMMON_OFF, COMMON_LEN) ||
        !vp_add_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_LEN, VP_ISR_OFF, 1) ||
        !(notify = vp_add_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_CAP_LEN,
                              VP_NOTIFY_OFF, vdev->nqueues * VP_NOTIFY_MULT)) ||
        (vdev->config_size &&
         !vp_add_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_LEN, VP_DEVICE_OFF,
                     vdev->config_size)) ||
        !(cfg = vp_add_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_CFG_CAP_LEN, 0, 0)) ||
        vdev->nqueues * VP_NOTIFY_MULT > VP_AREA_SIZE || vdev->config_size > VP_AREA_SIZE ||
        msix_table_size(nvectors) > VP_MSIX_PBA_OFF) {
        if (error && !*error) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s: does not fit virtio-pci",
                        name);
        }
        virtio_pci_free(vp);
        return NULL;
    }
    pci_set_long(vp->pci.config + notify + 16, VP_NOTIFY_MULT);
    /* pci_cfg: the driver picks bar, offset and length, then accesses the data. */
    vp->pci_cfg_cap = cfg;
    vp->pci.wmask[cfg + 4] = 0xff;
    pci_set_long(vp->pci.wmask + cfg + 8, 0xffffffff);
    pci_set_long(vp->pci.wmask + cfg + 12, 0xffffffff);
    pci_set_long(vp->pci.wmask + cfg + 16, 0xffffffff);
    vp->pci.hook_cap = cfg;
    vp->pci.hook_len = VIRTIO_PCI_CFG_CAP_LEN;
    vp->pci.hook_read = vp_cfg_hook_read;
    vp->pci.hook_write = vp_cfg_hook_write;
    vp->pci.hook_opaque = vp;

    vp->msix = msix_new(&vp->pci, nvectors, VP_BAR_MSIX, VP_MSIX_TABLE_OFF, VP_MSIX_PBA_OFF, msi,
                        msi_opaque, error);
    if (!vp->msix) {
        virtio_pci_free(vp);
        return NULL;
    }
    virtio_set_transport(vdev, &vp_transport_ops, vp);
    return vp;
}

void virtio_pci_free(VirtioPci *vp)
{
    if (!vp) {
        return;
    }
    /* Unbind the ioeventfds while their eventfds are open, */
    if (vp->notify_mapped) {
        vp_bind_notify(vp, vp->notify_addr, false);
        vp->notify_mapped = false;
    }
    vp->pci.bar_mapped = NULL;
    /* then stop the device, whose thread may interrupt through us until it stops. */
    virtio_device_free(vp->vdev);
    pci_device_cleanup(&vp->pci);
    g_mutex_clear(&vp->lock);
    g_mutex_clear(&vp->isr_lock);
    g_free(vp);
}

PciDevice *virtio_pci_device(VirtioPci *vp)
{
    return &vp->pci;
}

VirtioDevice *virtio_pci_vdev(VirtioPci *vp)
{
    return vp->vdev;
}

void virtio_pci_reset(VirtioPci *vp)
{
    virtio_set_status(vp->vdev, 0);
    g_mutex_lock(&vp->lock);
    vp_reset_transport(vp);
    g_mutex_unlock(&vp->lock);
}

/* ---- save/restore ---- */

void virtio_pci_save(VirtioPci *vp, GByteArray *out)
{
    pci_device_save(&vp->pci, out);
    msix_save(vp->msix, out);
    g_mutex_lock(&vp->lock);
    state_put_u32(out, vp->dfselect);
    state_put_u32(out, vp->gfselect);
    state_put_u16(out, vp->queue_select);
    state_put_u16(out, (uint16_t)g_atomic_int_get(&vp->config_vector));
    state_put_u16(out, (uint16_t)vp->vdev->nqueues);
    for (unsigned q = 0; q < vp->vdev->nqueues; q++) {
        state_put_u16(out, (uint16_t)g_atomic_int_get(&vp->queue_vector[q]));
    }
    g_mutex_lock(&vp->isr_lock);
    state_put_u8(out, vp->isr);
    g_mutex_unlock(&vp->isr_lock);
    g_mutex_unlock(&vp->lock);
    virtio_device_save(vp->vdev, out);
}

static bool vp_load_refused(VirtioPci *vp, StateIn *in, const char *what, GError **error)
{
    state_in_check(in, false);
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                "%s: saved %s is truncated or does not match this device", vp->pci.name, what);
    return false;
}

bool virtio_pci_load(VirtioPci *vp, StateIn *in, GError **error)
{
    if (in->bad) {
        return vp_load_refused(vp, in, "state", error);
    }
    if (!pci_device_load(&vp->pci, in)) {
        return vp_load_refused(vp, in, "PCI configuration", error);
    }
    if (!msix_load(vp->msix, in)) {
        return vp_load_refused(vp, in, "MSI-X state", error);
    }
    uint32_t dfselect = state_get_u32(in);
    uint32_t gfselect = state_get_u32(in);
    uint16_t queue_select = state_get_u16(in);
    uint16_t config_vector = state_get_u16(in);
    unsigned nqueues = state_get_u16(in);
    state_in_check(in, nqueues == vp->vdev->nqueues);
    uint16_t queue_vector[VIRTIO_MAX_QUEUES];
    for (unsigned q = 0; q < nqueues && !in->bad; q++) {
        queue_vector[q] = state_get_u16(in);
        state_in_check(in, vp_valid_vector(vp, queue_vector[q]) == queue_vector[q]);
    }
    uint8_t isr = state_get_u8(in);
    /* Only valid vectors are stored (§4.1.5.1.2); the ISR and INTx rise and fall together. */
    state_in_check(in, vp_valid_vector(vp, config_vector) == config_vector);
    state_in_check(in, !(isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG)));
    g_mutex_lock(&vp->pci.intx_lock);
    state_in_check(in, vp->pci.intx_level == (isr != 0));
    g_mutex_unlock(&vp->pci.intx_lock);
    if (in->bad) {
        return vp_load_refused(vp, in, "transport registers", error);
    }
    g_mutex_lock(&vp->lock);
    vp->dfselect = dfselect;
    vp->gfselect = gfselect;
    vp->queue_select = queue_select;
    g_atomic_int_set(&vp->config_vector, config_vector);
    for (unsigned q = 0; q < nqueues; q++) {
        g_atomic_int_set(&vp->queue_vector[q], queue_vector[q]);
    }
    g_mutex_lock(&vp->isr_lock);
    vp->isr = isr;
    g_mutex_unlock(&vp->isr_lock);
    g_mutex_unlock(&vp->lock);
    return virtio_device_load(vp->vdev, in, error);
}
