/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "block/file.h"
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

/* Requests in flight in the kernel at once; more wait in aio->pending. */
#define BLOCK_AIO_DEPTH 128
/* Zero buffer for write-zeroes on filesystems that cannot fallocate a zero range. */
#define BLOCK_ZERO_BUF_SIZE (1024 * 1024)

typedef enum {
    BLOCK_OP_READ,
    BLOCK_OP_WRITE,
    BLOCK_OP_FLUSH,
} BlockOp;

typedef struct BlockRequest {
    struct iocb iocb;
    BlockFile *f;
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

struct BlockAio {
    io_context_t ctx;
    int evfd;
    unsigned in_flight;
    unsigned plugged;
    GQueue pending; /* BlockRequest * not yet accepted by io_submit */
    GSource *src;
    void (*batch_done)(void *opaque);
    void *batch_opaque;
};

struct BlockFile {
    BlockAio *aio;
    char *path;
    int fd;
    uint64_t length;
    bool readonly;
    bool direct;
    bool fdsync_unsupported; /* the kernel refused IOCB_CMD_FDSYNC once */
    void *zero_buf;
};

static unsigned crash_countdown;
static int crash_status;

void block_file_set_crash_point(unsigned n, int status)
{
    crash_countdown = n;
    crash_status = status;
}

static void crash_point(void)
{
    if (crash_countdown && --crash_countdown == 0) {
        _exit(crash_status);
    }
}

/* ---- AIO context ---- */

BlockAio *block_aio_new(GError **error)
{
    g_autoptr(BlockAio) aio = g_new0(BlockAio, 1);
    aio->evfd = -1;
    g_queue_init(&aio->pending);
    int rc = io_setup(BLOCK_AIO_DEPTH, &aio->ctx);
    if (rc < 0) {
        aio->ctx = NULL;
        qlite_error_errno(error, -rc, "io_setup (see /proc/sys/fs/aio-max-nr)");
        return NULL;
    }
    aio->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (aio->evfd < 0) {
        qlite_error_errno(error, errno, "cannot create the AIO eventfd");
        return NULL;
    }
    return g_steal_pointer(&aio);
}

void block_aio_free(BlockAio *aio)
{
    if (!aio) {
        return;
    }
    if (aio->ctx) {
        while (block_aio_wait(aio)) {
        }
        io_destroy(aio->ctx);
    }
    block_aio_detach(aio);
    if (aio->evfd >= 0) {
        close(aio->evfd);
    }
    g_free(aio);
}

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
    BlockFile *f = r->f;
    switch (r->op) {
    case BLOCK_OP_READ:
        io_prep_preadv(&r->iocb, f->fd, r->iov, (int)r->niov, (long long)r->offset);
        break;
    case BLOCK_OP_WRITE:
        io_prep_pwritev(&r->iocb, f->fd, r->iov, (int)r->niov, (long long)r->offset);
        break;
    case BLOCK_OP_FLUSH:
        io_prep_fdsync(&r->iocb, f->fd);
        break;
    }
    r->iocb.data = r;
    io_set_eventfd(&r->iocb, f->aio->evfd);
}

/* Hands queued requests to the kernel, up to BLOCK_AIO_DEPTH in flight. */
static void block_submit_pending(BlockAio *aio)
{
    while (!aio->plugged && !g_queue_is_empty(&aio->pending) && aio->in_flight < BLOCK_AIO_DEPTH) {
        struct iocb *batch[BLOCK_AIO_DEPTH];
        unsigned n = 0;
        for (GList *l = aio->pending.head; l && n < BLOCK_AIO_DEPTH - aio->in_flight; l = l->next) {
            batch[n++] = &((BlockRequest *)l->data)->iocb;
        }
        int rc = io_submit(aio->ctx, (long)n, batch);
        if ((rc == -EAGAIN || rc == 0) && aio->in_flight > 0) {
            return; /* kernel resources are short: retried on the next completion */
        }
        if (rc <= 0) {
            /* io_submit reports why the first iocb was refused; the others are retried. */
            BlockRequest *r = g_queue_pop_head(&aio->pending);
            if (r->op == BLOCK_OP_FLUSH && rc == -EINVAL) {
                /* Filesystems without ->fsync for AIO (IOCB_CMD_FDSYNC) get a blocking flush. */
                r->f->fdsync_unsupported = true;
                block_finish(r, block_file_datasync(r->f));
            } else {
                block_finish(r, rc < 0 ? rc : -EIO);
            }
            continue;
        }
        for (int i = 0; i < rc; i++) {
            g_queue_pop_head(&aio->pending);
        }
        aio->in_flight += (unsigned)rc;
    }
}

static void block_enqueue(BlockRequest *r)
{
    BlockAio *aio = r->f->aio;
    block_prep(r);
    g_queue_push_tail(&aio->pending, r);
    block_submit_pending(aio);
}

