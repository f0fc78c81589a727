/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Inside the block layer: a BlockNode is one image in a chain, opened by a
 * format driver (raw.c, qcow2.c) over a BlockFile. The BlockBackend (block.c)
 * holds the top node; a qcow2 node holds its backing node. Every node of a
 * chain shares the BlockBackend's BlockAio, so all completions run on the
 * thread the backend is attached to.
 */
#include "block/block.h"
#include "block/file.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct BlockNode BlockNode;

/* How a node is opened: what the BlockBackend's DriveConfig says, for this node. */
typedef struct BlockNodeOptions {
    bool readonly;
    BlockCacheMode cache;
    bool direct;   /* O_DIRECT when the cache mode asks for it (false for backing files) */
    bool inactive; /* no lock until set_owned(true): an incoming migration's image */
    bool backing;  /* a backing file: read-only, read lock, no probing warning */
} BlockNodeOptions;

typedef struct BlockNodeOps {
    const char *format;
    /* As the block_ functions of block.h, offsets and lengths in the node's bytes. */
    void (*readv)(BlockNode *n, uint64_t offset, const struct iovec *iov, unsigned niov,
                  BlockCompletionFunc *cb, void *opaque);
    void (*writev)(BlockNode *n, uint64_t offset, const struct iovec *iov, unsigned niov,
                   BlockCompletionFunc *cb, void *opaque);
    void (*flush)(BlockNode *n, BlockCompletionFunc *cb, void *opaque);
    void (*discard)(BlockNode *n, uint64_t offset, uint64_t len, BlockCompletionFunc *cb,
                    void *opaque);
    void (*write_zeroes)(BlockNode *n, uint64_t offset, uint64_t len, bool may_unmap,
                         BlockCompletionFunc *cb, void *opaque);
    bool (*set_owned)(BlockNode *n, bool owned, GError **error);
    /* Nothing in flight; writes back what is cached, closes the files, frees n. */
    void (*close)(BlockNode *n);
} BlockNodeOps;

struct BlockNode {
    const BlockNodeOps *ops;
    BlockFile *file;
    uint64_t length;        /* guest-visible bytes */
    unsigned backing_depth; /* backing files below this node */
};

/* The longest backing chain opened, as a guard against loops and runaway chains. */
#define BLOCK_MAX_BACKING_DEPTH 16

/*
 * The chain of files being opened, to refuse a backing chain that loops
 * (device and inode of every file so far) or goes deeper than the maximum.
 */
typedef struct BlockChain {
    GArray *ids; /* BlockFileId */
} BlockChain;

/*
 * Opens path as format ("raw", "qcow2", or NULL: probe) on aio. depth is the
 * number of images above this one (0 for the BlockBackend's own image);
 * chain records the files opened so far. Probing that guesses raw for the
 * drive's own image prints QEMU's warning.
 */
BlockNode *block_node_open(const char *path, const char *format, const BlockNodeOptions *o,
                           BlockAio *aio, BlockChain *chain, unsigned depth, GError **error);
void block_node_close(BlockNode *n);

/* The drivers' open functions, over an opened file (which they take over). */
BlockNode *raw_open(BlockFile *file, const BlockNodeOptions *o, bool probed, GError **error);
BlockNode *qcow2_open(BlockFile *file, const BlockNodeOptions *o, BlockAio *aio, BlockChain *chain,
                      unsigned depth, GError **error);
/* Whether the first bytes of a file say qcow2 ("QFI\xfb"). */
bool qcow2_probe(const uint8_t *buf, size_t len);

/* Zeroes len bytes of the iovecs from offset. */
void block_iov_memset(const struct iovec *iov, unsigned n, size_t offset, int c, size_t len);
