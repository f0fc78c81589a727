/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "block/block.h"
#include "util/error.h"
#include "util/iov.h"

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Requests in flight in the kernel at once; more wait in bb->pending. */
#define BLOCK_AIO_DEPTH 128
/* O_DIRECT needs buffers, lengths and offsets aligned to the logical block size. */
#define BLOCK_DIRECT_ALIGN 512
/* Zero buffer for write-zeroes on filesystems that cannot fallocate a zero range. */
#define BLOCK_ZERO_BUF_SIZE (1024 * 1024)

typedef enum {
    BLOCK_OP_READ,
    BLOCK_OP_WRITE,
    BLOCK_OP_FLUSH,
} BlockOp;

typedef struct BlockRequest {
    struct iocb iocb;
    BlockBackend *bb;
    BlockOp op;
    uint64_t offset;   /* of what remains to transfer */
    size_t total;      /* bytes of the whole request */
    size_t remaining;  /* bytes still to transfer */
    struct iovec *iov; /* what remains: into iov_storage, or the bounce buffer */
    unsigned niov;
    void *bounce;
    /* For a bounced read: where the data goes on completion (in iov_storage). */
    const struct iovec *orig_iov;
    unsigned orig_niov;
    BlockCompletionFunc *cb;
    void *opaque;
    struct iovec iov_storage[];
} BlockRequest;

struct BlockBackend {
    char *path;
    int fd;
    uint64_t length;
    bool readonly;
    BlockCacheMode cache;
    bool direct;
    io_context_t ctx;
    int evfd;
    bool fdsync_unsupported; /* the kernel refused IOCB_CMD_FDSYNC once */
    bool owned;              /* holding the image lock (block_set_owned) */
    unsigned in_flight;
    unsigned plugged;
    GQueue pending; /* BlockRequest * not yet accepted by io_submit */
    void *zero_buf;
    GSource *src;
    void (*batch_done)(void *opaque);
    void *batch_opaque;
};

static const char *const cache_mode_names[] = {
    [BLOCK_CACHE_WRITEBACK] = "writeback",
    [BLOCK_CACHE_NONE] = "none",
    [BLOCK_CACHE_WRITETHROUGH] = "writethrough",
    [BLOCK_CACHE_DIRECTSYNC] = "directsync",
    [BLOCK_CACHE_UNSAFE] = "unsafe",
};

bool block_cache_mode_parse(const char *name, BlockCacheMode *mode, GError **error)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(cache_mode_names); i++) {
        if (!strcmp(name, cache_mode_names[i])) {
            *mode = i;
            return true;
        }
    }
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                "invalid cache mode '%s' (writeback, none, writethrough, directsync, unsafe)",
                name);
    return false;
}

void drive_config_clear(DriveConfig *cfg)
{
    g_free(cfg->id);
    g_free(cfg->file);
    g_free(cfg->format);
    g_free(cfg->serial);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- open / close ---- */

static bool block_get_length(int fd, const char *path, uint64_t *length, GError **error)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        qlite_error_errno(error, errno, "cannot stat image '%s'", path);
        return false;
    }
    if (S_ISREG(st.st_mode)) {
        *length = (uint64_t)st.st_size;
    } else if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, length) < 0) {
            qlite_error_errno(error, errno, "cannot get the size of block device '%s'", path);
            return false;
        }
    } else {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "image '%s' is not a regular file or a block device", path);
        return false;
    }
    if (*length % BLOCK_SECTOR_SIZE) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "image '%s' is %" G_GUINT64_FORMAT " bytes, not a multiple of 512", path,
                    *length);
        return false;
    }
    return true;
}

/*
 * An OFD lock over the whole file, like QEMU's image locking: writers take a
 * write lock, readers a read lock, so a second writer or a writer next to a
 * reader is refused. OFD locks belong to the open file description, so two
 * opens conflict even inside one process, and closing another descriptor of
 * the file does not drop them.
 */
