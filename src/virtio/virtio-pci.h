/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The virtio over PCI transport, modern interface only (virtio 1.2 §4.1):
 * vendor capabilities for the common, notify, ISR, device and pci_cfg areas
 * in BAR 0, MSI-X in BAR 1, INTx when the driver leaves MSI-X off. Queue
 * notifications arrive as ioeventfds bound to the device's kick eventfds, so
 * a vCPU never runs device code for them.
 */
#include "pci/msix.h"
#include "pci/pci.h"
#include "virtio/virtio.h"

#include <glib.h>
#include <stdbool.h>

#define VIRTIO_PCI_VENDOR_ID 0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040 /* + virtio device id, §4.1.2 */

typedef struct VirtioPci VirtioPci;

/* What the transport needs from the machine besides the PCI bus. */
typedef struct VirtioPciHostOps {
    /* Binds (assign) or unbinds fd to guest writes of len bytes at MMIO address addr. */
    bool (*ioeventfd)(void *opaque, int fd, uint64_t addr, unsigned len, bool assign,
                      GError **error);
} VirtioPciHostOps;

/* Wraps vdev (which the transport then owns) in a PCI function, ready to plug. */
VirtioPci *virtio_pci_new(VirtioDevice *vdev, const VirtioPciHostOps *host, void *host_opaque,
                          const MsiControllerOps *msi, void *msi_opaque, GError **error);
void virtio_pci_free(VirtioPci *vp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VirtioPci, virtio_pci_free)

PciDevice *virtio_pci_device(VirtioPci *vp);
VirtioDevice *virtio_pci_vdev(VirtioPci *vp);
/*
 * Save/restore of the whole function with the VM stopped and the device
 * paused: the PCI configuration space (pci_device_save), MSI-X, the
 * transport's registers (feature and queue selects, vectors, ISR), then the
 * virtio device (virtio_device_save). Load is for a function built from the
 * same configuration, before the guest runs: BARs decode where the source's
 * did, the notify ioeventfds are bound at the restored BAR 0 (as when the
 * guest moves it), every MSI-X route is set again, INTx is driven as saved.
 * The device comes back paused (virtio_device_resume starts it). Refuses
 * another device or any inconsistent value: false with *error set and in
 * marked bad; the caller still checks with state_in_finish that nothing is
 * left over. A refused load may leave the function half restored: discard it.
 */
void virtio_pci_save(VirtioPci *vp, GByteArray *out);
bool virtio_pci_load(VirtioPci *vp, StateIn *in, GError **error);
/* Power-on state after a machine reset: the device reset, vectors cleared. */
void virtio_pci_reset(VirtioPci *vp);
