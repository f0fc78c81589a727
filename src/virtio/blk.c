/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-blk, virtio 1.2 §5.2: one request queue (no VIRTIO_BLK_F_MQ) served
 * on the device's IoThread; reads and writes go to the raw backend as AIO,
 * flush as an AIO fdatasync, discard and write-zeroes as fallocate.
 */
#include "virtio/blk.h"
#include "util/error.h"
#include "util/iov.h"

#include <stddef.h>
#include <string.h>

/* §5.2.3 */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* §5.2.6 request types and status values */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK           0
#define VIRTIO_BLK_S_IOERR        1
#define VIRTIO_BLK_S_UNSUPP       2
#define VIRTIO_BLK_ID_BYTES       20
#define VIRTIO_BLK_WZ_F_UNMAP     1

#define VIRTIO_BLK_QUEUE_SIZE 256
/* A request spends one descriptor each on its header and its status. */
#define VIRTIO_BLK_SEG_MAX  (VIRTIO_BLK_QUEUE_SIZE - 2)
#define VIRTIO_BLK_SIZE_MAX (1024 * 1024)
/* Punching holes is cheap; writing zeroes may fall back to writing: keep it bounded. */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS (1u << 22)
#define VIRTIO_BLK_MAX_WZ_SECTORS      (1u << 16)
#define VIRTIO_BLK_DISCARD_ALIGNMENT   8 /* sectors: a 4 KiB filesystem block */

/* §5.2.4, little-endian; the fields up to write_zeroes_may_unmap. */
typedef struct __attribute__((packed)) {
    uint64_t capacity;
    uint32_t size_max;
    uint32_t seg_max;
    struct __attribute__((packed)) {
        uint16_t cylinders;
        uint8_t heads;
        uint8_t sectors;
    } geometry;
    uint32_t blk_size;
    struct __attribute__((packed)) {
        uint8_t physical_block_exp;
        uint8_t alignment_offset;
        uint16_t min_io_size;
        uint32_t opt_io_size;
    } topology;
    uint8_t writeback;
    uint8_t unused0;
    uint16_t num_queues;
    uint32_t max_discard_sectors;
    uint32_t max_discard_seg;
    uint32_t discard_sector_alignment;
    uint32_t max_write_zeroes_sectors;
    uint32_t max_write_zeroes_seg;
    uint8_t write_zeroes_may_unmap;
    uint8_t unused1[3];
} VirtioBlkConfig;
G_STATIC_ASSERT(sizeof(VirtioBlkConfig) == 60);
G_STATIC_ASSERT(offsetof(VirtioBlkConfig, blk_size) == 20);
G_STATIC_ASSERT(offsetof(VirtioBlkConfig, writeback) == 32);
G_STATIC_ASSERT(offsetof(VirtioBlkConfig, max_discard_sectors) == 36);
G_STATIC_ASSERT(offsetof(VirtioBlkConfig, write_zeroes_may_unmap) == 56);

/* §5.2.6: the request header, the first 16 device-readable bytes. */
typedef struct {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
} VirtioBlkOutHdr;
G_STATIC_ASSERT(sizeof(VirtioBlkOutHdr) == 16);

/* §5.2.6: one discard / write-zeroes segment. */
typedef struct {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
} VirtioBlkDiscardWz;
G_STATIC_ASSERT(sizeof(VirtioBlkDiscardWz) == 16);

typedef struct VirtioBlk {
    VirtioDevice vdev; /* first: the core hands back a VirtioDevice * */
    BlockBackend *backend;
    bool readonly;
    uint64_t capacity; /* sectors */
    char *serial;
    VirtioBlkConfig config;
    bool notify_pending; /* used buffers pushed since the last virtio_notify */
    BlockAcctStats stats;
} VirtioBlk;
G_STATIC_ASSERT(offsetof(VirtioBlk, vdev) == 0);

/* One request in flight: the chain and where its data lives in guest RAM. */
typedef struct {
    VirtioBlk *blk;
    VirtQueue *vq;
    VirtQueueElement *elem;
    uint8_t *status;   /* the last device-writable byte */
    uint32_t data_len; /* bytes written into the driver's buffers on success */
    BlockAcctCookie acct;
    unsigned niov;
    struct iovec iov[];
} VirtioBlkReq;

/* ---- request parsing ---- */

/* §5.2.6.2: nothing past capacity, written so that no sum overflows. */
static bool blk_range_ok(VirtioBlk *blk, uint64_t sector, uint64_t nsectors)
{
    return sector <= blk->capacity && nsectors <= blk->capacity - sector;
}

