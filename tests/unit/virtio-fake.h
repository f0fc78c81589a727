/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A fake virtio driver over a real GuestMem (no KVM): lays out a split
 * virtqueue, builds descriptor chains, publishes them and reads the used
 * ring, plus a fake transport that counts interrupts. Shared by the unit
 * tests and bench/blk-model.c.
 */
#include "mem/guest-mem.h"
#include "virtio/virtio.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t gpa;
    uint32_t len;
    bool write; /* device-writable */
} FakeBuf;

typedef struct FakeVq {
    GuestMem *mem;
    uint16_t size;
    uint64_t desc_gpa;
    uint64_t avail_gpa;
    uint64_t used_gpa;
    uint16_t avail_idx; /* next avail index the driver publishes */
    uint16_t last_used; /* next used entry the driver reads */
    uint16_t free_stack[VIRTQ_MAX_SIZE];
    unsigned nfree;
    bool owned[VIRTQ_MAX_SIZE]; /* heads allocated by fake_vq_add*, freed when used */
} FakeVq;

/* Rings at base (4 KiB aligned), everything zeroed; size a power of two. */
void fake_vq_init(FakeVq *f, GuestMem *mem, uint64_t base, uint16_t size);
/* End of the ring area: free guest memory starts here. */
uint64_t fake_vq_end(const FakeVq *f);
/* What the transport does from the driver's register writes: size, addresses, enable. */
void fake_vq_apply(const FakeVq *f, VirtQueue *vq);

/* Raw descriptor write, for building malformed chains. */
void fake_vq_set_desc(FakeVq *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                      uint16_t next);
/* Writes head into the next avail slot and bumps avail->idx (release). */
void fake_vq_publish(FakeVq *f, uint16_t head);
/* Sets avail->idx directly. */
void fake_vq_set_avail_idx(FakeVq *f, uint16_t idx);
/* A direct chain of n buffers from free descriptors, published; returns its head. */
uint16_t fake_vq_add(FakeVq *f, const FakeBuf *bufs, unsigned n);
/* Fills an indirect table at table_gpa with bufs chained in order (§2.7.5.3). */
void fake_vq_write_table(FakeVq *f, uint64_t table_gpa, const FakeBuf *bufs, unsigned n);
/* One descriptor pointing at an indirect table at table_gpa holding bufs, published. */
uint16_t fake_vq_add_indirect(FakeVq *f, uint64_t table_gpa, const FakeBuf *bufs, unsigned n);

/* Device-written used index (acquire). */
uint16_t fake_vq_used_idx(FakeVq *f);
/* Takes the next used element; false when there is none. */
bool fake_vq_pop_used(FakeVq *f, uint32_t *id, uint32_t *len);
void fake_vq_set_avail_flags(FakeVq *f, uint16_t flags);
void fake_vq_set_used_event(FakeVq *f, uint16_t idx);
uint16_t fake_vq_used_flags(FakeVq *f);
uint16_t fake_vq_avail_event(FakeVq *f);

/* A transport whose queue interrupts signal an eventfd, counted. */
typedef struct FakeTransport {
    int irq_fd;
    unsigned queue_irqs;
    unsigned config_irqs;
} FakeTransport;

void fake_transport_init(FakeTransport *t, VirtioDevice *vdev);
void fake_transport_destroy(FakeTransport *t);
unsigned fake_transport_config_irqs(FakeTransport *t);
unsigned fake_transport_queue_irqs(FakeTransport *t);

/*
 * Waits (interrupt driven, like a driver) until at least n used elements are
 * unread, for at most timeout_ms. Returns false on timeout.
 */
bool fake_vq_wait_used(FakeVq *f, FakeTransport *t, unsigned n, int timeout_ms);

/*
 * Guest errors are warnings by design (virtio_error): counts the virtio
 * library's warnings into *counter instead of aborting the test.
 */
void fake_count_virtio_warnings(unsigned *counter);

/* A device config field of len (1..8) bytes at offset, as the driver reads it. */
uint64_t fake_config_read(VirtioDevice *vdev, uint32_t offset, unsigned len);

/* §3.1.1 initialization with the given features; returns the final status. */
uint8_t fake_virtio_start(VirtioDevice *vdev, const FakeVq *f, uint64_t features);
/* The same for a device with several queues: fqs[i] drives queue i. */
uint8_t fake_virtio_start_queues(VirtioDevice *vdev, const FakeVq *const *fqs, unsigned n,
                                 uint64_t features);

/*
 * A virtio-blk request at req_gpa: 16-byte header there, status byte at
 * req_gpa + 16, data (if data_len) at data_gpa; published; returns the head.
 * With table_gpa non-zero the chain goes into an indirect table there.
 */
uint16_t fake_blk_submit(FakeVq *f, uint64_t req_gpa, uint32_t type, uint64_t sector,
                         uint64_t data_gpa, uint32_t data_len, bool device_writes_data,
                         uint64_t table_gpa);
uint8_t fake_blk_status(FakeVq *f, uint64_t req_gpa);
