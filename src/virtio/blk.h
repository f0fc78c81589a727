/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * virtio-blk (virtio 1.2 §5.2) on a raw or qcow2 image (block/block.h). One request
 * queue; I/O runs on the device's IoThread through Linux AIO.
 */
#include "block/accounting.h"
#include "block/block.h"
#include "mem/guest-mem.h"
#include "virtio/virtio.h"

#include <glib.h>

/* Opens the image and sets up the device; free it with virtio_device_free(). */
VirtioDevice *virtio_blk_new(const DriveConfig *cfg, GuestMem *mem, GError **error);
/* The device's image (for query-block: block_format, block_length, block_backing_depth). */
BlockBackend *virtio_blk_backend(VirtioDevice *vdev);
/* The device's I/O statistics since it was created (query-blockstats). */
void virtio_blk_stats(VirtioDevice *vdev, BlockAcctSnapshot *out);
