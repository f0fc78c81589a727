/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The raw format: the node's bytes are the file's bytes. Everything goes
 * straight to the file: reads and writes through AIO, discard and
 * write-zeroes as synchronous fallocate calls.
 */
#include "block/block-int.h"
#include "util/error.h"
#include "util/iov.h"

#include <errno.h>
#include <string.h>

typedef struct RawNode {
    BlockNode node;
    bool readonly;
    bool owned;
    bool no_flush; /* cache=unsafe */
    /*
     * The format was probed, not given: as QEMU, a write to the first sector
     * that would make the image probe as something else is refused.
     */
    bool probed;
} RawNode;

static void raw_readv(BlockNode *n, uint64_t offset, const struct iovec *iov, unsigned niov,
                      BlockCompletionFunc *cb, void *opaque)
{
    block_file_readv(n->file, offset, iov, niov, cb, opaque);
}

static void raw_writev(BlockNode *n, uint64_t offset, const struct iovec *iov, unsigned niov,
                       BlockCompletionFunc *cb, void *opaque)
{
    RawNode *r = (RawNode *)n;
    if (r->probed && offset == 0) {
        uint8_t head[4] = {0};
        if (iov_to_buf(iov, niov, 0, head, sizeof(head)) == sizeof(head) &&
            qcow2_probe(head, sizeof(head))) {
            cb(opaque, -EPERM);
            return;
        }
    }
    block_file_writev(n->file, offset, iov, niov, cb, opaque);
}

static void raw_flush(BlockNode *n, BlockCompletionFunc *cb, void *opaque)
{
    if (((RawNode *)n)->no_flush) {
        cb(opaque, 0);
        return;
    }
    block_file_flush(n->file, cb, opaque);
}

static void raw_discard(BlockNode *n, uint64_t offset, uint64_t len, BlockCompletionFunc *cb,
                        void *opaque)
{
    cb(opaque, block_file_discard(n->file, offset, len));
}

static void raw_write_zeroes(BlockNode *n, uint64_t offset, uint64_t len, bool may_unmap,
                             BlockCompletionFunc *cb, void *opaque)
{
    cb(opaque, block_file_write_zeroes(n->file, offset, len, may_unmap));
}

static bool raw_set_owned(BlockNode *n, bool owned, GError **error)
{
    RawNode *r = (RawNode *)n;
    if (owned == r->owned) {
        return true;
    }
    if (!owned && !r->readonly) {
        int ret = block_file_datasync(n->file);
        if (ret < 0) {
            qlite_error_errno(error, -ret, "cannot flush image '%s'", block_file_path(n->file));
            return false;
        }
    }
    if (!block_file_lock(n->file, owned, error)) {
        return false;
    }
    r->owned = owned;
    return true;
}

static void raw_close(BlockNode *n)
{
    block_file_close(n->file);
    g_free(n);
}

static const BlockNodeOps raw_ops = {
    .format = "raw",
    .readv = raw_readv,
    .writev = raw_writev,
    .flush = raw_flush,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .set_owned = raw_set_owned,
    .close = raw_close,
};

BlockNode *raw_open(BlockFile *file, const BlockNodeOptions *o, bool probed, GError **error)
{
    uint64_t length = block_file_length(file);
    /* A backing file may end anywhere: reads past its end are zeroes (qcow2.c). */
    if (!o->backing && length % BLOCK_SECTOR_SIZE) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "image '%s' is %" G_GUINT64_FORMAT " bytes, not a multiple of 512",
                    block_file_path(file), length);
        block_file_close(file);
        return NULL;
    }
    RawNode *r = g_new0(RawNode, 1);
    r->node.ops = &raw_ops;
    r->node.file = file;
    r->node.length = length;
    r->readonly = o->readonly;
    r->owned = !o->inactive;
    r->no_flush = block_cache_flags(o->cache).no_flush;
    r->probed = probed && !o->backing;
    return &r->node;
}
