/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qcow2 guest requests. A request is cut into runs of clusters mapped alike;
 * each run's data moves through AIO at once, so the runs of one request and
 * the requests themselves proceed in parallel:
 *   - reads: from the host cluster, the backing file (zeroes past its end),
 *     zeroes, or a compressed cluster (inflated synchronously);
 *   - writes to a cluster the image owns alone (COPIED): in place;
 *   - other writes allocate clusters (an allocation, Qcow2Alloc): the old
 *     contents of a partly written first and last cluster are read (copy on
 *     write), then one pwritev puts old head, guest data and old tail in the
 *     new clusters, and only after it completed do the L2 entries point to
 *     them; the old clusters' references go once that is on disk.
 * A request that reaches a cluster under allocation waits until the
 * allocation finished. Discard and write-zeroes change mappings without
 * data I/O: they wait for every earlier request on their clusters, and later
 * ones wait for them. Waiting requests are run again whenever something
 * completes (qcow2_kick).
 */
#include "block/qcow2.h"
#include "util/iov.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STEP_WAIT 0
#define STEP_DONE 1

typedef enum {
    REQ_READ,
    REQ_WRITE,
    REQ_DISCARD,
    REQ_WRITE_ZEROES,
} ReqKind;

typedef struct Qcow2Req {
    GList link; /* in s->reqs */
    Qcow2 *s;
    ReqKind kind;
    uint64_t offset, len;
    uint64_t done;     /* bytes issued so far */
    struct iovec *iov; /* NULL: zeroes (write-zeroes written as data) */
    unsigned niov;
    uint64_t first, end; /* guest clusters */
    bool started;        /* passed the check against earlier requests */
    bool changed;        /* changed metadata (written back at once without a write cache) */
    unsigned pending;    /* sub-requests in flight, plus one while issuing */
    int ret;
    BlockCompletionFunc *cb;
    void *opaque;
} Qcow2Req;

typedef struct Qcow2Alloc {
    GList link; /* in s->allocs */
    Qcow2Req *r;
    uint64_t gc, n; /* guest clusters */
    uint64_t host;  /* of the new clusters */
    uint64_t *old;  /* their L2 entries before */
    uint64_t skip;  /* where the data starts in the request */
    uint64_t data_len, head_len, tail_len;
    uint8_t *head, *tail; /* old contents of the first and last cluster */
    unsigned pending;     /* copy-on-write reads in flight, plus one while issuing */
    int ret;
} Qcow2Alloc;

static void req_run(Qcow2Req *r);

/* ---- waiting ---- */

static void qcow2_kick(Qcow2 *s)
{
    if (s->kicking) {
        s->kick_again = true;
        return;
    }
    s->kicking = true;
    do {
        s->kick_again = false;
        GQueue w = s->waiting;
        g_queue_init(&s->waiting);
        Qcow2Req *r;
        while ((r = g_queue_pop_head(&w))) {
            req_run(r);
        }
    } while (s->kick_again);
    s->kicking = false;
}

static bool req_exclusive(const Qcow2Req *r)
{
    return r->kind == REQ_DISCARD || r->kind == REQ_WRITE_ZEROES;
}

/* An earlier request on the same clusters that this one must let finish first. */
static bool req_blocked(Qcow2Req *r)
{
    for (GList *l = r->s->reqs.head; l && l->data != r; l = l->next) {
        Qcow2Req *q = l->data;
        if ((req_exclusive(r) || req_exclusive(q)) && q->first < r->end && r->first < q->end) {
            return true;
        }
    }
    return false;
}

/* How many of the clusters [gc, gc + n) come before one under allocation. */
static uint64_t alloc_clip(Qcow2 *s, uint64_t gc, uint64_t n)
{
    for (GList *l = s->allocs.head; l; l = l->next) {
        Qcow2Alloc *a = l->data;
        if (a->gc < gc + n && gc < a->gc + a->n) {
            n = a->gc > gc ? a->gc - gc : 0;
        }
    }
    return n;
}

/* ---- completion ---- */

/* A request or allocation fails with the first error of its parts. */
static void keep_first_error(int *first, int ret)
{
    if (ret < 0 && *first == 0) {
        *first = ret;
    }
}

static void req_put(Qcow2Req *r)
{
    if (--r->pending) {
        return;
    }
    Qcow2 *s = r->s;
    if (r->ret == 0 && r->changed && s->writethrough) {
        r->ret = qcow2_flush_metadata(s, true);
    } else if (s->frees->len > QCOW2_MAX_PENDING_FREES) {
        int ret = qcow2_flush_metadata(s, true);
        if (ret < 0) {
            qcow2_warn(s, "cannot write metadata back: %s", g_strerror(-ret));
        }
    }
    g_queue_unlink(&s->reqs, &r->link);
    r->cb(r->opaque, r->ret);
    g_free(r->iov);
    g_free(r);
    qcow2_kick(s);
}

