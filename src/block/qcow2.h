/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * qcow2 (QEMU's docs/interop/qcow2.txt), versions 2 and 3, shared between
 * the qcow2-*.c files:
 *   qcow2.c          header, open, migration hand-over, close, metadata flush
 *   qcow2-io.c       guest requests: split into cluster runs, data through AIO,
 *                    allocation with copy-on-write, discard and write-zeroes
 *   qcow2-cluster.c  L1/L2 tables: mapping a guest cluster, making an L2
 *                    table writable, compressed clusters
 *   qcow2-refcount.c refcounts, the cluster allocator, refcount table growth,
 *                    frees deferred until no reference is left on disk
 *   qcow2-cache.c    the write-back cache of L2 tables and refcount blocks
 *
 * Everything runs on the thread the BlockBackend is used from (its
 * IoThread): data through AIO, metadata with synchronous pread/pwrite.
 */
#include "block/block-int.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define QCOW2_MAGIC              0x514649fbu /* "QFI\xfb" */
#define QCOW2_MIN_CLUSTER_BITS   9
#define QCOW2_MAX_CLUSTER_BITS   21
#define QCOW2_V2_HEADER_LENGTH   72
#define QCOW2_V3_HEADER_LENGTH   104
#define QCOW2_MAX_L1_BYTES       (32u << 20) /* QEMU's bound */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)  /* QEMU's bound */
#define QCOW2_MAX_BACKING_NAME   1023
/* Host offsets are 56 bits in L1/L2 entries. */
#define QCOW2_MAX_HOST_OFFSET ((1ULL << 56) - 1)

/* L1 and L2 entries (qcow2.txt "Cluster mapping"). */
#define QCOW2_OFLAG_COPIED     (1ULL << 63)
#define QCOW2_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW2_OFLAG_ZERO       1ULL
#define QCOW2_OFFSET_MASK      0x00fffffffffffe00ULL
#define QCOW2_L1E_RESERVED     0x7f000000000001feULL
#define QCOW2_L2E_RESERVED     0x3f000000000001feULL
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ULL

/* Incompatible feature bits (header offset 72). */
#define QCOW2_INCOMPAT_DIRTY       (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ULL << 4)
#define QCOW2_INCOMPAT_KNOWN       0x1fULL

/* Header extensions. */
#define QCOW2_EXT_END            0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_DATA_FILE      0x44415441u

/*
 * Cache sizes. L2: QEMU's default of 1 MiB (8 GiB of disk at 64 KiB
 * clusters), less when the disk needs less, at least 2 tables. Refcount
 * blocks: 256 KiB (a 64 KiB block of 16-bit refcounts covers 2 GiB), at
 * least 2 blocks.
 */
#define QCOW2_L2_CACHE_BYTES (1u << 20)
#define QCOW2_RC_CACHE_BYTES (256u << 10)
#define QCOW2_CACHE_MIN      2
/* Pending frees that make a request write the metadata back. */
#define QCOW2_MAX_PENDING_FREES 4096
/* Zeroes written for write-zeroes that cannot be a flag: at most this much per step. */
#define QCOW2_ZERO_BUF_SIZE (1u << 20)

typedef struct Qcow2Cache Qcow2Cache;
typedef struct Qcow2 Qcow2;

typedef enum {
    QCOW2_UNALLOCATED, /* from the backing file, or zeroes */
    QCOW2_ZERO,        /* reads as zeroes (v3 flag), with or without a host cluster */
    QCOW2_NORMAL,
    QCOW2_COMPRESSED,
} Qcow2ClusterType;

/* A run of guest clusters mapped alike (qcow2_map). */
typedef struct Qcow2Map {
    Qcow2ClusterType type;
    uint64_t entry; /* the first cluster's L2 entry */
    uint64_t host;  /* NORMAL: the first cluster's host offset */
    uint64_t count; /* clusters in the run */
} Qcow2Map;

typedef struct Qcow2Free {
    uint64_t offset, bytes;
} Qcow2Free;

struct Qcow2 {
    BlockNode node;
    BlockNode *backing;
    const char *path;
    bool readonly;
    bool owned;        /* holds the image lock, metadata current */
    bool sync;         /* fdatasync between metadata writes (not cache=unsafe) */
    bool writethrough; /* no write cache: metadata written back after every change */

    /* Header (qcow2.txt "Header"). */
    uint32_t version;
    unsigned cluster_bits;
    uint64_t cluster_size;
    unsigned l2_bits; /* log2 of entries per L2 table */
    uint64_t size;
    uint64_t incompat;
    uint32_t header_length;
    char *backing_name;
    char *backing_format;

    /* The active L1 table, host order, padded to whole sectors. */
    uint32_t l1_size;
    uint64_t l1_offset;
    uint64_t *l1;
    size_t l1_sectors;
    bool *l1_dirty; /* per sector */
    bool l1_any_dirty;

    /* The refcount table, host order. */
    uint64_t rt_offset;
    uint32_t rt_clusters;
    uint64_t rt_size; /* entries */
    uint64_t *rt;
    unsigned refcount_order;
    unsigned rb_bits; /* log2 of refcounts per refcount block */

    Qcow2Cache *l2_cache;
    Qcow2Cache *rc_cache;
    bool rc_unsynced;   /* refcount metadata written since the last fdatasync */
    bool l2_unsynced;   /* L2/L1 written since the last fdatasync */
    uint64_t file_end;  /* bytes: the file's length, or past the last cluster allocated */
    uint64_t free_hint; /* cluster index: none below is free */
    GArray *frees;      /* Qcow2Free: references dropped in the cache, not yet on disk */
    unsigned warnings;

    /* Requests (qcow2-io.c). */
    GQueue reqs;    /* in arrival order, until they complete */
    GQueue waiting; /* blocked: run again when something completes */
    GQueue allocs;  /* allocations in flight */
    bool kicking, kick_again;
    void *zero_buf;
};

/* A warning about the image's contents, at most a few per image. */
void qcow2_warn(Qcow2 *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* fdatasync (unless cache=unsafe) after metadata writes; clears the unsynced flags. */
int qcow2_sync(Qcow2 *s);
/*
 * Writes back every cached table in the order that keeps the image
 * consistent (docs/block.md): refcount blocks, sync, L2 tables, sync, L1,
 * then the deferred frees' refcounts. Returns 0 or -errno.
 */
int qcow2_flush_metadata(Qcow2 *s, bool punch);
/* Rewrites header bytes [offset, offset + len) (inside the first sector). */
int qcow2_write_header(Qcow2 *s, unsigned offset, const void *data, size_t len);
void *qcow2_alloc_buf(size_t len); /* aligned for O_DIRECT, zeroed; free() it */

bool qcow2_set_owned(BlockNode *n, bool owned, GError **error);
void qcow2_close(BlockNode *n);

/* qcow2-cache.c */
typedef int Qcow2CacheWriteback(Qcow2 *s, uint64_t offset, const void *table);
Qcow2Cache *qcow2_cache_new(Qcow2 *s, unsigned entries, Qcow2CacheWriteback *writeback);
void qcow2_cache_free(Qcow2Cache *c);
/*
 * The table at offset, read on a miss (the least recently used entry makes
 * room, written back first when dirty). The pointer is valid until the next
 * call on this cache.
 */
int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, void **table);
/* A new table at offset, zeroed, without reading it. */
int qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset, void **table);
void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table);
bool qcow2_cache_has_dirty(Qcow2Cache *c);
int qcow2_cache_flush(Qcow2Cache *c);
/* Forgets everything, dirty or not (after another process wrote the image). */
void qcow2_cache_drop(Qcow2Cache *c);

