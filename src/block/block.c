/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The BlockBackend: opens a drive's image by format (given or probed, as
 * QEMU), holds the chain's AIO context, counts requests in flight for drain,
 * and hands every request to the top node's driver.
 */
#include "block/block-int.h"
#include "util/error.h"
#include "util/iov.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

struct BlockBackend {
    BlockAio *aio;
    BlockNode *node;
    bool readonly;
    BlockCacheMode cache;
    bool owned;
    unsigned in_flight;
};

typedef struct BlockBackendReq {
    BlockBackend *bb;
    BlockCompletionFunc *cb;
    void *opaque;
} BlockBackendReq;

typedef struct BlockFileId {
    dev_t dev;
    ino_t ino;
} BlockFileId;

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

BlockCacheFlags block_cache_flags(BlockCacheMode mode)
{
    return (BlockCacheFlags){
        .writeback = mode != BLOCK_CACHE_WRITETHROUGH && mode != BLOCK_CACHE_DIRECTSYNC,
        .direct = mode == BLOCK_CACHE_NONE || mode == BLOCK_CACHE_DIRECTSYNC,
        .no_flush = mode == BLOCK_CACHE_UNSAFE,
    };
}

void drive_config_clear(DriveConfig *cfg)
{
    g_free(cfg->id);
    g_free(cfg->file);
    g_free(cfg->format);
    g_free(cfg->serial);
    g_free(cfg->node_name);
    g_free(cfg->file_node_name);
    g_free(cfg->device_id);
    memset(cfg, 0, sizeof(*cfg));
}

void block_iov_memset(const struct iovec *iov, unsigned n, size_t offset, int c, size_t len)
{
    for (unsigned i = 0; i < n && len > 0; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = MIN(len, iov[i].iov_len - offset);
        memset((uint8_t *)iov[i].iov_base + offset, c, chunk);
        len -= chunk;
        offset = 0;
    }
}

/* ---- opening a chain ---- */

static bool format_known(const char *format)
{
    return !strcmp(format, "raw") || !strcmp(format, "qcow2");
}

BlockNode *block_node_open(const char *path, const char *format, const BlockNodeOptions *o,
                           BlockAio *aio, BlockChain *chain, unsigned depth, GError **error)
{
    if (depth > BLOCK_MAX_BACKING_DEPTH) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "backing chain is longer than %d images at '%s'", BLOCK_MAX_BACKING_DEPTH,
                    path);
        return NULL;
    }
    if (format && !format_known(format)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Unsupported image format '%s' for '%s' (qlite supports raw and qcow2)", format,
                    path);
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        for (unsigned i = 0; i < chain->ids->len; i++) {
            BlockFileId *id = &g_array_index(chain->ids, BlockFileId, i);
            if (id->dev == st.st_dev && id->ino == st.st_ino) {
                g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                            "backing chain loops: '%s' is already in the chain", path);
                return NULL;
            }
        }
        BlockFileId id = {st.st_dev, st.st_ino};
        g_array_append_val(chain->ids, id);
    }
    BlockFile *file =
        block_file_open(path, aio, o->readonly, o->cache, o->direct, !o->inactive, error);
    if (!file) {
        return NULL;
    }
    bool probed = !format;
    if (probed) {
        /* QEMU's probe, for the two formats qlite knows: qcow2's magic, else raw. */
        uint8_t *head = g_malloc0(BLOCK_SECTOR_SIZE);
        ssize_t n = block_file_pread(file, head, BLOCK_SECTOR_SIZE, 0);
        format = n > 0 && qcow2_probe(head, (size_t)n) ? "qcow2" : "raw";
        g_free(head);
        if (n < 0) {
            qlite_error_errno(error, (int)-n, "cannot read image '%s'", path);
            block_file_close(file);
            return NULL;
        }
        if (!strcmp(format, "raw") && !o->backing) {
            g_printerr("WARNING: Image format was not specified for '%s' and probing guessed "
                       "raw.\n"
                       "         Automatically detecting the format is dangerous for raw "
                       "images, write operations on block 0 will be restricted.\n"
                       "         Specify the 'raw' format explicitly to remove the "
                       "restrictions.\n",
                       path);
        }
    }
    if (!strcmp(format, "qcow2")) {
        return qcow2_open(file, o, aio, chain, depth, error);
    }
    return raw_open(file, o, probed, error);
}

void block_node_close(BlockNode *n)
{
    if (n) {
        n->ops->close(n);
    }
}

BlockBackend *block_open(const DriveConfig *cfg, GError **error)
{
    if (!cfg->file || !cfg->file[0]) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "drive '%s' has no file",
                    cfg->id ? cfg->id : "");
        return NULL;
    }
    if (cfg->format && !format_known(cfg->format)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Unsupported image format '%s' for '%s' (qlite supports raw and qcow2)",
                    cfg->format, cfg->file);
        return NULL;
    }
    if ((unsigned)cfg->cache >= G_N_ELEMENTS(cache_mode_names)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "invalid cache mode %d",
                    (int)cfg->cache);
        return NULL;
    }
    g_autoptr(BlockBackend) bb = g_new0(BlockBackend, 1);
    bb->readonly = cfg->readonly;
    bb->cache = cfg->cache;
    bb->owned = !cfg->inactive;
    bb->aio = block_aio_new(error);
    if (!bb->aio) {
        g_prefix_error(error, "image '%s': ", cfg->file);
        return NULL;
    }
    BlockNodeOptions o = {
        .readonly = cfg->readonly,
        .cache = cfg->cache,
        .direct = true,
        .inactive = cfg->inactive,
    };
    BlockChain chain = {.ids = g_array_new(FALSE, FALSE, sizeof(BlockFileId))};
    bb->node = block_node_open(cfg->file, cfg->format, &o, bb->aio, &chain, 0, error);
    g_array_unref(chain.ids);
    if (!bb->node) {
        return NULL;
    }
    return g_steal_pointer(&bb);
}