static void sub_done(void *opaque, int ret)
{
    Qcow2Req *r = opaque;
    keep_first_error(&r->ret, ret);
    req_put(r);
}

/* ---- data ---- */

/* The request's data [skip, skip + len) as iovecs in v; returns how many. */
static unsigned req_data(Qcow2Req *r, uint64_t skip, uint64_t len, struct iovec *v)
{
    if (r->iov) {
        return iov_slice(r->iov, r->niov, skip, len, v);
    }
    g_assert(len <= QCOW2_ZERO_BUF_SIZE);
    v[0] = (struct iovec){r->s->zero_buf, len};
    return 1;
}

static struct iovec *req_iov_space(Qcow2Req *r)
{
    return g_new(struct iovec, (r->iov ? r->niov : 1) + 2);
}

/* Reads [off, off + len) of the backing file into iov from skip on; zeroes past its end. */
static void backing_read(Qcow2 *s, uint64_t off, const struct iovec *iov, unsigned niov,
                         uint64_t skip, uint64_t len, BlockCompletionFunc *cb, void *opaque)
{
    uint64_t blen = s->backing->length;
    uint64_t in = off >= blen ? 0 : MIN(len, blen - off);
    if (in < len) {
        block_iov_memset(iov, niov, skip + in, 0, len - in);
    }
    if (!in) {
        cb(opaque, 0);
        return;
    }
    g_autofree struct iovec *v = g_new(struct iovec, niov);
    unsigned n = iov_slice(iov, niov, skip, in, v);
    s->backing->ops->readv(s->backing, off, v, n, cb, opaque);
}

static bool host_range_ok(Qcow2 *s, uint64_t host, uint64_t len)
{
    if (host <= s->file_end && len <= s->file_end - host) {
        return true;
    }
    qcow2_warn(s, "data cluster at 0x%" G_GINT64_MODIFIER "x is past the end of the file", host);
    return false;
}

static void req_file_io(Qcow2Req *r, bool write, uint64_t host, uint64_t len)
{
    g_autofree struct iovec *v = req_iov_space(r);
    unsigned n = req_data(r, r->done, len, v);
    r->pending++;
    if (write) {
        block_file_writev(r->s->node.file, host, v, n, sub_done, r);
    } else {
        block_file_readv(r->s->node.file, host, v, n, sub_done, r);
    }
}

/*
 * Where a request goes on: its guest offset, that offset's cluster and the
 * offset inside it, and the bytes left (at most limit).
 */
static void req_pos(const Qcow2Req *r, uint64_t limit, uint64_t *off, uint64_t *gc, uint64_t *inoff,
                    uint64_t *left)
{
    *off = r->offset + r->done;
    *gc = *off >> r->s->cluster_bits;
    *inoff = *off & (r->s->cluster_size - 1);
    *left = MIN(r->len - r->done, limit);
}

static int read_step(Qcow2Req *r)
{
    Qcow2 *s = r->s;
    uint64_t cs = s->cluster_size;
    uint64_t off, gc, inoff, left;
    req_pos(r, UINT64_MAX, &off, &gc, &inoff, &left);
    uint64_t run = alloc_clip(s, gc, DIV_ROUND_UP(inoff + left, cs));
    if (!run) {
        return STEP_WAIT;
    }
    Qcow2Map m;
    int ret = qcow2_map(s, gc, run, &m);
    if (ret < 0) {
        return ret;
    }
    uint64_t len = MIN(left, m.count * cs - inoff);
    switch (m.type) {
    case QCOW2_UNALLOCATED:
        if (s->backing) {
            r->pending++;
            backing_read(s, off, r->iov, r->niov, r->done, len, sub_done, r);
        } else {
            block_iov_memset(r->iov, r->niov, r->done, 0, len);
        }
        break;
    case QCOW2_ZERO:
        block_iov_memset(r->iov, r->niov, r->done, 0, len);
        break;
    case QCOW2_NORMAL:
        if (!host_range_ok(s, m.host + inoff, len)) {
            return -EIO;
        }
        req_file_io(r, false, m.host + inoff, len);
        break;
    case QCOW2_COMPRESSED: {
        uint8_t *buf = g_malloc(cs);
        ret = qcow2_read_compressed(s, m.entry, buf);
        if (ret == 0) {
            iov_from_buf(r->iov, r->niov, r->done, buf + inoff, len);
        }
        g_free(buf);
        if (ret < 0) {
            return ret;
        }
        break;
    }
    }
    r->done += len;
    return STEP_DONE;
}

