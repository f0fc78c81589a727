/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * virtio-rng (virtio 1.2 §5.4): one request queue whose device-writable
 * buffers are filled from the kernel's random pool (getrandom), on the
 * device's IoThread.
 */
#include "mem/guest-mem.h"
#include "virtio/virtio.h"

#include <glib.h>

/* Bytes given for one request at most: a driver asking for more gets this many. */
#define VIRTIO_RNG_MAX_REQUEST (64 * 1024)

VirtioDevice *virtio_rng_new(const char *id, GuestMem *mem, GError **error);
