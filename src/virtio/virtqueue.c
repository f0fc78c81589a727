/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueues, virtio 1.2 §2.7, device side. The driver owns the
 * descriptor table and the available ring and may change them at any time, so
 * every value is read from guest memory exactly once into a local and checked
 * before use.
 */
#include "virtio/virtqueue.h"
#include "util/error.h"

#include <inttypes.h>
#include <string.h>

/* §2.7.5 */
typedef struct {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VirtqDesc;
G_STATIC_ASSERT(sizeof(VirtqDesc) == 16);

/* Longest indirect table accepted (§2.7.5.3.1 leaves the bound to the device). */
#define VIRTQ_INDIRECT_MAX VIRTQ_MAX_SIZE

/* Layout of the avail and used rings, §2.7.6 and §2.7.8: flags, idx, ring[], event. */
#define RING_FLAGS 0
#define RING_IDX   2
#define RING_START 4

/* Buffers gathered while walking one chain: at most a direct chain plus one indirect table. */
typedef struct {
    struct iovec iov[VIRTQ_MAX_SIZE + VIRTQ_INDIRECT_MAX];
    unsigned n;
    unsigned out_num;
    uint64_t out_len;
    uint64_t in_len;
    bool seen_write;
} ChainBuilder;

static uint16_t *avail_idx_ptr(VirtQueue *vq)
{
    return (uint16_t *)(vq->avail_hva + RING_IDX);
}

static uint16_t *used_idx_ptr(VirtQueue *vq)
{
    return (uint16_t *)(vq->used_hva + RING_IDX);
}

/* used_event lives after the avail ring, avail_event after the used ring (§2.7.10). */
static uint16_t *used_event_ptr(VirtQueue *vq)
{
    return (uint16_t *)(vq->avail_hva + RING_START + 2 * (size_t)vq->size);
}

static uint16_t *avail_event_ptr(VirtQueue *vq)
{
    return (uint16_t *)(vq->used_hva + RING_START + 8 * (size_t)vq->size);
}

static uint16_t load16(uint16_t *p, int order)
{
    return GUINT16_FROM_LE(__atomic_load_n(p, order));
}

static void store16(uint16_t *p, uint16_t v, int order)
{
    __atomic_store_n(p, GUINT16_TO_LE(v), order);
}

/*
 * One fetch of a descriptor: the compiler barrier after the copy keeps the
 * compiler from re-reading guest memory in place of the local copy.
 */
static void desc_read(const uint8_t *table, unsigned i, VirtqDesc *d)
{
    memcpy(d, table + 16 * (size_t)i, sizeof(*d));
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    d->addr = GUINT64_FROM_LE(d->addr);
    d->len = GUINT32_FROM_LE(d->len);
    d->flags = GUINT16_FROM_LE(d->flags);
    d->next = GUINT16_FROM_LE(d->next);
}

void virtqueue_init(VirtQueue *vq, uint16_t max_size)
{
    memset(vq, 0, sizeof(*vq));
    vq->max_size = max_size;
    vq->size = max_size;
}

void virtqueue_reset(VirtQueue *vq)
{
    virtqueue_init(vq, vq->max_size);
}

bool virtqueue_start(VirtQueue *vq, GuestMem *mem, bool event_idx, GError **error)
{
    unsigned size = vq->size;
    if (size == 0 || (size & (size - 1)) || size > vq->max_size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "queue size %u is not a power of two up to %u", size, vq->max_size);
        return false;
    }
    /* Alignment and sizes of the three areas, §2.7 table "Virtqueue Part Alignment". */
    if (vq->desc_gpa % 16 || vq->avail_gpa % 2 || vq->used_gpa % 4) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "misaligned ring (descriptors 0x%" PRIx64 ", avail 0x%" PRIx64
                    ", used 0x%" PRIx64 ")",
                    vq->desc_gpa, vq->avail_gpa, vq->used_gpa);
        return false;
    }
    uint8_t *desc = guest_mem_ptr(mem, vq->desc_gpa, 16 * (uint64_t)size);
    uint8_t *avail = guest_mem_ptr(mem, vq->avail_gpa, 6 + 2 * (uint64_t)size);
    uint8_t *used = guest_mem_ptr(mem, vq->used_gpa, 6 + 8 * (uint64_t)size);
    if (!desc || !avail || !used) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "ring outside guest RAM (descriptors 0x%" PRIx64 ", avail 0x%" PRIx64
                    ", used 0x%" PRIx64 ", size %u)",
                    vq->desc_gpa, vq->avail_gpa, vq->used_gpa, size);
        return false;
    }
    vq->desc_hva = desc;
    vq->avail_hva = avail;
    vq->used_hva = used;
    vq->mem = mem;
    vq->event_idx = event_idx;
    vq->signalled_used_valid = false;
    vq->inflight = 0;
    vq->started = true;
    return true;
}