static bool block_lock(int fd, const char *path, bool readonly, GError **error)
{
    struct flock fl = {
        .l_type = readonly ? F_RDLCK : F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = 0,
        .l_len = 0,
    };
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
        return true;
    }
    if (errno == EAGAIN || errno == EACCES) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                    "Failed to get \"%s\" lock: is another process using the image [%s]?",
                    readonly ? "consistent read" : "write", path);
    } else {
        qlite_error_errno(error, errno, "cannot lock image '%s'", path);
    }
    return false;
}

bool block_set_owned(BlockBackend *bb, bool owned, GError **error)
{
    g_assert(bb->in_flight == 0);
    if (owned == bb->owned) {
        return true;
    }
    if (owned) {
        if (!block_lock(bb->fd, bb->path, bb->readonly, error)) {
            return false;
        }
    } else {
        if (!bb->readonly && fdatasync(bb->fd) < 0) {
            qlite_error_errno(error, errno, "cannot flush image '%s'", bb->path);
            return false;
        }
        struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
        if (fcntl(bb->fd, F_OFD_SETLK, &fl) < 0) {
            qlite_error_errno(error, errno, "cannot unlock image '%s'", bb->path);
            return false;
        }
    }
    bb->owned = owned;
    return true;
}

BlockBackend *block_open(const DriveConfig *cfg, GError **error)
{
    if (!cfg->file || !cfg->file[0]) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "drive '%s' has no file",
                    cfg->id ? cfg->id : "");
        return NULL;
    }
    if (cfg->format && strcmp(cfg->format, "raw")) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Unsupported image format '%s' for '%s' (qlite supports raw)", cfg->format,
                    cfg->file);
        return NULL;
    }
    if ((unsigned)cfg->cache >= G_N_ELEMENTS(cache_mode_names)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "invalid cache mode %d",
                    (int)cfg->cache);
        return NULL;
    }
    BlockCacheFlags cf = block_cache_flags(cfg->cache);
    int flags = O_CLOEXEC | (cfg->readonly ? O_RDONLY : O_RDWR);
    /* Without a write cache every write is stable when it completes. */
    flags |= (cf.direct ? O_DIRECT : 0) | (cf.writeback ? 0 : O_DSYNC);

    g_autoptr(BlockBackend) bb = g_new0(BlockBackend, 1);
    bb->fd = -1;
    bb->evfd = -1;
    bb->path = g_strdup(cfg->file);
    bb->readonly = cfg->readonly;
    bb->cache = cfg->cache;
    bb->direct = cf.direct;
    g_queue_init(&bb->pending);

    bb->fd = open(cfg->file, flags);
    if (bb->fd < 0) {
        if (errno == EINVAL && cf.direct) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "cannot open image '%s' with cache=%s: the filesystem does not "
                        "support O_DIRECT",
                        cfg->file, cache_mode_names[cfg->cache]);
        } else {
            qlite_error_errno(error, errno, "cannot open image '%s'%s", cfg->file,
                              cfg->readonly ? "" : " read-write");
        }
        return NULL;
    }
    if (!block_get_length(bb->fd, cfg->file, &bb->length, error) ||
        (!cfg->inactive && !block_set_owned(bb, true, error))) {
        return NULL;
    }
    int rc = io_setup(BLOCK_AIO_DEPTH, &bb->ctx);
    if (rc < 0) {
        bb->ctx = NULL;
        qlite_error_errno(error, -rc, "io_setup for image '%s' (see /proc/sys/fs/aio-max-nr)",
                          cfg->file);
        return NULL;
    }
    bb->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (bb->evfd < 0) {
        qlite_error_errno(error, errno, "cannot create the AIO eventfd for '%s'", cfg->file);
        return NULL;
    }
    return g_steal_pointer(&bb);
}

void block_close(BlockBackend *bb)
{
    if (!bb) {
        return;
    }
    if (bb->ctx) {
        block_drain(bb);
        io_destroy(bb->ctx);
    }
    block_detach(bb);
    if (bb->evfd >= 0) {
        close(bb->evfd);
    }
    if (bb->fd >= 0) {
        close(bb->fd); /* releases the OFD lock */
    }
    free(bb->zero_buf);
    g_free(bb->path);
    g_free(bb);
}

