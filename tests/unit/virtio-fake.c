/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "virtio-fake.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void *gptr(FakeVq *f, uint64_t gpa, uint64_t len)
{
    void *p = guest_mem_ptr(f->mem, gpa, len);
    g_assert_nonnull(p);
    return p;
}

static uint16_t *avail_u16(FakeVq *f, unsigned slot)
{
    return gptr(f, f->avail_gpa + 2 * (uint64_t)slot, 2);
}

static uint16_t *used_u16(FakeVq *f, uint64_t offset)
{
    return gptr(f, f->used_gpa + offset, 2);
}

void fake_vq_init(FakeVq *f, GuestMem *mem, uint64_t base, uint16_t size)
{
    memset(f, 0, sizeof(*f));
    f->mem = mem;
    f->size = size;
    f->desc_gpa = base;
    f->avail_gpa = base + 16 * (uint64_t)size;
    f->used_gpa = (f->avail_gpa + 6 + 2 * (uint64_t)size + 4095) & ~4095ULL;
    memset(gptr(f, base, fake_vq_end(f) - base), 0, fake_vq_end(f) - base);
    for (unsigned i = 0; i < size; i++) {
        f->free_stack[f->nfree++] = (uint16_t)(size - 1 - i);
    }
}

uint64_t fake_vq_end(const FakeVq *f)
{
    return (f->used_gpa + 6 + 8 * (uint64_t)f->size + 4095) & ~4095ULL;
}

void fake_vq_apply(const FakeVq *f, VirtQueue *vq)
{
    vq->size = f->size;
    vq->desc_gpa = f->desc_gpa;
    vq->avail_gpa = f->avail_gpa;
    vq->used_gpa = f->used_gpa;
    vq->enabled = true;
}

void fake_vq_set_desc(FakeVq *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                      uint16_t next)
{
    uint8_t *d = gptr(f, f->desc_gpa + 16 * (uint64_t)i, 16);
    uint64_t a = GUINT64_TO_LE(addr);
    uint32_t l = GUINT32_TO_LE(len);
    uint16_t fl = GUINT16_TO_LE(flags), n = GUINT16_TO_LE(next);
    memcpy(d, &a, 8);
    memcpy(d + 8, &l, 4);
    memcpy(d + 12, &fl, 2);
    memcpy(d + 14, &n, 2);
}

void fake_vq_set_avail_idx(FakeVq *f, uint16_t idx)
{
    f->avail_idx = idx;
    __atomic_store_n(avail_u16(f, 1), GUINT16_TO_LE(idx), __ATOMIC_RELEASE);
}

void fake_vq_publish(FakeVq *f, uint16_t head)
{
    __atomic_store_n(avail_u16(f, 2 + f->avail_idx % f->size), GUINT16_TO_LE(head),
                     __ATOMIC_RELAXED);
    fake_vq_set_avail_idx(f, (uint16_t)(f->avail_idx + 1));
}

static uint16_t desc_alloc(FakeVq *f)
{
    g_assert_cmpuint(f->nfree, >, 0);
    return f->free_stack[--f->nfree];
}

static uint16_t buf_flags(const FakeBuf *b)
{
    return b->write ? VIRTQ_DESC_F_WRITE : 0;
}

uint16_t fake_vq_add(FakeVq *f, const FakeBuf *bufs, unsigned n)
{
    g_assert_cmpuint(n, >, 0);
    g_assert_cmpuint(n, <=, f->nfree);
    uint16_t idx[VIRTQ_MAX_SIZE];
    for (unsigned i = 0; i < n; i++) {
        idx[i] = desc_alloc(f);
    }
    for (unsigned i = 0; i < n; i++) {
        bool last = i + 1 == n;
        fake_vq_set_desc(f, idx[i], bufs[i].gpa, bufs[i].len,
                         buf_flags(&bufs[i]) | (last ? 0 : VIRTQ_DESC_F_NEXT),
                         last ? 0 : idx[i + 1]);
    }
    f->owned[idx[0]] = true;
    fake_vq_publish(f, idx[0]);
    return idx[0];
}