static bool chain_add(VirtQueue *vq, ChainBuilder *b, const VirtqDesc *d, GError **error)
{
    bool write = d->flags & VIRTQ_DESC_F_WRITE;
    /* §2.7.4.2: device-writable descriptors come after all device-readable ones. */
    if (!write && b->seen_write) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "readable descriptor after a writable one");
        return false;
    }
    b->seen_write |= write;
    if (d->len == 0) {
        return true;
    }
    void *p = guest_mem_ptr(vq->mem, d->addr, d->len);
    if (!p) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "buffer 0x%" PRIx64 "+%" PRIu32 " outside guest RAM", d->addr, d->len);
        return false;
    }
    b->iov[b->n++] = (struct iovec){.iov_base = p, .iov_len = d->len};
    if (write) {
        b->in_len += d->len;
    } else {
        b->out_num++;
        b->out_len += d->len;
    }
    return true;
}

/* §2.7.5.3: a table of descriptors chained from entry 0, no nesting. */
static bool walk_indirect(VirtQueue *vq, ChainBuilder *b, const VirtqDesc *ind, GError **error)
{
    if (ind->flags & VIRTQ_DESC_F_NEXT) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "descriptor has both INDIRECT and NEXT set");
        return false;
    }
    if (ind->len == 0 || ind->len % 16) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "indirect table length %" PRIu32 " is not a positive multiple of 16", ind->len);
        return false;
    }
    unsigned n = ind->len / 16;
    if (n > VIRTQ_INDIRECT_MAX) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "indirect table of %u descriptors is longer than %u", n, VIRTQ_INDIRECT_MAX);
        return false;
    }
    const uint8_t *table = guest_mem_ptr(vq->mem, ind->addr, ind->len);
    if (!table) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "indirect table 0x%" PRIx64 "+%" PRIu32 " outside guest RAM", ind->addr,
                    ind->len);
        return false;
    }
    unsigned i = 0;
    for (unsigned count = 1;; count++) {
        if (count > n) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "indirect chain longer than its table of %u (a loop)", n);
            return false;
        }
        VirtqDesc d;
        desc_read(table, i, &d);
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "nested indirect table");
            return false;
        }
        if (!chain_add(vq, b, &d, error)) {
            return false;
        }
        if (!(d.flags & VIRTQ_DESC_F_NEXT)) {
            return true;
        }
        if (d.next >= n) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "indirect next index %u out of range (table of %u)", d.next, n);
            return false;
        }
        i = d.next;
    }
}

static bool walk_chain(VirtQueue *vq, ChainBuilder *b, uint16_t head, GError **error)
{
    unsigned size = vq->size;
    unsigned i = head;
    for (unsigned count = 1;; count++) {
        /* §2.7.5.2: no chain is longer than the queue, so a longer walk is a loop. */
        if (count > size) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "descriptor chain from %u longer than the queue size %u (a loop)", head,
                        size);
            return false;
        }
        VirtqDesc d;
        desc_read(vq->desc_hva, i, &d);
        /* §2.7.5.3.2: an indirect descriptor may end a chain of direct ones. */
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            return walk_indirect(vq, b, &d, error);
        }
        if (!chain_add(vq, b, &d, error)) {
            return false;
        }
        if (!(d.flags & VIRTQ_DESC_F_NEXT)) {
            return true;
        }
        if (d.next >= size) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "next index %u out of range (queue size %u)", d.next, size);
            return false;
        }
        i = d.next;
    }
}

