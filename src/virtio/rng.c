/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "virtio/rng.h"

#include <errno.h>
#include <sys/random.h>

#define VIRTIO_ID_RNG         4
#define VIRTIO_RNG_QUEUE_SIZE 256

/* Fills up to len bytes of the chain's writable buffers; returns how many. */
static uint32_t rng_fill(VirtioDevice *vdev, VirtQueueElement *elem)
{
    uint32_t done = 0;
    for (unsigned i = 0; i < elem->in_num && done < VIRTIO_RNG_MAX_REQUEST; i++) {
        uint8_t *p = elem->in_sg[i].iov_base;
        size_t left = MIN(elem->in_sg[i].iov_len, (size_t)(VIRTIO_RNG_MAX_REQUEST - done));
        while (left > 0) {
            ssize_t n = getrandom(p, left, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return done; /* cannot happen for the kernel's pool; give what there is */
            }
            guest_mem_mark_dirty(vdev->mem, p, (uint64_t)n);
            p += n;
            left -= (size_t)n;
            done += (uint32_t)n;
        }
    }
    return done;
}

/* Serves every available request; false when the device stopped on a malformed ring. */
static bool rng_process_ring(VirtioDevice *vdev, VirtQueue *vq, bool *pushed)
{
    for (;;) {
        if (!vdev->active) {
            return false;
        }
        g_autoptr(GError) err = NULL;
        VirtQueueElement *elem;
        int rc = virtqueue_pop(vq, &elem, &err);
        if (rc < 0) {
            virtio_error(vdev, "%s", err->message);
            return false;
        }
        if (rc == 0) {
            return true;
        }
        /* §5.4.6.1: a request is device-writable buffers; readable ones are ignored. */
        virtqueue_push(vq, elem, rng_fill(vdev, elem));
        *pushed = true;
    }
}

static void rng_queue_notify(VirtioDevice *vdev, VirtQueue *vq)
{
    bool pushed = false, ok;
    /*
     * Kicks off while serving, on again after (with EVENT_IDX that moves
     * avail_event, without which the driver would never kick again), and a
     * last look for a request that came in between.
     */
    do {
        virtqueue_set_notification(vq, false);
        ok = rng_process_ring(vdev, vq, &pushed);
        virtqueue_set_notification(vq, true);
    } while (ok && !virtqueue_empty(vq));
    if (pushed) {
        virtio_notify(vdev, vq);
    }
}

static void rng_reset(VirtioDevice *vdev)
{
}

static void rng_activate(VirtioDevice *vdev)
{
}

static void rng_config_read(VirtioDevice *vdev, uint32_t offset, uint8_t *data, unsigned len)
{
}

static void rng_config_write(VirtioDevice *vdev, uint32_t offset, const uint8_t *data, unsigned len)
{
}

static void rng_free(VirtioDevice *vdev)
{
    g_free(vdev);
}

static const VirtioDeviceOps rng_ops = {
    .reset = rng_reset,
    .activate = rng_activate,
    .queue_notify = rng_queue_notify,
    .config_read = rng_config_read,
    .config_write = rng_config_write,
    .free = rng_free,
};

VirtioDevice *virtio_rng_new(const char *id, GuestMem *mem, GError **error)
{
    VirtioDevice *vdev = g_new0(VirtioDevice, 1);
    uint64_t features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_INDIRECT_DESC) |
                        (1ULL << VIRTIO_F_EVENT_IDX);
    if (!virtio_device_init(vdev, "virtio-rng", id ? id : "virtio-rng", VIRTIO_ID_RNG, &rng_ops,
                            mem, features, 1, VIRTIO_RNG_QUEUE_SIZE, 0, error)) {
        g_free(vdev);
        return NULL;
    }
    return vdev;
}