static void block_complete_io(BlockAio *aio, BlockRequest *r, long res)
{
    aio->in_flight--;
    if (r->op == BLOCK_OP_WRITE) {
        crash_point();
    }
    if (res < 0) {
        block_finish(r, (int)res);
        return;
    }
    if (r->op == BLOCK_OP_FLUSH || (size_t)res >= r->remaining) {
        block_finish(r, 0);
        return;
    }
    if (res == 0) {
        /* Past the end of the file: never report a short transfer as success. */
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
    g_queue_push_head(&aio->pending, r);
}

/* Collects finished iocbs; min_nr 0 does not block. Returns how many. */
static int block_reap(BlockAio *aio, long min_nr)
{
    struct io_event ev[BLOCK_AIO_DEPTH];
    struct timespec zero = {0, 0};
    int n;
    do {
        n = io_getevents(aio->ctx, min_nr, BLOCK_AIO_DEPTH, ev, min_nr ? NULL : &zero);
    } while (n == -EINTR);
    if (n < 0) {
        g_warning("io_getevents: %s", g_strerror(-n));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        block_complete_io(aio, ev[i].data, (long)ev[i].res);
    }
    return n;
}

static void block_aio_ready(void *opaque)
{
    BlockAio *aio = opaque;
    uint64_t count;
    if (read(aio->evfd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        g_warning("AIO eventfd: %s", g_strerror(errno));
    }
    while (block_reap(aio, 0) > 0) {
    }
    block_submit_pending(aio);
    if (aio->batch_done) {
        aio->batch_done(aio->batch_opaque);
    }
}

void block_aio_attach(BlockAio *aio, IoThread *t, void (*batch_done)(void *opaque), void *opaque)
{
    block_aio_detach(aio);
    aio->batch_done = batch_done;
    aio->batch_opaque = opaque;
    aio->src = iothread_add_fd(t, aio->evfd, block_aio_ready, aio);
}

void block_aio_detach(BlockAio *aio)
{
    iothread_remove_source(aio->src);
    aio->src = NULL;
    aio->batch_done = NULL;
    aio->batch_opaque = NULL;
}

void block_aio_plug(BlockAio *aio)
{
    aio->plugged++;
}

void block_aio_unplug(BlockAio *aio)
{
    g_assert(aio->plugged > 0);
    aio->plugged--;
    block_submit_pending(aio);
}

bool block_aio_wait(BlockAio *aio)
{
    unsigned plugged = aio->plugged;
    aio->plugged = 0;
    block_submit_pending(aio);
    bool busy = aio->in_flight > 0;
    if (busy) {
        block_reap(aio, 1);
    }
    aio->plugged = plugged;
    return busy;
}

/* ---- open / close / lock ---- */

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
    return true;
}

BlockFile *block_file_open(const char *path, BlockAio *aio, bool readonly, BlockCacheMode cache,
                           bool direct, bool lock, GError **error)
{
    BlockCacheFlags cf = block_cache_flags(cache);
    direct = direct && cf.direct;
    int flags = O_CLOEXEC | (readonly ? O_RDONLY : O_RDWR);
    /* Without a write cache every write is stable when it completes. */
    flags |= (direct ? O_DIRECT : 0) | (cf.writeback ? 0 : O_DSYNC);

    g_autoptr(BlockFile) f = g_new0(BlockFile, 1);
    f->aio = aio;
    f->path = g_strdup(path);
    f->readonly = readonly;
    f->direct = direct;
    f->fd = open(path, flags);
    if (f->fd < 0) {
        if (errno == EINVAL && direct) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "cannot open image '%s' with cache=none or directsync: the filesystem "
                        "does not support O_DIRECT",
                        path);
        } else {
            qlite_error_errno(error, errno, "cannot open image '%s'%s", path,
                              readonly ? "" : " read-write");
        }
        return NULL;
    }
    if (!block_get_length(f->fd, path, &f->length, error) ||
        (lock && !block_file_lock(f, true, error))) {
        return NULL;
    }
    return g_steal_pointer(&f);
}

void block_file_close(BlockFile *f)
{
    if (!f) {
        return;
    }
    if (f->fd >= 0) {
        close(f->fd); /* releases the OFD lock */
    }
    free(f->zero_buf);
    g_free(f->path);
    g_free(f);
}

const char *block_file_path(BlockFile *f)
{
    return f->path;
}

uint64_t block_file_length(BlockFile *f)
{
    return f->length;
}

bool block_file_refresh_length(BlockFile *f, GError **error)
{
    return block_get_length(f->fd, f->path, &f->length, error);
}

bool block_file_is_direct(BlockFile *f)
{
    return f->direct;
}