uint64_t block_length(BlockBackend *bb)
{
    return bb->length;
}

bool block_is_readonly(BlockBackend *bb)
{
    return bb->readonly;
}

BlockCacheFlags block_cache_flags(BlockCacheMode mode)
{
    return (BlockCacheFlags){
        .writeback = mode != BLOCK_CACHE_WRITETHROUGH && mode != BLOCK_CACHE_DIRECTSYNC,
        .direct = mode == BLOCK_CACHE_NONE || mode == BLOCK_CACHE_DIRECTSYNC,
        .no_flush = mode == BLOCK_CACHE_UNSAFE,
    };
}

bool block_has_write_cache(BlockBackend *bb)
{
    return block_cache_flags(bb->cache).writeback;
}

/* ---- request life cycle ---- */

static void block_finish(BlockRequest *r, int ret)
{
    if (r->bounce) {
        if (ret == 0 && r->op == BLOCK_OP_READ) {
            iov_from_buf(r->orig_iov, r->orig_niov, 0, r->bounce, r->total);
        }
        free(r->bounce);
    }
    r->cb(r->opaque, ret);
    g_free(r);
}

static void block_prep(BlockRequest *r)
{
    BlockBackend *bb = r->bb;
    switch (r->op) {
    case BLOCK_OP_READ:
        io_prep_preadv(&r->iocb, bb->fd, r->iov, (int)r->niov, (long long)r->offset);
        break;
    case BLOCK_OP_WRITE:
        io_prep_pwritev(&r->iocb, bb->fd, r->iov, (int)r->niov, (long long)r->offset);
        break;
    case BLOCK_OP_FLUSH:
        io_prep_fdsync(&r->iocb, bb->fd);
        break;
    }
    r->iocb.data = r;
    io_set_eventfd(&r->iocb, bb->evfd);
}

static int block_sync_flush(BlockBackend *bb)
{
    return fdatasync(bb->fd) < 0 ? -errno : 0;
}

/* Hands queued requests to the kernel, up to BLOCK_AIO_DEPTH in flight. */
static void block_submit_pending(BlockBackend *bb)
{
    while (!bb->plugged && !g_queue_is_empty(&bb->pending) && bb->in_flight < BLOCK_AIO_DEPTH) {
        struct iocb *batch[BLOCK_AIO_DEPTH];
        unsigned n = 0;
        for (GList *l = bb->pending.head; l && n < BLOCK_AIO_DEPTH - bb->in_flight; l = l->next) {
            batch[n++] = &((BlockRequest *)l->data)->iocb;
        }
        int rc = io_submit(bb->ctx, (long)n, batch);
        if ((rc == -EAGAIN || rc == 0) && bb->in_flight > 0) {
            return; /* kernel resources are short: retried on the next completion */
        }
        if (rc <= 0) {
            /* io_submit reports why the first iocb was refused; the others are retried. */
            BlockRequest *r = g_queue_pop_head(&bb->pending);
            if (r->op == BLOCK_OP_FLUSH && rc == -EINVAL) {
                /* Filesystems without ->fsync for AIO (IOCB_CMD_FDSYNC) get a blocking flush. */
                bb->fdsync_unsupported = true;
                block_finish(r, block_sync_flush(bb));
            } else {
                block_finish(r, rc < 0 ? rc : -EIO);
            }
            continue;
        }
        for (int i = 0; i < rc; i++) {
            g_queue_pop_head(&bb->pending);
        }
        bb->in_flight += (unsigned)rc;
    }
}

static void block_enqueue(BlockBackend *bb, BlockRequest *r)
{
    block_prep(r);
    g_queue_push_tail(&bb->pending, r);
    block_submit_pending(bb);
}

