/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Disk images for the devices: raw or qcow2 (with backing files), read and
 * written with Linux native AIO (libaio). An image is opened with an OFD lock
 * so two VMs never write one image; data moves as preadv/pwritev iocbs whose
 * completions signal an eventfd, a source on the device's IoThread
 * (block_attach), and every completion callback runs there. Metadata (qcow2's
 * tables) is read and written synchronously on that thread, as are raw
 * discard and write-zeroes (fallocate). docs/block.md has the design.
 *
 * A BlockBackend is used from one thread at a time: the IoThread it is
 * attached to, or the caller when it is not attached.
 */
#include "util/iothread.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define BLOCK_SECTOR_SIZE 512

/* QEMU's cache= modes. */
typedef enum {
    BLOCK_CACHE_WRITEBACK,    /* host page cache, flushes honoured (default) */
    BLOCK_CACHE_NONE,         /* O_DIRECT, flushes honoured */
    BLOCK_CACHE_WRITETHROUGH, /* host page cache, every write stable (O_DSYNC) */
    BLOCK_CACHE_DIRECTSYNC,   /* O_DIRECT and O_DSYNC */
    BLOCK_CACHE_UNSAFE,       /* host page cache, flushes ignored */
} BlockCacheMode;

typedef struct DriveConfig {
    char *id;
    char *file;
    char *format; /* "raw", "qcow2", or NULL: probed as QEMU does */
    bool readonly;
    BlockCacheMode cache;
    char *serial;      /* virtio-blk GET_ID, up to 20 bytes used */
    char *node_name;      /* -blockdev: the node the device uses (the disk has no drive id) */
    char *file_node_name; /* -blockdev: the file node under it, if it is a format node */
    char *device_id;      /* the -device id=, if given */
    unsigned pci_slot; /* -device virtio-blk-pci,addr=: its slot, or 0 for the first free */
    /*
     * Opened for an incoming migration: the source still owns the image, so
     * no lock is taken until block_set_owned(bb, true), as QEMU's inactive
     * images. Set by the machine, not an option.
     */
    bool inactive;
} DriveConfig;

/* What a cache mode means, in QEMU's query-block terms. */
typedef struct BlockCacheFlags {
    bool writeback; /* completed writes may sit in a volatile cache until a flush */
    bool direct;    /* O_DIRECT: no host page cache */
    bool no_flush;  /* flushes are ignored */
} BlockCacheFlags;

BlockCacheFlags block_cache_flags(BlockCacheMode mode);

/* Parses a cache= value ("writeback", "none", "writethrough", "directsync", "unsafe"). */
bool block_cache_mode_parse(const char *name, BlockCacheMode *mode, GError **error);
/* Frees the strings and zeroes cfg. */
void drive_config_clear(DriveConfig *cfg);

typedef struct BlockBackend BlockBackend;
/* ret is 0 or a negative errno. */
typedef void BlockCompletionFunc(void *opaque, int ret);

/*
 * Opens cfg->file as cfg->format (probed when NULL: qcow2's magic, else raw
 * with QEMU's warning on stderr), its guest size a multiple of 512 bytes,
 * locked (write lock read-write, read lock read-only) against other openers;
 * a qcow2 image's backing files are opened read-only with a read lock.
 */
BlockBackend *block_open(const DriveConfig *cfg, GError **error);
/*
 * Migration hands an image over between two processes: owned = false
 * writes what qlite and the host cache to the image (metadata, fdatasync)
 * and releases the lock; owned = true takes it (back), failing when another
 * process has it, and reads the image's metadata again (the other side wrote
 * it meanwhile). No request may be in flight.
 */
bool block_set_owned(BlockBackend *bb, bool owned, GError **error);
/* Drains in-flight requests, releases the lock, closes the image. */
void block_close(BlockBackend *bb);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockBackend, block_close)

uint64_t block_length(BlockBackend *bb); /* guest-visible bytes */
uint64_t block_file_size(BlockBackend *bb); /* the image file's bytes */
/* "raw" or "qcow2": what was opened (query-block's format). */
const char *block_format(BlockBackend *bb);
/* How many backing files lie below the image (query-block's backing_file_depth). */
unsigned block_backing_depth(BlockBackend *bb);
bool block_is_readonly(BlockBackend *bb);
/* True when completed writes may sit in a volatile cache until a flush. */
bool block_has_write_cache(BlockBackend *bb);

/*
 * Delivers completions on t: batch_done(opaque) runs after each batch of
 * completion callbacks (to send one interrupt per batch).
 */
void block_attach(BlockBackend *bb, IoThread *t, void (*batch_done)(void *opaque), void *opaque);
void block_detach(BlockBackend *bb);
/* Between plug and unplug, requests are queued and submitted in one io_submit. */
void block_plug(BlockBackend *bb);
void block_unplug(BlockBackend *bb);

/*
 * Asynchronous requests. offset and the total length are multiples of 512;
 * iov may be released by the caller once the call returns, the buffers it
 * points to must stay until cb. cb runs exactly once, possibly before the
 * call returns (errors, synchronous operations).
 */
void block_readv(BlockBackend *bb, uint64_t offset, const struct iovec *iov, unsigned n,
                 BlockCompletionFunc *cb, void *opaque);
void block_writev(BlockBackend *bb, uint64_t offset, const struct iovec *iov, unsigned n,
                  BlockCompletionFunc *cb, void *opaque);
void block_flush(BlockBackend *bb, BlockCompletionFunc *cb, void *opaque);
void block_discard(BlockBackend *bb, uint64_t offset, uint64_t len, BlockCompletionFunc *cb,
                   void *opaque);
/* may_unmap: the range may be deallocated (punched) as long as it reads back as zeroes. */
void block_write_zeroes(BlockBackend *bb, uint64_t offset, uint64_t len, bool may_unmap,
                        BlockCompletionFunc *cb, void *opaque);
/* Waits until every request submitted so far has completed (its callback ran). */
void block_drain(BlockBackend *bb);