/*
 * QEMU's image locking (its file driver), so that qlite, QEMU and qemu-img
 * keep out of each other's way, and out of the bytes others lock (libvirt
 * locks byte 0 for its metadata changes): each permission i an opener uses
 * is a shared lock on byte 100 + i, each it does not let others have one on
 * byte 200 + i. A writer uses consistent read and write, a reader consistent
 * read; neither lets another write (QEMU 7.2's virtio-blk: bytes 100, 101
 * and 201 for a writer). OFD locks belong to the open
 * file description, so two opens conflict even inside one process, and
 * closing another descriptor of the file does not drop them.
 */
enum { PERM_CONSISTENT_READ, PERM_WRITE, PERM_WRITE_UNCHANGED, PERM_RESIZE, PERM_NR };
#define LOCK_PERM_BASE   100
#define LOCK_SHARED_BASE 200
#define LOCK_UNSHARED    (1u << PERM_WRITE)

static const char *const perm_names[PERM_NR] = {"consistent read", "write", "write unchanged",
                                                "resize"};

static int lock_bytes(int fd, short type, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* Whether another open file description holds a lock on the byte. */
static bool byte_taken(int fd, off_t byte, int *err)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
        *err = errno;
        return true;
    }
    return fl.l_type != F_UNLCK;
}

bool block_file_lock(BlockFile *f, bool lock, GError **error)
{
    if (!lock) {
        if (lock_bytes(f->fd, F_UNLCK, 0, 0) == 0) {
            return true;
        }
        qlite_error_errno(error, errno, "cannot unlock image '%s'", f->path);
        return false;
    }
    unsigned perm = (1u << PERM_CONSISTENT_READ) | (f->readonly ? 0 : 1u << PERM_WRITE);
    for (int i = 0; i < PERM_NR; i++) {
        if (((perm >> i) & 1 && lock_bytes(f->fd, F_RDLCK, LOCK_PERM_BASE + i, 1) < 0) ||
            ((LOCK_UNSHARED >> i) & 1 && lock_bytes(f->fd, F_RDLCK, LOCK_SHARED_BASE + i, 1) < 0)) {
            int err = errno;
            lock_bytes(f->fd, F_UNLCK, 0, 0);
            qlite_error_errno(error, err, "cannot lock image '%s'", f->path);
            return false;
        }
    }
    /* QEMU's messages: what we want that another denies, or what another uses that we deny. */
    for (int i = 0; i < PERM_NR; i++) {
        int err = 0;
        bool ours = (perm >> i) & 1;
        if ((ours && byte_taken(f->fd, LOCK_SHARED_BASE + i, &err)) ||
            ((LOCK_UNSHARED >> i) & 1 && byte_taken(f->fd, LOCK_PERM_BASE + i, &err))) {
            lock_bytes(f->fd, F_UNLCK, 0, 0);
            if (err) {
                qlite_error_errno(error, err, "cannot lock image '%s'", f->path);
            } else {
                g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                            "Failed to get %s\"%s\" lock: is another process using the image "
                            "[%s]?",
                            ours ? "" : "shared ", perm_names[i], f->path);
            }
            return false;
        }
    }
    return true;
}

/* ---- asynchronous requests ---- */

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