/* qcow2-cluster.c */
Qcow2ClusterType qcow2_entry_type(uint64_t entry);
/* The host range a compressed entry's data occupies. */
void qcow2_compressed_range(Qcow2 *s, uint64_t entry, uint64_t *offset, uint64_t *bytes);
/* Maps guest cluster gc and up to max - 1 following ones in the same L2 table. */
int qcow2_map(Qcow2 *s, uint64_t gc, uint64_t max, Qcow2Map *m);
/* Copies the L2 entries of guest clusters [gc, gc + n) (one table) to out. */
int qcow2_get_entries(Qcow2 *s, uint64_t gc, uint64_t n, uint64_t *out);
/* Sets them, in the cached table (which must be writable). */
int qcow2_set_entries(Qcow2 *s, uint64_t gc, uint64_t n, const uint64_t *entries);
/* Gives L1 entry l1i an L2 table this image may write: allocated, or copied. */
int qcow2_l2_make_writable(Qcow2 *s, uint64_t l1i);
/* Decompresses the cluster of a compressed entry into buf (cluster_size). */
int qcow2_read_compressed(Qcow2 *s, uint64_t entry, uint8_t *buf);
int qcow2_write_l1(Qcow2 *s);
int qcow2_l2_writeback(Qcow2 *s, uint64_t offset, const void *table);
/* Drops the reference an L2 entry held (deferred: qcow2_free_later). */
void qcow2_free_entry(Qcow2 *s, uint64_t entry);

/* qcow2-refcount.c */
int qcow2_rc_get(Qcow2 *s, uint64_t cluster, uint64_t *refcount);
int qcow2_rc_update(Qcow2 *s, uint64_t cluster, int delta);
/*
 * Allocates up to n contiguous clusters (refcount 1 in the cache): the first
 * free one from the hint on, as many following as are free.
 */
int qcow2_alloc_clusters(Qcow2 *s, uint64_t n, uint64_t *host, uint64_t *got);
/*
 * The clusters of [offset, offset + bytes) lose a reference once the tables
 * that referenced them are on disk (qcow2_flush_metadata).
 */
void qcow2_free_later(Qcow2 *s, uint64_t offset, uint64_t bytes);
/* At once: for clusters nothing on disk references (a failed allocation). */
int qcow2_free_now(Qcow2 *s, uint64_t offset, uint64_t bytes);
/* Applies the deferred frees (their tables are on disk and synced). */
int qcow2_apply_frees(Qcow2 *s, bool punch);
int qcow2_rc_writeback(Qcow2 *s, uint64_t offset, const void *table);
/* Whether cluster c holds the header, the L1 table or the refcount table. */
bool qcow2_is_fixed_metadata(Qcow2 *s, uint64_t cluster);

/* qcow2-io.c */
extern const BlockNodeOps qcow2_ops;
