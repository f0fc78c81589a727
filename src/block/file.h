/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The host side of every image: a file (or block device) read and written
 * with Linux native AIO (libaio), plus the synchronous calls the format
 * drivers make for metadata.
 *
 * BlockAio is one io_context with its completion eventfd and its queue of
 * requests the kernel has not taken yet; every file of a BlockBackend (the
 * image and its backing files) shares one, so one source on the device's
 * IoThread (block_aio_attach) runs every completion callback.
 *
 * BlockFile is an open file: its descriptor with the cache mode's flags, its
 * OFD image lock, asynchronous readv/writev/flush through its BlockAio, and
 * synchronous pread/pwrite/fdatasync/fallocate for the callers that want them.
 */
#include "block/block.h"
#include "util/iothread.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define DIV_ROUND_UP(n, d) (((n) + (d)-1) / (d))
#define ROUND_UP(n, d)     (DIV_ROUND_UP(n, d) * (d))

/* O_DIRECT needs buffers, lengths and offsets aligned to the logical block size. */
#define BLOCK_DIRECT_ALIGN 512

typedef struct BlockAio BlockAio;

BlockAio *block_aio_new(GError **error);
/* Waits for what is in flight, then frees. */
void block_aio_free(BlockAio *aio);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockAio, block_aio_free)

void block_aio_attach(BlockAio *aio, IoThread *t, void (*batch_done)(void *opaque), void *opaque);
void block_aio_detach(BlockAio *aio);
void block_aio_plug(BlockAio *aio);
void block_aio_unplug(BlockAio *aio);
/*
 * Submits what is queued (plugged or not) and waits for at least one
 * completion, running its callback; false when nothing was in flight.
 */
bool block_aio_wait(BlockAio *aio);

typedef struct BlockFile BlockFile;

/*
 * Opens path read-only or read-write with the cache mode's flags (direct
 * false keeps the host page cache whatever the mode says: backing files).
 * lock: take the image lock now (block_file_lock).
 */
BlockFile *block_file_open(const char *path, BlockAio *aio, bool readonly, BlockCacheMode cache,
                           bool direct, bool lock, GError **error);
/* Closes the descriptor, which drops the lock. No request may be in flight. */
void block_file_close(BlockFile *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockFile, block_file_close)

const char *block_file_path(BlockFile *f);
/* Bytes, as of the open or the last refresh. */
uint64_t block_file_length(BlockFile *f);
/* Reads the length again (fstat): another process may have grown the file. */
bool block_file_refresh_length(BlockFile *f, GError **error);
bool block_file_is_direct(BlockFile *f);
/*
 * QEMU's image locking (OFD locks on the bytes that stand for permissions,
 * file.c): a writer excludes every other writer and reader, readers share.
 * lock false releases it.
 */
bool block_file_lock(BlockFile *f, bool lock, GError **error);

/* Asynchronous, as block_readv (block.h); no alignment needed beyond O_DIRECT's (bounced). */
void block_file_readv(BlockFile *f, uint64_t offset, const struct iovec *iov, unsigned n,
                      BlockCompletionFunc *cb, void *opaque);
void block_file_writev(BlockFile *f, uint64_t offset, const struct iovec *iov, unsigned n,
                       BlockCompletionFunc *cb, void *opaque);
void block_file_flush(BlockFile *f, BlockCompletionFunc *cb, void *opaque);

/*
 * Synchronous calls on the caller's thread, 0 or a negative errno. pread
 * fills what lies past the end of the file with zeroes and returns how many
 * bytes it read (or -errno); buffers need not be aligned.
 */
ssize_t block_file_pread(BlockFile *f, void *buf, size_t len, uint64_t offset);
int block_file_pwrite(BlockFile *f, const void *buf, size_t len, uint64_t offset);
int block_file_datasync(BlockFile *f);
/* Punches a hole; a filesystem that cannot is fine (a discard is a hint). */
int block_file_discard(BlockFile *f, uint64_t offset, uint64_t len);
/* The range reads back as zeroes: fallocate, or written zeroes where it cannot. */
int block_file_write_zeroes(BlockFile *f, uint64_t offset, uint64_t len, bool may_unmap);

/*
 * For crash-consistency tests: the process exits (_exit(status)) right after
 * the n-th write (synchronous, or AIO completion) to any file, as if killed
 * between two writes. 0 turns it off (the default).
 */
void block_file_set_crash_point(unsigned n, int status);