static void block_rw(BlockFile *f, BlockOp op, uint64_t offset, const struct iovec *iov, unsigned n,
                     BlockCompletionFunc *cb, void *opaque)
{
    /* Room for the caller's iovecs plus, when bouncing, the bounce buffer's. */
    BlockRequest *r = g_malloc0(sizeof(*r) + (n + 1) * sizeof(struct iovec));
    r->f = f;
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
    if (f->direct && !iov_is_aligned(iov, n)) {
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
    block_enqueue(r);
}

void block_file_readv(BlockFile *f, uint64_t offset, const struct iovec *iov, unsigned n,
                      BlockCompletionFunc *cb, void *opaque)
{
    block_rw(f, BLOCK_OP_READ, offset, iov, n, cb, opaque);
}

void block_file_writev(BlockFile *f, uint64_t offset, const struct iovec *iov, unsigned n,
                       BlockCompletionFunc *cb, void *opaque)
{
    block_rw(f, BLOCK_OP_WRITE, offset, iov, n, cb, opaque);
}

void block_file_flush(BlockFile *f, BlockCompletionFunc *cb, void *opaque)
{
    if (f->fdsync_unsupported) {
        cb(opaque, block_file_datasync(f));
        return;
    }
    BlockRequest *r = g_malloc0(sizeof(*r));
    r->f = f;
    r->op = BLOCK_OP_FLUSH;
    r->cb = cb;
    r->opaque = opaque;
    block_enqueue(r);
}

/* ---- synchronous calls ---- */

static bool sync_needs_bounce(BlockFile *f, const void *buf, size_t len, uint64_t offset)
{
    return f->direct && ((uintptr_t)buf % BLOCK_DIRECT_ALIGN || len % BLOCK_DIRECT_ALIGN ||
                         offset % BLOCK_DIRECT_ALIGN);
}

static ssize_t pread_full(int fd, uint8_t *buf, size_t len, uint64_t offset)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* The aligned sectors around a range that O_DIRECT cannot take as it is. */
typedef struct {
    uint8_t *buf; /* NULL when it could not be allocated */
    uint64_t start;
    size_t len;
} Bounce;

/*
 * Reads the aligned sectors around [offset, offset + len) into b->buf, zeroes
 * past the end of the file; returns the bytes read or -errno. b->buf is to be
 * freed either way.
 */
static ssize_t bounce_read(BlockFile *f, uint64_t offset, size_t len, Bounce *b)
{
    b->start = offset & ~(uint64_t)(BLOCK_DIRECT_ALIGN - 1);
    b->len = ROUND_UP(offset + len - b->start, BLOCK_DIRECT_ALIGN);
    void *buf;
    if (posix_memalign(&buf, 4096, b->len)) {
        b->buf = NULL;
        return -ENOMEM;
    }
    b->buf = buf;
    ssize_t n = pread_full(f->fd, b->buf, b->len, b->start);
    if (n >= 0) {
        memset(b->buf + n, 0, b->len - (size_t)n);
    }
    return n;
}

ssize_t block_file_pread(BlockFile *f, void *buf, size_t len, uint64_t offset)
{
    if (!sync_needs_bounce(f, buf, len, offset)) {
        ssize_t n = pread_full(f->fd, buf, len, offset);
        if (n >= 0) {
            memset((uint8_t *)buf + n, 0, len - (size_t)n);
        }
        return n;
    }
    Bounce b;
    ssize_t n = bounce_read(f, offset, len, &b);
    if (n >= 0) {
        memcpy(buf, b.buf + (offset - b.start), len);
        n = MAX(0, MIN((ssize_t)len, n - (ssize_t)(offset - b.start)));
    }
    free(b.buf);
    return n;
}

static int pwrite_full(int fd, const uint8_t *buf, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, (off_t)offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return -ENOSPC;
        }
        buf += n;
        offset += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int block_file_pwrite(BlockFile *f, const void *buf, size_t len, uint64_t offset)
{
    if (!sync_needs_bounce(f, buf, len, offset)) {
        int ret = pwrite_full(f->fd, buf, len, offset);
        crash_point();
        return ret;
    }
    /* Read-modify-write of the aligned sectors around the range. */
    Bounce b;
    ssize_t n = bounce_read(f, offset, len, &b);
    int ret = n < 0 ? (int)n : 0;
    if (ret == 0) {
        memcpy(b.buf + (offset - b.start), buf, len);
        ret = pwrite_full(f->fd, b.buf, b.len, b.start);
        crash_point();
    }
    free(b.buf);
    return ret;
}

int block_file_datasync(BlockFile *f)
{
    return fdatasync(f->fd) < 0 ? -errno : 0;
}

int block_file_discard(BlockFile *f, uint64_t offset, uint64_t len)
{
    if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) ==
        0) {
        crash_point();
        return 0;
    }
    /* A discard is a hint (virtio 1.2 §5.2.6.2): a filesystem that cannot punch holes is fine. */
    return errno == EOPNOTSUPP || errno == ENOSYS ? 0 : -errno;
}

static int block_pwrite_zeroes(BlockFile *f, uint64_t offset, uint64_t len)
{
    if (!f->zero_buf) {
        if (posix_memalign(&f->zero_buf, 4096, BLOCK_ZERO_BUF_SIZE)) {
            f->zero_buf = NULL;
            return -ENOMEM;
        }
        memset(f->zero_buf, 0, BLOCK_ZERO_BUF_SIZE);
    }
    while (len > 0) {
        size_t chunk = MIN(len, (uint64_t)BLOCK_ZERO_BUF_SIZE);
        int ret = block_file_pwrite(f, f->zero_buf, chunk, offset);
        if (ret < 0) {
            return ret;
        }
        offset += chunk;
        len -= chunk;
    }
    return 0;
}

int block_file_write_zeroes(BlockFile *f, uint64_t offset, uint64_t len, bool may_unmap)
{
    int mode = (may_unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
    if (fallocate(f->fd, mode, (off_t)offset, (off_t)len) == 0) {
        return 0;
    }
    int err = errno;
    if (may_unmap && fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                               (off_t)len) == 0) {
        return 0;
    }
    if (err != EOPNOTSUPP && err != ENOSYS && err != EINVAL) {
        return -err;
    }
    /* The filesystem cannot do it in place: write the zeroes. */
    return block_pwrite_zeroes(f, offset, len);
}
