/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The virtio device core, virtio 1.2 §2 and §3: status, feature negotiation,
 * queues, config space and reset, independent of any transport. A device
 * (blk.c, net.c) embeds a VirtioDevice and fills in VirtioDeviceOps; a
 * transport (virtio-pci.c) drives the core through the functions below and is
 * reached back only through VirtioTransportOps, so a device never knows which
 * transport carries it.
 *
 * Threads: the transport calls in from vCPU threads with vdev->lock NOT held;
 * the core takes it. Queue processing runs on the device's IoThread. Control
 * operations that touch running queues (reset, activation) are carried out on
 * the IoThread with iothread_run_sync, so they never race with it.
 */
#include "mem/guest-mem.h"
#include "util/iothread.h"
#include "util/state.h"
#include "virtio/virtqueue.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Device status bits, §2.1. */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED      128

/* Reserved feature bits, §6. */
#define VIRTIO_F_INDIRECT_DESC   28
#define VIRTIO_F_EVENT_IDX       29
#define VIRTIO_F_VERSION_1       32
#define VIRTIO_F_ACCESS_PLATFORM 33

#define VIRTIO_ID_NET   1
#define VIRTIO_ID_BLOCK 2

#define VIRTIO_MAX_QUEUES 64
#define VIRTIO_NO_VECTOR  0xffff

typedef struct VirtioDevice VirtioDevice;

typedef struct VirtioDeviceOps {
    /* Back to power-on state; on the IoThread, queues already stopped, I/O drained. */
    void (*reset)(VirtioDevice *vdev);
    /* DRIVER_OK was set and every enabled queue started; on the IoThread. */
    void (*activate)(VirtioDevice *vdev);
    /* The driver kicked queue vq (or activation / resume re-kicks it); on the IoThread. */
    void (*queue_notify)(VirtioDevice *vdev, VirtQueue *vq);
    /* Device-specific config space (§5.x), under vdev->lock; offset+len <= config_size. */
    void (*config_read)(VirtioDevice *vdev, uint32_t offset, uint8_t *data, unsigned len);
    void (*config_write)(VirtioDevice *vdev, uint32_t offset, const uint8_t *data, unsigned len);
    /* Frees the device's own part; the core has stopped everything. */
    void (*free)(VirtioDevice *vdev);
    /* Optional: wait until no request is in flight; on the IoThread (VM pause). */
    void (*drain)(VirtioDevice *vdev);
    /*
     * Optional: device state beyond the core's and the config space bytes
     * (which the core saves and compares), for save/restore. Under vdev->lock
     * with the device paused (save) or not yet live (load). load checks what
     * it reads; false with *error set refuses the state.
     */
    void (*save)(VirtioDevice *vdev, GByteArray *out);
    bool (*load)(VirtioDevice *vdev, StateIn *in, GError **error);
    /*
     * Optional: migration hands host resources shared with the other side
     * (an image's lock) over: own = false flushes and lets go, own = true
     * takes them (back). The device is paused or not yet live.
     */
    bool (*handover)(VirtioDevice *vdev, bool own, GError **error);
} VirtioDeviceOps;

typedef struct VirtioTransportOps {
    /* Interrupt the driver for queue index q (used buffers); any thread. */
    void (*notify_queue)(void *opaque, unsigned q);
    /* Interrupt the driver for a configuration change; any thread. */
    void (*notify_config)(void *opaque);
} VirtioTransportOps;

struct VirtioDevice {
    const char *name; /* for messages: "virtio-blk" */
    char *id;         /* user's id= or a generated one */
    uint16_t device_id;
    const VirtioDeviceOps *ops;
    GuestMem *mem;
    IoThread *iothread; /* owned by the core */

    GMutex lock; /* status, features, config space */
    uint64_t host_features;
    uint64_t guest_features;
    uint8_t status;
    uint8_t config_generation;
    uint32_t config_size;
    bool active; /* DRIVER_OK seen and queues started */
    bool paused; /* virtio_device_pause: kicks wait until resume (IoThread-owned) */

    unsigned nqueues;
    VirtQueue queues[VIRTIO_MAX_QUEUES];
    int kick_fd[VIRTIO_MAX_QUEUES]; /* eventfd the transport signals (KVM ioeventfd) */
    GSource *kick_src[VIRTIO_MAX_QUEUES];
    /* The opaque of each kick source: which device and queue it serves. */
    struct VirtioKickCtx {
        VirtioDevice *vdev;
        unsigned q;
    } kick_ctx[VIRTIO_MAX_QUEUES];

