/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * virtio-net (virtio 1.2 §5.1) on a network backend (net/net.h). One receive
 * and one transmit queue, no control queue; frames move on the device's
 * IoThread, which is also the backend's thread.
 */
#include "mem/guest-mem.h"
#include "net/net.h"
#include "virtio/virtio.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct VirtioNetConfig {
    const char *id; /* NULL: "virtio-net" */
    uint8_t mac[6];
} VirtioNetConfig;

/* Frame counters since the device was created (a guest reset does not clear them). */
typedef struct VirtioNetStats {
    uint64_t rx_frames, rx_bytes, rx_dropped;
    uint64_t tx_frames, tx_bytes, tx_dropped;
} VirtioNetStats;

/*
 * Sets up the device and attaches it to backend on its IoThread. On success
 * the device owns backend and frees it in virtio_device_free(); on failure
 * (the backend already serves another NIC, say) the caller still owns it.
 */
VirtioDevice *virtio_net_new(const VirtioNetConfig *cfg, NetBackend *backend, GuestMem *mem,
                             GError **error);
/* A snapshot of the counters, taken on the IoThread; from any other thread. */
void virtio_net_get_stats(VirtioDevice *vdev, VirtioNetStats *stats);

/*
 * "52:54:00:12:34:56": six bytes of two hex digits separated by colons.
 * Refuses anything else, and multicast or all-zero addresses, which no NIC
 * can own. mac is left alone on error.
 */
bool virtio_net_parse_mac(const char *text, uint8_t mac[6], GError **error);
/*
 * The MAC of the index-th NIC (from 0) that was given none: 52:54:00:12:34:56
 * plus index, as QEMU numbers them (:56, :57, ...). The sum carries into the
 * higher bytes instead of wrapping, so addresses stay distinct.
 */
void virtio_net_default_mac(unsigned index, uint8_t mac[6]);