static void block_complete_io(BlockBackend *bb, BlockRequest *r, long res)
{
    bb->in_flight--;
    if (res < 0) {
        block_finish(r, (int)res);
        return;
    }
    if (r->op == BLOCK_OP_FLUSH || (size_t)res >= r->remaining) {
        block_finish(r, 0);
        return;
    }
    if (res == 0) {
        /* The image shrank under us: never report a short transfer as success. */
        block_finish(r, r->op == BLOCK_OP_READ ? -EIO : -ENOSPC);
        return;
    }
    /* Short transfer: resubmit the rest, ahead of newer requests. */
    size_t done = (size_t)res;
    r->offset += done;
    r->remaining -= done;
    while (done > 0 && done >= r->iov[0].iov_len) {
        done -= r->iov[0].iov_len;
        r->iov++;
        r->niov--;
    }
    r->iov[0].iov_base = (uint8_t *)r->iov[0].iov_base + done;
    r->iov[0].iov_len -= done;
    block_prep(r);
    g_queue_push_head(&bb->pending, r);
}

/* Collects finished iocbs; min_nr 0 does not block. Returns how many. */
static int block_reap(BlockBackend *bb, long min_nr)
{
    struct io_event ev[BLOCK_AIO_DEPTH];
    struct timespec zero = {0, 0};
    int n;
    do {
        n = io_getevents(bb->ctx, min_nr, BLOCK_AIO_DEPTH, ev, min_nr ? NULL : &zero);
    } while (n == -EINTR);
    if (n < 0) {
        g_warning("io_getevents on '%s': %s", bb->path, g_strerror(-n));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        block_complete_io(bb, ev[i].data, (long)ev[i].res);
    }
    return n;
}

static void block_aio_ready(void *opaque)
{
    BlockBackend *bb = opaque;
    uint64_t count;
    if (read(bb->evfd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        g_warning("AIO eventfd of '%s': %s", bb->path, g_strerror(errno));
    }
    while (block_reap(bb, 0) > 0) {
    }
    block_submit_pending(bb);
    if (bb->batch_done) {
        bb->batch_done(bb->batch_opaque);
    }
}

void block_attach(BlockBackend *bb, IoThread *t, void (*batch_done)(void *opaque), void *opaque)
{
    block_detach(bb);
    bb->batch_done = batch_done;
    bb->batch_opaque = opaque;
    bb->src = iothread_add_fd(t, bb->evfd, block_aio_ready, bb);
}

void block_detach(BlockBackend *bb)
{
    iothread_remove_source(bb->src);
    bb->src = NULL;
    bb->batch_done = NULL;
    bb->batch_opaque = NULL;
}

void block_plug(BlockBackend *bb)
{
    bb->plugged++;
}

void block_unplug(BlockBackend *bb)
{
    g_assert(bb->plugged > 0);
    bb->plugged--;
    block_submit_pending(bb);
}

void block_drain(BlockBackend *bb)
{
    unsigned plugged = bb->plugged;
    bb->plugged = 0;
    while (bb->in_flight > 0 || !g_queue_is_empty(&bb->pending)) {
        block_submit_pending(bb);
        if (bb->in_flight > 0) {
            block_reap(bb, 1);
        }
    }
    bb->plugged = plugged;
}

/* ---- requests ---- */

static bool iov_is_aligned(const struct iovec *iov, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if ((uintptr_t)iov[i].iov_base % BLOCK_DIRECT_ALIGN ||
            iov[i].iov_len % BLOCK_DIRECT_ALIGN) {
            return false;
        }
    }
    return true;
}