    const VirtioTransportOps *transport;
    void *transport_opaque;

    gint64 last_error_log; /* rate limit for guest-error messages */
};

/*
 * Sets up the core part: starts the IoThread (named after id), creates one
 * kick eventfd per queue. host_features must include VIRTIO_F_VERSION_1.
 */
bool virtio_device_init(VirtioDevice *vdev, const char *name, const char *id, uint16_t device_id,
                        const VirtioDeviceOps *ops, GuestMem *mem, uint64_t host_features,
                        unsigned nqueues, uint16_t queue_max_size, uint32_t config_size,
                        GError **error);
/*
 * VM pause: stops taking kicks and waits until no I/O is in flight, so the
 * device writes no guest memory until virtio_device_resume, which looks at
 * every queue again (no notification is lost). From a non-device thread.
 */
void virtio_device_pause(VirtioDevice *vdev);
void virtio_device_resume(VirtioDevice *vdev);
/* ops->handover, when the device has one. */
bool virtio_device_handover(VirtioDevice *vdev, bool own, GError **error);
/*
 * Save/restore of the device, paused (virtio_device_pause) so nothing is in
 * flight: status, features, config generation, whether it is live, each
 * queue (virtqueue_save), the config space bytes, then ops->save. Load is for
 * a device built from the same configuration that the guest has not driven
 * yet. It refuses (false, *error set, in marked bad) a state from a device
 * with another type, other host features (another configuration), other
 * config space contents (virtio-blk capacity, virtio-net MAC), another number
 * of queues, or with any inconsistent value, before it changes anything. A
 * device saved live comes back live but paused: queues mapped, activated
 * (ops->activate), kicks collected by the eventfds; virtio_device_resume
 * attaches them and looks at every queue, as after a VM pause. Any loaded
 * device is left paused, so the caller resumes every device it loads.
 */
void virtio_device_save(VirtioDevice *vdev, GByteArray *out);
bool virtio_device_load(VirtioDevice *vdev, StateIn *in, GError **error);
/*
 * Resets the device (draining its I/O), stops the IoThread, closes the
 * eventfds, calls ops->free.
 */
void virtio_device_free(VirtioDevice *vdev);

void virtio_set_transport(VirtioDevice *vdev, const VirtioTransportOps *ops, void *opaque);

/* ---- called by the transport (vCPU threads) ---- */
uint8_t virtio_get_status(VirtioDevice *vdev);
/*
 * Writes the status register (§2.1, §3.1.1): 0 resets the device (queues
 * stopped and I/O drained on the IoThread before this returns); FEATURES_OK is
 * kept only if the accepted features are a subset of host_features that
 * includes VERSION_1; DRIVER_OK starts every enabled queue and activates the
 * device (a queue that fails virtqueue_start marks the device NEEDS_RESET).
 */
void virtio_set_status(VirtioDevice *vdev, uint8_t status);
/* Feature words, 32 bits each (sel 0 = bits 0..31). Writes are ignored after FEATURES_OK. */
uint32_t virtio_get_host_features(VirtioDevice *vdev, unsigned sel);
uint32_t virtio_get_guest_features(VirtioDevice *vdev, unsigned sel);
void virtio_set_guest_features(VirtioDevice *vdev, unsigned sel, uint32_t value);
bool virtio_has_feature(VirtioDevice *vdev, unsigned bit); /* negotiated */
void virtio_config_read(VirtioDevice *vdev, uint32_t offset, uint8_t *data, unsigned len);
void virtio_config_write(VirtioDevice *vdev, uint32_t offset, const uint8_t *data, unsigned len);
/* Queue settings may only change while the queue is not enabled and DRIVER_OK is not set. */
VirtQueue *virtio_queue(VirtioDevice *vdev, unsigned q); /* NULL when q >= nqueues */
/* A notification arrived for queue q by a path other than the eventfd (userspace MMIO). */
void virtio_kick(VirtioDevice *vdev, unsigned q);

/* ---- called by devices (IoThread) ---- */
/* Interrupts the driver for vq if virtqueue_should_notify says it wants one. */
void virtio_notify(VirtioDevice *vdev, VirtQueue *vq);
/* Config space changed: bump the generation, interrupt the driver. */
void virtio_notify_config(VirtioDevice *vdev);
/*
 * The driver broke the rules (malformed chain, bad ring): log it (rate
 * limited), set NEEDS_RESET, stop processing queues, notify a config change
 * (§2.1.2). The VMM and other devices keep running.
 */
void virtio_error(VirtioDevice *vdev, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
