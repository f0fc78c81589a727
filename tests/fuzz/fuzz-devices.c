/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "fuzz-devices.h"
#include "virtio/blk.h"

#include <stdlib.h>
#include <unistd.h>

FuzzPc *fuzz_pc_new(bool paused)
{
    FuzzPc *pc = g_new0(FuzzPc, 1);
    pc->mem = guest_mem_new(FUZZ_RAM_SIZE, FUZZ_RAM_SIZE, NULL);
    pc->pio = bus_new("pio");
    pc->mmio = bus_new("mmio");
    pc->host = pci_host_new(pc->pio, pc->mmio, fake_gsi, &pc->irq, NULL);
    g_assert(pc->mem && pc->host);
    /* The image only has to exist while the device opens it. */
    g_autofree char *img = NULL;
    int fd = g_file_open_tmp("qlite-fuzz-XXXXXX.img", &img, NULL);
    g_assert(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
    DriveConfig cfg = {.id = (char *)"d0", .file = img, .format = (char *)"raw"};
    g_autoptr(GError) err = NULL;
    VirtioDevice *vdev = virtio_blk_new(&cfg, pc->mem, &err);
    unlink(img);
    close(fd);
    g_assert_no_error(err);
    static const VirtioPciHostOps host_ops = {.ioeventfd = fake_ioeventfd};
    pc->vp = virtio_pci_new(vdev, &host_ops, &pc->irq, &fake_msi_ops, &pc->irq, &err);
    g_assert_no_error(err);
    g_assert(pci_host_plug(pc->host, virtio_pci_device(pc->vp), 0, &err));
    if (paused) {
        virtio_device_pause(virtio_pci_vdev(pc->vp));
    }
    return pc;
}