/* ---- allocation ---- */

static void alloc_finish(Qcow2Alloc *a, int ret)
{
    Qcow2Req *r = a->r;
    Qcow2 *s = r->s;
    if (ret == 0) {
        g_autofree uint64_t *entries = g_new(uint64_t, a->n);
        for (uint64_t i = 0; i < a->n; i++) {
            entries[i] = (a->host + i * s->cluster_size) | QCOW2_OFLAG_COPIED;
        }
        ret = qcow2_set_entries(s, a->gc, a->n, entries);
        if (ret == 0) {
            for (uint64_t i = 0; i < a->n; i++) {
                qcow2_free_entry(s, a->old[i]);
            }
        }
    }
    if (ret < 0) {
        /* Nothing references the new clusters: give them back now. */
        qcow2_free_now(s, a->host, a->n * s->cluster_size);
        keep_first_error(&r->ret, ret);
    }
    g_queue_unlink(&s->allocs, &a->link);
    if (a->tail != a->head) {
        free(a->tail);
    }
    free(a->head);
    g_free(a->old);
    g_free(a);
    req_put(r);
    qcow2_kick(s);
}

static void alloc_written(void *opaque, int ret)
{
    alloc_finish(opaque, ret);
}

/* The copy-on-write reads are in: head, data and tail go to the new clusters in one write. */
static void alloc_write(Qcow2Alloc *a)
{
    Qcow2Req *r = a->r;
    Qcow2 *s = r->s;
    if (a->ret < 0) {
        alloc_finish(a, a->ret);
        return;
    }
    g_autofree struct iovec *v = req_iov_space(r);
    unsigned n = 0;
    if (a->head_len) {
        v[n++] = (struct iovec){a->head, a->head_len};
    }
    n += req_data(r, a->skip, a->data_len, v + n);
    if (a->tail_len) {
        v[n++] = (struct iovec){a->tail + s->cluster_size - a->tail_len, a->tail_len};
    }
    block_file_writev(s->node.file, a->host, v, n, alloc_written, a);
}

static void alloc_put(Qcow2Alloc *a)
{
    if (--a->pending == 0) {
        alloc_write(a);
    }
}

static void cow_done(void *opaque, int ret)
{
    Qcow2Alloc *a = opaque;
    keep_first_error(&a->ret, ret);
    alloc_put(a);
}

/* Reads what guest cluster gc held (L2 entry `entry`) into buf, a cluster. */
static void cow_read(Qcow2Alloc *a, uint64_t gc, uint64_t entry, uint8_t *buf)
{
    Qcow2 *s = a->r->s;
    uint64_t cs = s->cluster_size;
    struct iovec v = {buf, cs};
    int ret = 0;
    switch (qcow2_entry_type(entry)) {
    case QCOW2_UNALLOCATED:
        if (s->backing) {
            a->pending++;
            backing_read(s, gc * cs, &v, 1, 0, cs, cow_done, a);
        }
        break;
    case QCOW2_ZERO:
        break; /* buf is zeroed */
    case QCOW2_NORMAL: {
        uint64_t host = entry & QCOW2_OFFSET_MASK;
        if (!host_range_ok(s, host, cs)) {
            ret = -EIO;
            break;
        }
        a->pending++;
        block_file_readv(s->node.file, host, &v, 1, cow_done, a);
        break;
    }
    case QCOW2_COMPRESSED:
        ret = qcow2_read_compressed(s, entry, buf);
        break;
    }
    keep_first_error(&a->ret, ret);
}

static bool entry_writable_in_place(uint64_t e)
{
    return qcow2_entry_type(e) == QCOW2_NORMAL && (e & QCOW2_OFLAG_COPIED);
}

/*
 * Writes up to limit bytes from r->done: in place when the clusters are the
 * image's alone, else into newly allocated ones.
 */