int virtqueue_pop(VirtQueue *vq, VirtQueueElement **elem, GError **error)
{
    if (!vq->started) {
        return 0;
    }
    /* Acquire: ring entries and descriptors are read after the index that published them. */
    uint16_t avail_idx = load16(avail_idx_ptr(vq), __ATOMIC_ACQUIRE);
    uint16_t pending = (uint16_t)(avail_idx - vq->last_avail_idx);
    if (pending == 0) {
        return 0;
    }
    if (pending > vq->size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "available index %u is %u entries ahead of %u (queue size %u)", avail_idx,
                    pending, vq->last_avail_idx, vq->size);
        return -1;
    }
    uint16_t *slot = (uint16_t *)(vq->avail_hva + RING_START) + vq->last_avail_idx % vq->size;
    uint16_t head = load16(slot, __ATOMIC_RELAXED);
    if (head >= vq->size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "head index %u out of range (queue size %u)", head, vq->size);
        return -1;
    }

    /* 32 KiB on the stack: popping runs on the device thread, not in a signal handler. */
    ChainBuilder builder;
    ChainBuilder *b = &builder;
    b->n = b->out_num = 0;
    b->out_len = b->in_len = 0;
    b->seen_write = false;
    if (!walk_chain(vq, b, head, error)) {
        return -1;
    }
    if (b->out_len + b->in_len == 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "descriptor chain from %u has no data",
                    head);
        return -1;
    }

    VirtQueueElement *e = g_malloc(sizeof(*e) + b->n * sizeof(struct iovec));
    e->head = head;
    e->out_num = b->out_num;
    e->in_num = b->n - b->out_num;
    e->out_len = b->out_len;
    e->in_len = b->in_len;
    e->out_sg = (struct iovec *)(e + 1);
    e->in_sg = e->out_sg + e->out_num;
    memcpy(e->out_sg, b->iov, b->n * sizeof(struct iovec));
    vq->last_avail_idx++;
    vq->inflight++;
    *elem = e;
    return 1;
}

void virtqueue_element_free(VirtQueueElement *elem)
{
    g_free(elem);
}

void virtqueue_push(VirtQueue *vq, VirtQueueElement *elem, uint32_t len)
{
    virtqueue_push_many(vq, &elem, &len, 1);
}

/*
 * What the device writes into guest RAM, for a migration's dirty tracking:
 * the used ring (flags, elements, index, avail_event) and the buffers of
 * the chains it hands back.
 */
static void mark_used_ring_dirty(VirtQueue *vq)
{
    guest_mem_mark_dirty(vq->mem, vq->used_hva, RING_START + 8 * (uint64_t)vq->size + 2);
}

void virtqueue_push_many(VirtQueue *vq, VirtQueueElement *const *elems, const uint32_t *lens,
                         unsigned n)
{
    if (vq->used_hva) {
        for (unsigned i = 0; i < n; i++) {
            guest_mem_mark_dirty_iov(vq->mem, elems[i]->in_sg, elems[i]->in_num);
        }
        for (unsigned i = 0; i < n; i++) {
            uint16_t slot = (uint16_t)(vq->used_idx + i) % vq->size;
            uint32_t *e = (uint32_t *)(vq->used_hva + RING_START) + 2 * slot;
            __atomic_store_n(&e[0], GUINT32_TO_LE(elems[i]->head), __ATOMIC_RELAXED);
            __atomic_store_n(&e[1], GUINT32_TO_LE(lens[i]), __ATOMIC_RELAXED);
        }
        vq->used_idx += n;
        /* §2.7.8: the elements are visible to the driver before the index that publishes them. */
        __atomic_thread_fence(__ATOMIC_RELEASE);
        store16(used_idx_ptr(vq), vq->used_idx, __ATOMIC_RELAXED);
        mark_used_ring_dirty(vq);
        vq->inflight -= n;
    }
    for (unsigned i = 0; i < n; i++) {
        virtqueue_element_free(elems[i]);
    }
}

void virtqueue_detach(VirtQueue *vq, VirtQueueElement *elem)
{
    vq->inflight--;
    virtqueue_element_free(elem);
}

void virtqueue_unpop(VirtQueue *vq, VirtQueueElement *elem)
{
    vq->last_avail_idx--;
    vq->inflight--;
    virtqueue_element_free(elem);
}