static void blk_complete(VirtioBlkReq *req, uint8_t status, uint32_t used_len)
{
    *req->status = status;
    virtqueue_push(req->vq, req->elem, used_len);
    req->blk->notify_pending = true;
    g_free(req);
}

static void blk_io_done(void *opaque, int ret)
{
    VirtioBlkReq *req = opaque;
    block_acct_done(&req->blk->stats, &req->acct, ret >= 0);
    if (ret < 0) {
        blk_complete(req, VIRTIO_BLK_S_IOERR, 1);
    } else {
        blk_complete(req, VIRTIO_BLK_S_OK, req->data_len + 1);
    }
}

static void blk_rw(VirtioBlk *blk, VirtioBlkReq *req, uint64_t sector, bool write)
{
    VirtQueueElement *elem = req->elem;
    uint64_t len = write ? elem->out_len - sizeof(VirtioBlkOutHdr) : elem->in_len - 1;
    /* §5.2.6.2: a device offering RO fails writes without touching the data. */
    if ((write && blk->readonly) || len % BLOCK_SECTOR_SIZE || len >= UINT32_MAX ||
        !blk_range_ok(blk, sector, len / BLOCK_SECTOR_SIZE)) {
        block_acct_invalid(&blk->stats, write ? BLOCK_ACCT_WRITE : BLOCK_ACCT_READ);
        blk_complete(req, VIRTIO_BLK_S_IOERR, 1);
        return;
    }
    uint64_t offset = sector * BLOCK_SECTOR_SIZE;
    block_acct_start(&req->acct, write ? BLOCK_ACCT_WRITE : BLOCK_ACCT_READ, offset, len);
    if (write) {
        req->niov = iov_slice(elem->out_sg, elem->out_num, sizeof(VirtioBlkOutHdr), len, req->iov);
        req->data_len = 0;
        block_writev(blk->backend, offset, req->iov, req->niov, blk_io_done, req);
    } else {
        req->niov = iov_slice(elem->in_sg, elem->in_num, 0, len, req->iov);
        req->data_len = (uint32_t)len;
        block_readv(blk->backend, offset, req->iov, req->niov, blk_io_done, req);
    }
}

static void blk_get_id(VirtioBlk *blk, VirtioBlkReq *req)
{
    /* §5.2.6: NUL-padded, no terminator when all 20 bytes are used. */
    char id[VIRTIO_BLK_ID_BYTES] = {0};
    if (blk->serial) {
        memcpy(id, blk->serial, MIN(strlen(blk->serial), sizeof(id)));
    }
    size_t n = MIN(req->elem->in_len - 1, sizeof(id));
    iov_from_buf(req->elem->in_sg, req->elem->in_num, 0, id, n);
    blk_complete(req, VIRTIO_BLK_S_OK, (uint32_t)n + 1);
}

static void blk_discard_write_zeroes(VirtioBlk *blk, VirtioBlkReq *req, uint32_t type)
{
    VirtQueueElement *elem = req->elem;
    uint64_t len = elem->out_len - sizeof(VirtioBlkOutHdr);
    /* As QEMU: write-zeroes counts as a write, a discard as an unmap. */
    BlockAcctType acct = type == VIRTIO_BLK_T_DISCARD ? BLOCK_ACCT_UNMAP : BLOCK_ACCT_WRITE;
    /* We offer max_discard_seg = max_write_zeroes_seg = 1. */
    if (blk->readonly || len != sizeof(VirtioBlkDiscardWz)) {
        block_acct_invalid(&blk->stats, acct);
        blk_complete(req, VIRTIO_BLK_S_IOERR, 1);
        return;
    }
    VirtioBlkDiscardWz seg;
    iov_to_buf(elem->out_sg, elem->out_num, sizeof(VirtioBlkOutHdr), &seg, sizeof(seg));
    uint64_t sector = GUINT64_FROM_LE(seg.sector);
    uint32_t num = GUINT32_FROM_LE(seg.num_sectors);
    uint32_t flags = GUINT32_FROM_LE(seg.flags);
    /* §5.2.6.2: unknown flags, and unmap on a discard, are unsupported. */
    if ((flags & ~VIRTIO_BLK_WZ_F_UNMAP) ||
        (type == VIRTIO_BLK_T_DISCARD && (flags & VIRTIO_BLK_WZ_F_UNMAP))) {
        blk_complete(req, VIRTIO_BLK_S_UNSUPP, 1);
        return;
    }
    uint32_t max =
        type == VIRTIO_BLK_T_DISCARD ? VIRTIO_BLK_MAX_DISCARD_SECTORS : VIRTIO_BLK_MAX_WZ_SECTORS;
    if (num > max || !blk_range_ok(blk, sector, num)) {
        block_acct_invalid(&blk->stats, acct);
        blk_complete(req, VIRTIO_BLK_S_IOERR, 1);
        return;
    }
    uint64_t offset = sector * BLOCK_SECTOR_SIZE;
    uint64_t bytes = (uint64_t)num * BLOCK_SECTOR_SIZE;
    block_acct_start(&req->acct, acct, offset, bytes);
    req->data_len = 0;
    if (type == VIRTIO_BLK_T_DISCARD) {
        block_discard(blk->backend, offset, bytes, blk_io_done, req);
    } else {
        block_write_zeroes(blk->backend, offset, bytes, flags & VIRTIO_BLK_WZ_F_UNMAP, blk_io_done,
                           req);
    }
}

