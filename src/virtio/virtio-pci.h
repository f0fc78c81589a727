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
/* Power-on state after a machine reset: the device reset, vectors cleared. */
void virtio_pci_reset(VirtioPci *vp);