bool block_set_owned(BlockBackend *bb, bool owned, GError **error)
{
    g_assert(bb->in_flight == 0);
    if (!bb->node->ops->set_owned(bb->node, owned, error)) {
        return false;
    }
    bb->owned = owned;
    return true;
}

void block_close(BlockBackend *bb)
{
    if (!bb) {
        return;
    }
    block_drain(bb);
    block_node_close(bb->node);
    block_aio_free(bb->aio);
    g_free(bb);
}

uint64_t block_length(BlockBackend *bb)
{
    return bb->node->length;
}

uint64_t block_file_size(BlockBackend *bb)
{
    return block_file_length(bb->node->file);
}

const char *block_format(BlockBackend *bb)
{
    return bb->node->ops->format;
}

unsigned block_backing_depth(BlockBackend *bb)
{
    return bb->node->backing_depth;
}

bool block_is_readonly(BlockBackend *bb)
{
    return bb->readonly;
}

bool block_has_write_cache(BlockBackend *bb)
{
    return block_cache_flags(bb->cache).writeback;
}

void block_attach(BlockBackend *bb, IoThread *t, void (*batch_done)(void *opaque), void *opaque)
{
    block_aio_attach(bb->aio, t, batch_done, opaque);
}

void block_detach(BlockBackend *bb)
{
    block_aio_detach(bb->aio);
}

void block_plug(BlockBackend *bb)
{
    block_aio_plug(bb->aio);
}

void block_unplug(BlockBackend *bb)
{
    block_aio_unplug(bb->aio);
}

void block_drain(BlockBackend *bb)
{
    while (bb->in_flight > 0) {
        if (!block_aio_wait(bb->aio)) {
            /* Every request waits on some I/O in flight: this is a bug, not a state to wait in. */
            g_critical("block: %u requests in flight on '%s' but no I/O", bb->in_flight,
                       block_file_path(bb->node->file));
            return;
        }
    }
}

/* ---- requests ---- */

static void block_req_done(void *opaque, int ret)
{
    BlockBackendReq *req = opaque;
    BlockBackend *bb = req->bb;
    BlockCompletionFunc *cb = req->cb;
    void *cb_opaque = req->opaque;
    g_free(req);
    bb->in_flight--;
    cb(cb_opaque, ret);
}

static BlockBackendReq *block_req_new(BlockBackend *bb, BlockCompletionFunc *cb, void *opaque)
{
    BlockBackendReq *req = g_new(BlockBackendReq, 1);
    *req = (BlockBackendReq){bb, cb, opaque};
    bb->in_flight++;
    return req;
}

/* Requests must lie inside the disk; writes need a writable, owned image. */
static int block_check(BlockBackend *bb, uint64_t offset, uint64_t len, bool write)
{
    if (offset > bb->node->length || len > bb->node->length - offset) {
        return -EIO;
    }
    if (write && bb->readonly) {
        return -EROFS;
    }
    return 0;
}

void block_readv(BlockBackend *bb, uint64_t offset, const struct iovec *iov, unsigned n,
                 BlockCompletionFunc *cb, void *opaque)
{
    int ret = block_check(bb, offset, iov_size(iov, n), false);
    if (ret < 0) {
        cb(opaque, ret);
        return;
    }
    bb->node->ops->readv(bb->node, offset, iov, n, block_req_done, block_req_new(bb, cb, opaque));
}

void block_writev(BlockBackend *bb, uint64_t offset, const struct iovec *iov, unsigned n,
                  BlockCompletionFunc *cb, void *opaque)
{
    int ret = block_check(bb, offset, iov_size(iov, n), true);
    if (ret < 0) {
        cb(opaque, ret);
        return;
    }
    bb->node->ops->writev(bb->node, offset, iov, n, block_req_done, block_req_new(bb, cb, opaque));
}

void block_flush(BlockBackend *bb, BlockCompletionFunc *cb, void *opaque)
{
    if (bb->readonly) {
        cb(opaque, 0);
        return;
    }
    bb->node->ops->flush(bb->node, block_req_done, block_req_new(bb, cb, opaque));
}

void block_discard(BlockBackend *bb, uint64_t offset, uint64_t len, BlockCompletionFunc *cb,
                   void *opaque)
{
    int ret = block_check(bb, offset, len, true);
    if (ret < 0) {
        cb(opaque, ret);
        return;
    }
    bb->node->ops->discard(bb->node, offset, len, block_req_done, block_req_new(bb, cb, opaque));
}

void block_write_zeroes(BlockBackend *bb, uint64_t offset, uint64_t len, bool may_unmap,
                        BlockCompletionFunc *cb, void *opaque)
{
    int ret = block_check(bb, offset, len, true);
    if (ret < 0) {
        cb(opaque, ret);
        return;
    }
    bb->node->ops->write_zeroes(bb->node, offset, len, may_unmap, block_req_done,
                                block_req_new(bb, cb, opaque));
}