/*
 * §5.2.6 and §2.6.4: the header is the first 16 readable bytes and the status
 * the last writable byte, however the driver split them into descriptors.
 */
static void blk_handle_request(VirtioBlk *blk, VirtQueue *vq, VirtQueueElement *elem)
{
    VirtioBlkOutHdr hdr;
    if (elem->out_len < sizeof(hdr) || elem->in_len < 1) {
        virtio_error(&blk->vdev, "request %u has no room for its header and status byte",
                     elem->head);
        virtqueue_detach(vq, elem);
        return;
    }
    iov_to_buf(elem->out_sg, elem->out_num, 0, &hdr, sizeof(hdr));
    uint32_t type = GUINT32_FROM_LE(hdr.type);
    uint64_t sector = GUINT64_FROM_LE(hdr.sector);

    VirtioBlkReq *req =
        g_malloc(sizeof(*req) + (elem->out_num + elem->in_num) * sizeof(struct iovec));
    const struct iovec *last = &elem->in_sg[elem->in_num - 1];
    req->blk = blk;
    req->vq = vq;
    req->elem = elem;
    req->status = (uint8_t *)last->iov_base + last->iov_len - 1;
    req->data_len = 0;
    req->niov = 0;

    switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        blk_rw(blk, req, sector, type == VIRTIO_BLK_T_OUT);
        break;
    case VIRTIO_BLK_T_FLUSH:
        block_acct_start(&req->acct, BLOCK_ACCT_FLUSH, 0, 0);
        block_flush(blk->backend, blk_io_done, req);
        break;
    case VIRTIO_BLK_T_GET_ID:
        blk_get_id(blk, req);
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        blk_discard_write_zeroes(blk, req, type);
        break;
    default:
        blk_complete(req, VIRTIO_BLK_S_UNSUPP, 1);
        break;
    }
}

/* ---- ops table ---- */

static void blk_flush_notify(VirtioBlk *blk)
{
    if (blk->notify_pending) {
        blk->notify_pending = false;
        virtio_notify(&blk->vdev, &blk->vdev.queues[0]);
    }
}

static void blk_batch_done(void *opaque)
{
    blk_flush_notify(opaque);
}

/* Takes every available request; false when the device stopped on a malformed ring. */
static bool blk_process_ring(VirtioBlk *blk, VirtQueue *vq)
{
    for (;;) {
        if (!blk->vdev.active) {
            return false;
        }
        g_autoptr(GError) err = NULL;
        VirtQueueElement *elem;
        int rc = virtqueue_pop(vq, &elem, &err);
        if (rc < 0) {
            virtio_error(&blk->vdev, "%s", err->message);
            return false;
        }
        if (rc == 0) {
            return true;
        }
        blk_handle_request(blk, vq, elem);
    }
}

static void blk_queue_notify(VirtioDevice *vdev, VirtQueue *vq)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;
    block_plug(blk->backend);
    /* Kicks off while draining; re-check after enabling so no request is left behind. */
    bool ok;
    do {
        virtqueue_set_notification(vq, false);
        ok = blk_process_ring(blk, vq);
        virtqueue_set_notification(vq, true);
    } while (ok && !virtqueue_empty(vq));
    block_unplug(blk->backend);
    blk_flush_notify(blk);
}

static void blk_activate(VirtioDevice *vdev)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;
    block_attach(blk->backend, vdev->iothread, blk_batch_done, blk);
}