static int write_step(Qcow2Req *r, uint64_t limit)
{
    Qcow2 *s = r->s;
    uint64_t cs = s->cluster_size;
    uint64_t off, gc, inoff, left;
    req_pos(r, limit, &off, &gc, &inoff, &left);
    if (!r->iov) {
        left = MIN(left, QCOW2_ZERO_BUF_SIZE);
    }
    uint64_t run = alloc_clip(s, gc, DIV_ROUND_UP(inoff + left, cs));
    if (!run) {
        return STEP_WAIT;
    }
    Qcow2Map m;
    int ret = qcow2_map(s, gc, run, &m);
    if (ret < 0) {
        return ret;
    }
    if (m.type == QCOW2_NORMAL && (m.entry & QCOW2_OFLAG_COPIED)) {
        uint64_t len = MIN(left, m.count * cs - inoff);
        if (!host_range_ok(s, m.host + inoff, len)) {
            return -EIO;
        }
        req_file_io(r, true, m.host + inoff, len);
        r->done += len;
        return STEP_DONE;
    }

    uint64_t per = 1ULL << s->l2_bits;
    uint64_t n = MIN(run, per - (gc & (per - 1)));
    ret = qcow2_l2_make_writable(s, gc >> s->l2_bits);
    if (ret < 0) {
        return ret;
    }
    g_autofree uint64_t *old = g_new(uint64_t, n);
    ret = qcow2_get_entries(s, gc, n, old);
    if (ret < 0) {
        return ret;
    }
    uint64_t k = 1;
    while (k < n && !entry_writable_in_place(old[k])) {
        k++;
    }
    uint64_t host, got;
    ret = qcow2_alloc_clusters(s, k, &host, &got);
    if (ret < 0) {
        return ret;
    }
    Qcow2Alloc *a = g_new0(Qcow2Alloc, 1);
    a->link.data = a;
    a->r = r;
    a->gc = gc;
    a->n = got;
    a->host = host;
    a->old = g_memdup2(old, got * sizeof(uint64_t));
    a->skip = r->done;
    a->data_len = MIN(left, got * cs - inoff);
    a->head_len = inoff;
    a->tail_len = got * cs - inoff - a->data_len;
    a->pending = 1;
    g_queue_push_tail_link(&s->allocs, &a->link);
    r->pending++;
    r->changed = true;
    r->done += a->data_len;
    if (a->head_len) {
        a->head = qcow2_alloc_buf(cs);
        cow_read(a, gc, old[0], a->head);
    }
    if (a->tail_len) {
        if (got == 1 && a->head) {
            a->tail = a->head;
        } else {
            a->tail = qcow2_alloc_buf(cs);
            cow_read(a, gc + got - 1, old[got - 1], a->tail);
        }
    }
    alloc_put(a);
    return STEP_DONE;
}

/* ---- discard and write-zeroes ---- */

/*
 * Whole clusters change their L2 entries only: to unallocated, or to the
 * zero flag (v3) where unallocated would let a backing file show through.
 * Parts of clusters are written with zeroes (write-zeroes) or left as they
 * are (discard, a hint). A v2 image with a backing file has no zero flag:
 * write-zeroes writes zeroes there, discard lets the backing file show.
 * Clusters are deallocated whether or not the guest allowed unmapping.
 */
static int zero_step(Qcow2Req *r)
{
    Qcow2 *s = r->s;
    uint64_t cs = s->cluster_size;
    uint64_t off, gc, inoff, left;
    req_pos(r, UINT64_MAX, &off, &gc, &inoff, &left);
    bool discard = r->kind == REQ_DISCARD;
    if (inoff || left < cs) {
        uint64_t part = MIN(left, cs - inoff);
        if (discard) {
            r->done += part;
            return STEP_DONE;
        }
        return write_step(r, part);
    }
    if (!discard && s->version < 3 && s->backing) {
        return write_step(r, left & ~(cs - 1));
    }
    uint64_t per = 1ULL << s->l2_bits;
    uint64_t n = alloc_clip(s, gc, MIN(left / cs, per - (gc & (per - 1))));
    if (!n) {
        return STEP_WAIT;
    }
    uint64_t target = s->backing && s->version >= 3 ? QCOW2_OFLAG_ZERO : 0;
    uint64_t l1i = gc >> s->l2_bits;
    if (!(s->l1[l1i] & QCOW2_OFFSET_MASK) && !target) {
        r->done += n * cs;
        return STEP_DONE;
    }
    g_autofree uint64_t *old = g_new(uint64_t, n);
    int ret = qcow2_get_entries(s, gc, n, old);
    if (ret < 0) {
        return ret;
    }
    bool any = false;
    for (uint64_t i = 0; i < n; i++) {
        any = any || old[i] != target;
    }
    if (any) {
        ret = qcow2_l2_make_writable(s, l1i);
        if (ret == 0) {
            ret = qcow2_get_entries(s, gc, n, old);
        }
        g_autofree uint64_t *entries = g_new(uint64_t, n);
        for (uint64_t i = 0; i < n; i++) {
            entries[i] = target;
        }
        if (ret == 0) {
            ret = qcow2_set_entries(s, gc, n, entries);
        }
        if (ret < 0) {
            return ret;
        }
        for (uint64_t i = 0; i < n; i++) {
            qcow2_free_entry(s, old[i]);
        }
        r->changed = true;
    }
    r->done += n * cs;
    return STEP_DONE;
}

