/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The virtqueue walker: the input is the guest, a small RAM whose first
 * bytes choose the queue (size, ring addresses, EVENT_IDX) and whose content
 * is the rings, descriptor tables and buffers. Every chain the walker hands
 * out must lie inside RAM (ASan sees each byte read and written here), and a
 * malformed ring must end in an error, never a crash or a loop.
 */
#include "virtio/virtqueue.h"

#include <stdint.h>
#include <string.h>

#define RAM_SIZE (64 << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t take(const uint8_t **p, size_t *left, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && *left; i++, (*p)++, (*left)--) {
        v |= (uint64_t) * *p << (8 * i);
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static GuestMem *mem;
    if (!mem) {
        mem = guest_mem_new(RAM_SIZE, RAM_SIZE, NULL);
        g_assert(mem);
    }
    const uint8_t *p = data;
    size_t left = size;
    VirtQueue vq;
    virtqueue_init(&vq, 256);
    vq.size = (uint16_t)take(&p, &left, 2);
    vq.desc_gpa = take(&p, &left, 2) * 16;
    vq.avail_gpa = take(&p, &left, 2) * 2;
    vq.used_gpa = take(&p, &left, 2) * 4;
    bool event_idx = take(&p, &left, 1) & 1;
    uint8_t *ram = guest_mem_ptr(mem, 0, RAM_SIZE);
    memset(ram, 0, RAM_SIZE);
    memcpy(ram, p, MIN(left, (size_t)RAM_SIZE));
    vq.enabled = true;
    g_autoptr(GError) err = NULL;
    if (!virtqueue_start(&vq, mem, event_idx, &err)) {
        return 0;
    }
    /* Walk what is there; touch every byte of every buffer, give each chain back. */
    for (unsigned n = 0; n < 2 * 256; n++) {
        VirtQueueElement *elem = NULL;
        int got = virtqueue_pop(&vq, &elem, &err);
        if (got <= 0) {
            break;
        }
        volatile uint8_t sum = 0;
        for (unsigned i = 0; i < elem->out_num; i++) {
            for (size_t j = 0; j < elem->out_sg[i].iov_len; j++) {
                sum += ((const uint8_t *)elem->out_sg[i].iov_base)[j];
            }
        }
        for (unsigned i = 0; i < elem->in_num; i++) {
            memset(elem->in_sg[i].iov_base, sum, elem->in_sg[i].iov_len);
        }
        if (n % 3 == 2) {
            virtqueue_detach(&vq, elem);
        } else {
            virtqueue_push(&vq, elem, (uint32_t)MIN(elem->in_len, UINT32_MAX));
        }
        virtqueue_should_notify(&vq);
    }
    virtqueue_set_notification(&vq, true);
    virtqueue_empty(&vq);
    g_autoptr(GByteArray) saved = g_byte_array_new();
    if (vq.inflight == 0) {
        virtqueue_save(&vq, saved);
        StateIn in;
        state_in_init(&in, saved->data, saved->len);
        VirtQueue again;
        virtqueue_init(&again, 256);
        g_assert(virtqueue_load(&again, &in, mem, &err));
    }
    return 0;
}