static void block_rw(BlockBackend *bb, BlockOp op, uint64_t offset, const struct iovec *iov,
                     unsigned n, BlockCompletionFunc *cb, void *opaque)
{
    /* Room for the caller's iovecs plus, when bouncing, the bounce buffer's. */
    BlockRequest *r = g_malloc0(sizeof(*r) + (n + 1) * sizeof(struct iovec));
    r->bb = bb;
    r->op = op;
    r->offset = offset;
    r->cb = cb;
    r->opaque = opaque;
    size_t total = iov_size(iov, n);
    r->total = r->remaining = total;
    if (total == 0) {
        block_finish(r, 0);
        return;
    }
    if (bb->direct && !iov_is_aligned(iov, n)) {
        /* O_DIRECT cannot use the guest's buffers as they are: go through an aligned copy. */
        if (posix_memalign(&r->bounce, 4096, total)) {
            r->bounce = NULL;
            block_finish(r, -ENOMEM);
            return;
        }
        if (op == BLOCK_OP_WRITE) {
            iov_to_buf(iov, n, 0, r->bounce, total);
        }
        memcpy(r->iov_storage + 1, iov, n * sizeof(struct iovec));
        r->orig_iov = r->iov_storage + 1;
        r->orig_niov = n;
        r->iov_storage[0] = (struct iovec){.iov_base = r->bounce, .iov_len = total};
        r->niov = 1;
    } else {
        memcpy(r->iov_storage, iov, n * sizeof(struct iovec));
        r->niov = n;
    }
    r->iov = r->iov_storage;
    block_enqueue(bb, r);
}

void block_readv(BlockBackend *bb, uint64_t offset, const struct iovec *iov, unsigned n,
                 BlockCompletionFunc *cb, void *opaque)
{
    block_rw(bb, BLOCK_OP_READ, offset, iov, n, cb, opaque);
}

void block_writev(BlockBackend *bb, uint64_t offset, const struct iovec *iov, unsigned n,
                  BlockCompletionFunc *cb, void *opaque)
{
    block_rw(bb, BLOCK_OP_WRITE, offset, iov, n, cb, opaque);
}

void block_flush(BlockBackend *bb, BlockCompletionFunc *cb, void *opaque)
{
    if (block_cache_flags(bb->cache).no_flush) {
        cb(opaque, 0);
        return;
    }
    if (bb->fdsync_unsupported) {
        cb(opaque, block_sync_flush(bb));
        return;
    }
    BlockRequest *r = g_malloc0(sizeof(*r));
    r->bb = bb;
    r->op = BLOCK_OP_FLUSH;
    r->cb = cb;
    r->opaque = opaque;
    block_enqueue(bb, r);
}

void block_discard(BlockBackend *bb, uint64_t offset, uint64_t len, BlockCompletionFunc *cb,
                   void *opaque)
{
    int ret = 0;
    if (fallocate(bb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) <
        0) {
        ret = -errno;
    }
    /* A discard is a hint (virtio 1.2 §5.2.6.2): a filesystem that cannot punch holes is fine. */
    if (ret == -EOPNOTSUPP || ret == -ENOSYS) {
        ret = 0;
    }
    cb(opaque, ret);
}

static int block_pwrite_zeroes(BlockBackend *bb, uint64_t offset, uint64_t len)
{
    if (!bb->zero_buf) {
        if (posix_memalign(&bb->zero_buf, 4096, BLOCK_ZERO_BUF_SIZE)) {
            bb->zero_buf = NULL;
            return -ENOMEM;
        }
        memset(bb->zero_buf, 0, BLOCK_ZERO_BUF_SIZE);
    }
    while (len > 0) {
        size_t chunk = MIN(len, (uint64_t)BLOCK_ZERO_BUF_SIZE);
        ssize_t n = pwrite(bb->fd, bb->zero_buf, chunk, (off_t)offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return -ENOSPC;
        }
        offset += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

void block_write_zeroes(BlockBackend *bb, uint64_t offset, uint64_t len, bool may_unmap,
                        BlockCompletionFunc *cb, void *opaque)
{
    int mode = (may_unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
    if (fallocate(bb->fd, mode, (off_t)offset, (off_t)len) == 0) {
        cb(opaque, 0);
        return;
    }
    int err = errno;
    if (may_unmap && fallocate(bb->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                               (off_t)len) == 0) {
        cb(opaque, 0);
        return;
    }
    if (err != EOPNOTSUPP && err != ENOSYS && err != EINVAL) {
        cb(opaque, -err);
        return;
    }
    /* The filesystem cannot do it in place: write the zeroes. */
    cb(opaque, block_pwrite_zeroes(bb, offset, len));
}