bool virtqueue_should_notify(VirtQueue *vq)
{
    if (!vq->used_hva) {
        return false;
    }
    /*
     * Full fence: the used index store above must be globally visible before
     * the driver's flags / used_event are read, or the driver may re-enable
     * interrupts after checking the old index and never get one.
     */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t old = vq->signalled_used;
    uint16_t new = vq->used_idx;
    bool valid = vq->signalled_used_valid;
    if (valid && old == new) {
        return false;
    }
    vq->signalled_used = new;
    vq->signalled_used_valid = true;
    if (!vq->event_idx) {
        /* §2.7.7.2 */
        uint16_t flags = load16((uint16_t *)(vq->avail_hva + RING_FLAGS), __ATOMIC_RELAXED);
        return !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
    }
    if (!valid) {
        return true;
    }
    /* §2.7.10: notify when the used index moved past used_event since the last one. */
    uint16_t event = load16(used_event_ptr(vq), __ATOMIC_RELAXED);
    return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

void virtqueue_set_notification(VirtQueue *vq, bool enable)
{
    if (!vq->used_hva) {
        return;
    }
    if (vq->event_idx) {
        /*
         * §2.7.10: the driver kicks when it makes avail_event available; to
         * suppress, leave it behind so the driver's new entries never cross it.
         */
        if (enable) {
            store16(avail_event_ptr(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
        }
    } else {
        store16((uint16_t *)(vq->used_hva + RING_FLAGS), enable ? 0 : VIRTQ_USED_F_NO_NOTIFY,
                __ATOMIC_RELAXED);
    }
    mark_used_ring_dirty(vq);
    if (enable) {
        /* The caller re-checks the ring next: order that read after this store. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
}

bool virtqueue_empty(VirtQueue *vq)
{
    if (!vq->started) {
        return true;
    }
    return load16(avail_idx_ptr(vq), __ATOMIC_ACQUIRE) == vq->last_avail_idx;
}

/* ---- save/restore ---- */

void virtqueue_save(const VirtQueue *vq, GByteArray *out)
{
    g_assert(vq->inflight == 0);
    state_put_u16(out, vq->max_size);
    state_put_u16(out, vq->size);
    state_put_bool(out, vq->enabled);
    state_put_u64(out, vq->desc_gpa);
    state_put_u64(out, vq->avail_gpa);
    state_put_u64(out, vq->used_gpa);
    state_put_bool(out, vq->started);
    state_put_bool(out, vq->event_idx);
    state_put_u16(out, vq->last_avail_idx);
    state_put_u16(out, vq->used_idx);
    state_put_u16(out, vq->signalled_used);
    state_put_bool(out, vq->signalled_used_valid);
}

bool virtqueue_load(VirtQueue *vq, StateIn *in, GuestMem *mem, GError **error)
{
    VirtQueue q;
    virtqueue_init(&q, vq->max_size);
    uint16_t max_size = state_get_u16(in);
    q.size = state_get_u16(in);
    q.enabled = state_get_bool(in);
    q.desc_gpa = state_get_u64(in);
    q.avail_gpa = state_get_u64(in);
    q.used_gpa = state_get_u64(in);
    bool started = state_get_bool(in);
    bool event_idx = state_get_bool(in);
    uint16_t last_avail_idx = state_get_u16(in);
    uint16_t used_idx = state_get_u16(in);
    uint16_t signalled_used = state_get_u16(in);
    bool signalled_used_valid = state_get_bool(in);
    if (in->bad) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "queue state is truncated or malformed");
        return false;
    }
    if (max_size != vq->max_size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "queue of at most %u entries saved, this one has %u", max_size, vq->max_size);
        state_in_check(in, false);
        return false;
    }
    if (!started) {
        /* A queue starts at DRIVER_OK and only a reset stops it, which zeroes the rest. */
        if (event_idx || last_avail_idx || used_idx || signalled_used || signalled_used_valid) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "queue that never started has device indices");
            state_in_check(in, false);
            return false;
        }
        *vq = q;
        return true;
    }
    if (!q.enabled) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "started queue is not enabled");
        state_in_check(in, false);
        return false;
    }
    if (!virtqueue_start(&q, mem, event_idx, error)) {
        state_in_check(in, false);
        return false;
    }
    /* The device can be ahead of used by chains it dropped (virtqueue_detach), never more. */
    if ((uint16_t)(last_avail_idx - used_idx) > q.size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "next available entry %u is more than the queue size %u ahead of next used %u",
                    last_avail_idx, q.size, used_idx);
        state_in_check(in, false);
        return false;
    }
    q.last_avail_idx = last_avail_idx;
    q.used_idx = used_idx;
    q.signalled_used = signalled_used;
    q.signalled_used_valid = signalled_used_valid;
    *vq = q;
    return true;
}
