/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Split virtqueues, virtio 1.2 §2.7. The device side only: take available
 * descriptor chains, hand back used ones, decide whether the driver wants an
 * interrupt. Every address, length and index read from guest memory is
 * checked before use; a malformed ring makes the call fail, never crash.
 *
 * A VirtQueue is used from one thread at a time (the device's I/O thread once
 * the device is live; the vCPU thread writing the transport registers before).
 */
#include "mem/guest-mem.h"
#include "util/state.h"
#include "util/iov.h" /* iov_to_buf, iov_from_buf */

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define VIRTQ_MAX_SIZE 1024 /* largest queue a device offers (power of two) */

/* Descriptor flags, §2.7.5. */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4
/* §2.7.6 / §2.7.8 */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

typedef struct VirtQueue {
    /* Set by the transport from the driver's writes (virtio-pci common cfg). */
    uint16_t max_size; /* what the device offers */
    uint16_t size;     /* what the driver chose: power of two, <= max_size */
    bool enabled;
    uint64_t desc_gpa;
    uint64_t avail_gpa;
    uint64_t used_gpa;

    /* Device-side state, valid once virtqueue_start() succeeded. */
    bool started;
    bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
    GuestMem *mem;
    uint16_t last_avail_idx; /* next avail ring slot the device reads */
    uint16_t used_idx;       /* next used ring slot the device writes */
    uint16_t signalled_used; /* used_idx at the last interrupt (EVENT_IDX) */
    bool signalled_used_valid;
    unsigned inflight; /* chains popped and not yet pushed */
    /* Host addresses of the three ring areas, checked against RAM by virtqueue_start(). */
    uint8_t *desc_hva;
    uint8_t *avail_hva;
    uint8_t *used_hva;
} VirtQueue;

/*
 * One descriptor chain. out: buffers the device reads (driver -> device);
 * in: buffers the device writes. The iovecs point into guest RAM, each
 * checked to lie inside it. Chain order is kept within each direction.
 */
typedef struct VirtQueueElement {
    uint16_t head;
    unsigned out_num;
    unsigned in_num;
    uint64_t out_len; /* total bytes of out */
    uint64_t in_len;  /* total bytes of in */
    struct iovec *out_sg;
    struct iovec *in_sg;
} VirtQueueElement;

/* Power-on state: not enabled, size = max_size, addresses 0, counters 0. */
void virtqueue_init(VirtQueue *vq, uint16_t max_size);
void virtqueue_reset(VirtQueue *vq);

/*
 * Validates the driver's settings (size a power of two <= max_size, the three
 * ring areas aligned per §2.7 and inside guest RAM) and starts the queue.
 */
bool virtqueue_start(VirtQueue *vq, GuestMem *mem, bool event_idx, GError **error);

/*
 * Takes the next available chain. Returns 1 and sets *elem (free it with
 * virtqueue_element_free) when there is one, 0 when the ring is empty, -1 with
 * *error set when the ring or the chain is malformed: an index out of range,
 * a descriptor pointing outside RAM, a loop, a chain longer than the queue,
 * a nested or empty indirect table, a readable buffer after a writable one.
 */
int virtqueue_pop(VirtQueue *vq, VirtQueueElement **elem, GError **error);
void virtqueue_element_free(VirtQueueElement *elem);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VirtQueueElement, virtqueue_element_free)

/* Returns a chain to the driver with len bytes written; frees elem. */
void virtqueue_push(VirtQueue *vq, VirtQueueElement *elem, uint32_t len);
/*
 * Returns n chains with lens[i] bytes written to each, published by one used
 * index update so the driver sees all of them or none (a virtio-net frame
 * spread over several receive buffers, §5.1.6.4.1); frees the elements.
 */
void virtqueue_push_many(VirtQueue *vq, VirtQueueElement *const *elems, const uint32_t *lens,
                         unsigned n);
/* Drops a popped chain without returning it (the device gave up on it, NEEDS_RESET); frees elem. */
void virtqueue_detach(VirtQueue *vq, VirtQueueElement *elem);
/*
 * Gives the most recently popped chain back to the avail ring untouched, as if
 * never taken: the next pop returns it again. Several go back newest first.
 * Frees elem. For a device that found too few buffers for its whole request.
 */
void virtqueue_unpop(VirtQueue *vq, VirtQueueElement *elem);
/* True when the driver wants an interrupt for what was pushed since the last one (§2.7.7, §2.7.10). */
bool virtqueue_should_notify(VirtQueue *vq);
/* Asks the driver for (enable) or not for kicks (VIRTQ_USED_F_NO_NOTIFY or avail_event). */
void virtqueue_set_notification(VirtQueue *vq, bool enable);
/* True when the avail ring has no chain the device has not taken. */
bool virtqueue_empty(VirtQueue *vq);

/*
 * Save/restore of the device side of a queue, with no chain in flight (the
 * device paused): the driver's settings (size, enabled, ring addresses), then,
 * for a started queue, the device's indices and interrupt suppression state.
 * The rings themselves, flags and event indices included, are guest RAM.
 *
 * Load checks every value: max_size must match this queue's, a started queue
 * must pass what virtqueue_start checks (size, alignment, rings inside mem),
 * the device may not have taken more chains than the queue holds, a queue
 * that never started has its power-on indices. A started queue is mapped
 * again. On failure vq is unchanged, in is marked bad and error says why.
 */
void virtqueue_save(const VirtQueue *vq, GByteArray *out);
bool virtqueue_load(VirtQueue *vq, StateIn *in, GuestMem *mem, GError **error);