/* ---- requests ---- */

static void req_run(Qcow2Req *r)
{
    Qcow2 *s = r->s;
    if (!r->started) {
        if (req_blocked(r)) {
            g_queue_push_tail(&s->waiting, r);
            return;
        }
        r->started = true;
    }
    while (r->done < r->len && r->ret == 0) {
        int ret;
        switch (r->kind) {
        case REQ_READ:
            ret = read_step(r);
            break;
        case REQ_WRITE:
            ret = write_step(r, UINT64_MAX);
            break;
        default:
            ret = zero_step(r);
            break;
        }
        if (ret == STEP_WAIT) {
            g_queue_push_tail(&s->waiting, r);
            return;
        }
        if (ret < 0) {
            r->ret = ret;
        }
    }
    req_put(r);
}

static void req_start(Qcow2 *s, ReqKind kind, uint64_t offset, uint64_t len,
                      const struct iovec *iov, unsigned niov, BlockCompletionFunc *cb, void *opaque)
{
    if (kind != REQ_READ && (s->readonly || !s->owned)) {
        cb(opaque, s->readonly ? -EROFS : -EPERM);
        return;
    }
    if (len == 0) {
        cb(opaque, 0);
        return;
    }
    if (!iov && !s->zero_buf) {
        s->zero_buf = qcow2_alloc_buf(QCOW2_ZERO_BUF_SIZE);
    }
    Qcow2Req *r = g_new0(Qcow2Req, 1);
    r->link.data = r;
    r->s = s;
    r->kind = kind;
    r->offset = offset;
    r->len = len;
    r->iov = iov ? g_memdup2(iov, niov * sizeof(*iov)) : NULL;
    r->niov = niov;
    r->first = offset >> s->cluster_bits;
    r->end = ((offset + len - 1) >> s->cluster_bits) + 1;
    r->pending = 1;
    r->cb = cb;
    r->opaque = opaque;
    g_queue_push_tail_link(&s->reqs, &r->link);
    req_run(r);
}

static void qcow2_readv(BlockNode *n, uint64_t offset, const struct iovec *iov, unsigned niov,
                        BlockCompletionFunc *cb, void *opaque)
{
    req_start((Qcow2 *)n, REQ_READ, offset, iov_size(iov, niov), iov, niov, cb, opaque);
}

static void qcow2_writev(BlockNode *n, uint64_t offset, const struct iovec *iov, unsigned niov,
                         BlockCompletionFunc *cb, void *opaque)
{
    req_start((Qcow2 *)n, REQ_WRITE, offset, iov_size(iov, niov), iov, niov, cb, opaque);
}

static void qcow2_discard(BlockNode *n, uint64_t offset, uint64_t len, BlockCompletionFunc *cb,
                          void *opaque)
{
    req_start((Qcow2 *)n, REQ_DISCARD, offset, len, NULL, 0, cb, opaque);
}

static void qcow2_write_zeroes(BlockNode *n, uint64_t offset, uint64_t len, bool may_unmap,
                               BlockCompletionFunc *cb, void *opaque)
{
    req_start((Qcow2 *)n, REQ_WRITE_ZEROES, offset, len, NULL, 0, cb, opaque);
}

/*
 * A guest flush: the cached metadata in its order (qcow2_flush_metadata),
 * then the data through an AIO fdsync. cache=unsafe still writes the
 * metadata, without syncing, so that a killed qlite leaves a consistent image.
 */
static void qcow2_flush(BlockNode *n, BlockCompletionFunc *cb, void *opaque)
{
    Qcow2 *s = (Qcow2 *)n;
    if (s->readonly || !s->owned) {
        cb(opaque, 0);
        return;
    }
    int ret = qcow2_flush_metadata(s, true);
    if (ret < 0 || !s->sync) {
        cb(opaque, ret);
        return;
    }
    block_file_flush(n->file, cb, opaque);
}

const BlockNodeOps qcow2_ops = {
    .format = "qcow2",
    .readv = qcow2_readv,
    .writev = qcow2_writev,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .set_owned = qcow2_set_owned,
    .close = qcow2_close,
};