static void blk_reset(VirtioDevice *vdev)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;
    block_drain(blk->backend);
    block_detach(blk->backend);
    blk->notify_pending = false;
}

static void blk_config_read(VirtioDevice *vdev, uint32_t offset, uint8_t *data, unsigned len)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;
    memcpy(data, (const uint8_t *)&blk->config + offset, len);
}

static void blk_config_write(VirtioDevice *vdev, uint32_t offset, const uint8_t *data, unsigned len)
{
    /* Without VIRTIO_BLK_F_CONFIG_WCE every field is read-only (§5.2.4). */
}

static void blk_free(VirtioDevice *vdev)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;
    block_close(blk->backend);
    block_acct_destroy(&blk->stats);
    g_free(blk->serial);
    g_free(blk);
}

/*
 * The interrupts of the requests the drain completed go out now: whoever
 * paused saves the interrupt controllers next, and a migration's destination
 * would never send a notification the source still owed.
 */
static void blk_drain(VirtioDevice *vdev)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;
    block_drain(blk->backend);
    blk_flush_notify(blk);
}

static bool blk_handover(VirtioDevice *vdev, bool own, GError **error)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;
    return block_set_owned(blk->backend, own, error);
}

BlockBackend *virtio_blk_backend(VirtioDevice *vdev)
{
    return ((VirtioBlk *)vdev)->backend;
}

void virtio_blk_stats(VirtioDevice *vdev, BlockAcctSnapshot *out)
{
    block_acct_snapshot(&((VirtioBlk *)vdev)->stats, out);
}

static const VirtioDeviceOps blk_ops = {
    .reset = blk_reset,
    .handover = blk_handover,
    .drain = blk_drain,
    .activate = blk_activate,
    .queue_notify = blk_queue_notify,
    .config_read = blk_config_read,
    .config_write = blk_config_write,
    .free = blk_free,
};

/* ---- lifecycle ---- */

static void blk_config_init(VirtioBlk *blk)
{
    VirtioBlkConfig *c = &blk->config;
    memset(c, 0, sizeof(*c));
    c->capacity = GUINT64_TO_LE(blk->capacity);
    c->size_max = GUINT32_TO_LE(VIRTIO_BLK_SIZE_MAX);
    c->seg_max = GUINT32_TO_LE(VIRTIO_BLK_SEG_MAX);
    c->blk_size = GUINT32_TO_LE(BLOCK_SECTOR_SIZE);
    c->writeback = block_has_write_cache(blk->backend);
    c->num_queues = GUINT16_TO_LE(1);
    c->max_discard_sectors = GUINT32_TO_LE(VIRTIO_BLK_MAX_DISCARD_SECTORS);
    c->max_discard_seg = GUINT32_TO_LE(1);
    c->discard_sector_alignment = GUINT32_TO_LE(VIRTIO_BLK_DISCARD_ALIGNMENT);
    c->max_write_zeroes_sectors = GUINT32_TO_LE(VIRTIO_BLK_MAX_WZ_SECTORS);
    c->max_write_zeroes_seg = GUINT32_TO_LE(1);
    c->write_zeroes_may_unmap = 1;
}

VirtioDevice *virtio_blk_new(const DriveConfig *cfg, GuestMem *mem, GError **error)
{
    g_autoptr(BlockBackend) backend = block_open(cfg, error);
    if (!backend) {
        return NULL;
    }
    uint64_t features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_INDIRECT_DESC) |
                        (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
                        (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
                        (1ULL << VIRTIO_BLK_F_FLUSH);
    if (cfg->readonly) {
        features |= 1ULL << VIRTIO_BLK_F_RO;
    } else {
        features |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
    }

    VirtioBlk *blk = g_new0(VirtioBlk, 1);
    blk->backend = backend;
    blk->readonly = cfg->readonly;
    blk->capacity = block_length(backend) / BLOCK_SECTOR_SIZE;
    blk->serial = g_strdup(cfg->serial);
    block_acct_init(&blk->stats);
    blk_config_init(blk);
    if (!virtio_device_init(&blk->vdev, "virtio-blk", cfg->id ? cfg->id : "virtio-blk",
                            VIRTIO_ID_BLOCK, &blk_ops, mem, features, 1, VIRTIO_BLK_QUEUE_SIZE,
                            sizeof(VirtioBlkConfig), error)) {
        block_acct_destroy(&blk->stats);
        g_free(blk->serial);
        g_free(blk);
        return NULL;
    }
    g_steal_pointer(&backend);
    return &blk->vdev;
}