void fake_vq_write_table(FakeVq *f, uint64_t table_gpa, const FakeBuf *bufs, unsigned n)
{
    uint8_t *t = gptr(f, table_gpa, 16 * (uint64_t)n);
    for (unsigned i = 0; i < n; i++) {
        bool last = i + 1 == n;
        uint64_t a = GUINT64_TO_LE(bufs[i].gpa);
        uint32_t l = GUINT32_TO_LE(bufs[i].len);
        uint16_t fl = GUINT16_TO_LE(buf_flags(&bufs[i]) | (last ? 0 : VIRTQ_DESC_F_NEXT));
        uint16_t nx = GUINT16_TO_LE(last ? 0 : i + 1);
        memcpy(t + 16 * i, &a, 8);
        memcpy(t + 16 * i + 8, &l, 4);
        memcpy(t + 16 * i + 12, &fl, 2);
        memcpy(t + 16 * i + 14, &nx, 2);
    }
}

uint16_t fake_vq_add_indirect(FakeVq *f, uint64_t table_gpa, const FakeBuf *bufs, unsigned n)
{
    fake_vq_write_table(f, table_gpa, bufs, n);
    uint16_t head = desc_alloc(f);
    fake_vq_set_desc(f, head, table_gpa, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
    f->owned[head] = true;
    fake_vq_publish(f, head);
    return head;
}

uint16_t fake_vq_used_idx(FakeVq *f)
{
    return GUINT16_FROM_LE(__atomic_load_n(used_u16(f, 2), __ATOMIC_ACQUIRE));
}

/* Gives the descriptors of a used chain back to the free stack. */
static void chain_free(FakeVq *f, uint16_t head)
{
    f->owned[head] = false;
    uint16_t i = head;
    for (;;) {
        f->free_stack[f->nfree++] = i;
        const uint8_t *d = gptr(f, f->desc_gpa + 16 * (uint64_t)i, 16);
        uint16_t flags, next;
        memcpy(&flags, d + 12, 2);
        memcpy(&next, d + 14, 2);
        if (!(GUINT16_FROM_LE(flags) & VIRTQ_DESC_F_NEXT)) {
            return;
        }
        i = GUINT16_FROM_LE(next);
    }
}

bool fake_vq_pop_used(FakeVq *f, uint32_t *id, uint32_t *len)
{
    if (fake_vq_used_idx(f) == f->last_used) {
        return false;
    }
    const uint32_t *e = gptr(f, f->used_gpa + 4 + 8 * (uint64_t)(f->last_used % f->size), 8);
    *id = GUINT32_FROM_LE(e[0]);
    *len = GUINT32_FROM_LE(e[1]);
    f->last_used++;
    if (*id < f->size && f->owned[*id]) {
        chain_free(f, (uint16_t)*id);
    }
    return true;
}

void fake_vq_set_avail_flags(FakeVq *f, uint16_t flags)
{
    __atomic_store_n(avail_u16(f, 0), GUINT16_TO_LE(flags), __ATOMIC_RELAXED);
}

void fake_vq_set_used_event(FakeVq *f, uint16_t idx)
{
    __atomic_store_n(avail_u16(f, 2 + f->size), GUINT16_TO_LE(idx), __ATOMIC_RELAXED);
}

uint16_t fake_vq_used_flags(FakeVq *f)
{
    return GUINT16_FROM_LE(__atomic_load_n(used_u16(f, 0), __ATOMIC_RELAXED));
}

uint16_t fake_vq_avail_event(FakeVq *f)
{
    return GUINT16_FROM_LE(
        __atomic_load_n(used_u16(f, 4 + 8 * (uint64_t)f->size), __ATOMIC_RELAXED));
}

/* ---- transport ---- */

static void fake_notify_queue(void *opaque, unsigned q)
{
    FakeTransport *t = opaque;
    __atomic_add_fetch(&t->queue_irqs, 1, __ATOMIC_RELAXED);
    uint64_t one = 1;
    g_assert_cmpint(write(t->irq_fd, &one, sizeof(one)), ==, sizeof(one));
}

static void fake_notify_config(void *opaque)
{
    FakeTransport *t = opaque;
    __atomic_add_fetch(&t->config_irqs, 1, __ATOMIC_RELAXED);
}

static const VirtioTransportOps fake_transport_ops = {
    .notify_queue = fake_notify_queue,
    .notify_config = fake_notify_config,
};

void fake_transport_init(FakeTransport *t, VirtioDevice *vdev)
{
    memset(t, 0, sizeof(*t));
    t->irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g_assert_cmpint(t->irq_fd, >=, 0);
    virtio_set_transport(vdev, &fake_transport_ops, t);
}

void fake_transport_destroy(FakeTransport *t)
{
    close(t->irq_fd);
}

unsigned fake_transport_config_irqs(FakeTransport *t)
{
    return __atomic_load_n(&t->config_irqs, __ATOMIC_RELAXED);
}

unsigned fake_transport_queue_irqs(FakeTransport *t)
{
    return __atomic_load_n(&t->queue_irqs, __ATOMIC_RELAXED);
}

bool fake_vq_wait_used(FakeVq *f, FakeTransport *t, unsigned n, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    for (;;) {
        /* Ask for an interrupt at the next used entry, then look (§2.7.10 driver side). */
        fake_vq_set_used_event(f, f->last_used);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if ((uint16_t)(fake_vq_used_idx(f) - f->last_used) >= n) {
            return true;
        }
        gint64 left = deadline - g_get_monotonic_time();
        if (left <= 0) {
            return false;
        }
        struct pollfd pfd = {.fd = t->irq_fd, .events = POLLIN};
        int rc = poll(&pfd, 1, (int)MAX(1, left / 1000));
        if (rc < 0 && errno != EINTR) {
            g_error("poll: %s", g_strerror(errno));
        }
        uint64_t v;
        while (read(t->irq_fd, &v, sizeof(v)) == sizeof(v)) {
        }
    }
}

uint8_t fake_virtio_start_queues(VirtioDevice *vdev, const FakeVq *const *fqs, unsigned n,
                                 uint64_t features)
{
    virtio_set_status(vdev, 0);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_guest_features(vdev, 0, (uint32_t)features);
    virtio_set_guest_features(vdev, 1, (uint32_t)(features >> 32));
    uint8_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    virtio_set_status(vdev, s);
    if (!(virtio_get_status(vdev) & VIRTIO_STATUS_FEATURES_OK)) {
        return virtio_get_status(vdev);
    }
    for (unsigned q = 0; q < n; q++) {
        fake_vq_apply(fqs[q], virtio_queue(vdev, q));
    }
    virtio_set_status(vdev, s | VIRTIO_STATUS_DRIVER_OK);
    return virtio_get_status(vdev);
}

static void count_warning(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                          gpointer opaque)
{
    __atomic_add_fetch((unsigned *)opaque, 1, __ATOMIC_RELAXED);
}

void fake_count_virtio_warnings(unsigned *counter)
{
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    g_log_set_handler("qlite-virtio", G_LOG_LEVEL_WARNING, count_warning, counter);
}

uint64_t fake_config_read(VirtioDevice *vdev, uint32_t offset, unsigned len)
{
    uint8_t b[8] = {0};
    virtio_config_read(vdev, offset, b, len);
    uint64_t x = 0;
    memcpy(&x, b, len);
    return GUINT64_FROM_LE(x);
}

uint8_t fake_virtio_start(VirtioDevice *vdev, const FakeVq *f, uint64_t features)
{
    return fake_virtio_start_queues(vdev, &f, 1, features);
}

uint16_t fake_blk_submit(FakeVq *f, uint64_t req_gpa, uint32_t type, uint64_t sector,
                         uint64_t data_gpa, uint32_t data_len, bool device_writes_data,
                         uint64_t table_gpa)
{
    uint8_t *hdr = gptr(f, req_gpa, 17);
    uint32_t t = GUINT32_TO_LE(type), reserved = 0;
    uint64_t s = GUINT64_TO_LE(sector);
    memcpy(hdr, &t, 4);
    memcpy(hdr + 4, &reserved, 4);
    memcpy(hdr + 8, &s, 8);
    hdr[16] = 0xff; /* the device must overwrite it */
    FakeBuf bufs[3];
    unsigned n = 0;
    bufs[n++] = (FakeBuf){.gpa = req_gpa, .len = 16, .write = false};
    if (data_len) {
        bufs[n++] = (FakeBuf){.gpa = data_gpa, .len = data_len, .write = device_writes_data};
    }
    bufs[n++] = (FakeBuf){.gpa = req_gpa + 16, .len = 1, .write = true};
    return table_gpa ? fake_vq_add_indirect(f, table_gpa, bufs, n) : fake_vq_add(f, bufs, n);
}

uint8_t fake_blk_status(FakeVq *f, uint64_t req_gpa)
{
    return *(uint8_t *)gptr(f, req_gpa + 16, 1);
}
