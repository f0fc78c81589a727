/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qcow2 cluster mapping (qcow2.txt "Cluster mapping"): the L1 table, kept in
 * memory, points to L2 tables, cached (qcow2-cache.c), whose entries map
 * each guest cluster: unallocated, zero (v3), a host cluster, or compressed
 * data.
 */
#include "block/qcow2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

Qcow2ClusterType qcow2_entry_type(uint64_t entry)
{
    if (entry & QCOW2_OFLAG_COMPRESSED) {
        return QCOW2_COMPRESSED;
    }
    if (entry & QCOW2_OFLAG_ZERO) {
        return QCOW2_ZERO;
    }
    return entry & QCOW2_OFFSET_MASK ? QCOW2_NORMAL : QCOW2_UNALLOCATED;
}

/*
 * Compressed cluster descriptor: x = 62 - (cluster_bits - 8) bits of host
 * byte offset, then the number of 512-byte sectors after the first.
 */
void qcow2_compressed_range(Qcow2 *s, uint64_t entry, uint64_t *offset, uint64_t *bytes)
{
    unsigned x = 62 - (s->cluster_bits - 8);
    uint64_t sectors = ((entry >> x) & ((1ULL << (s->cluster_bits - 8)) - 1)) + 1;
    *offset = entry & ((1ULL << x) - 1);
    *bytes = sectors * 512 - (*offset & 511);
}

static uint64_t *l2_entries(void *table)
{
    return table;
}

/* The cached L2 table of L1 entry l1i, which must be present. */
static int get_l2(Qcow2 *s, uint64_t l1i, uint64_t **table)
{
    uint64_t offset = s->l1[l1i] & QCOW2_OFFSET_MASK;
    if (offset + s->cluster_size > s->file_end) {
        qcow2_warn(s,
                   "L2 table %" G_GUINT64_FORMAT " at 0x%" G_GINT64_MODIFIER
                   "x is past the end of the file",
                   l1i, offset);
        return -EIO;
    }
    void *t;
    int ret = qcow2_cache_get(s->l2_cache, offset, &t);
    *table = t;
    return ret;
}

/* A NORMAL entry the format allows: reserved bits clear, host offset cluster-aligned. */
static int check_entry(Qcow2 *s, uint64_t gc, uint64_t e)
{
    Qcow2ClusterType t = qcow2_entry_type(e);
    if (t == QCOW2_COMPRESSED) {
        return 0;
    }
    if ((e & QCOW2_L2E_RESERVED) || (e & QCOW2_OFFSET_MASK & (s->cluster_size - 1))) {
        qcow2_warn(s,
                   "L2 entry of cluster %" G_GUINT64_FORMAT " (0x%" G_GINT64_MODIFIER
                   "x) is invalid: offset not cluster-aligned or reserved bits set",
                   gc, e);
        return -EIO;
    }
    return 0;
}

int qcow2_map(Qcow2 *s, uint64_t gc, uint64_t max, Qcow2Map *m)
{
    uint64_t per = 1ULL << s->l2_bits;
    uint64_t l1i = gc >> s->l2_bits;
    uint64_t l2i = gc & (per - 1);
    max = MIN(max, per - l2i);
    if (l1i >= s->l1_size) {
        return -EIO;
    }
    if (!(s->l1[l1i] & QCOW2_OFFSET_MASK)) {
        *m = (Qcow2Map){.type = QCOW2_UNALLOCATED, .count = max};
        return 0;
    }
    uint64_t *t;
    int ret = get_l2(s, l1i, &t);
    if (ret < 0) {
        return ret;
    }
    uint64_t e0 = GUINT64_FROM_BE(l2_entries(t)[l2i]);
    ret = check_entry(s, gc, e0);
    if (ret < 0) {
        return ret;
    }
    *m = (Qcow2Map){
        .type = qcow2_entry_type(e0),
        .entry = e0,
        .host = e0 & QCOW2_OFFSET_MASK,
        .count = 1,
    };
    if (m->type == QCOW2_COMPRESSED) {
        return 0;
    }
    for (uint64_t i = 1; i < max; i++) {
        uint64_t e = GUINT64_FROM_BE(l2_entries(t)[l2i + i]);
        if (qcow2_entry_type(e) != m->type || check_entry(s, gc + i, e) < 0) {
            break;
        }
        if (m->type == QCOW2_NORMAL && ((e & QCOW2_OFFSET_MASK) != m->host + i * s->cluster_size ||
                                        (e & QCOW2_OFLAG_COPIED) != (e0 & QCOW2_OFLAG_COPIED))) {
            break;
        }
        m->count++;
    }
    return 0;
}

int qcow2_get_entries(Qcow2 *s, uint64_t gc, uint64_t n, uint64_t *out)
{
    uint64_t l1i = gc >> s->l2_bits;
    uint64_t l2i = gc & ((1ULL << s->l2_bits) - 1);
    g_assert(l2i + n <= 1ULL << s->l2_bits);
    if (l1i >= s->l1_size) {
        return -EIO;
    }
    if (!(s->l1[l1i] & QCOW2_OFFSET_MASK)) {
        memset(out, 0, n * sizeof(*out));
        return 0;
    }
    uint64_t *t;
    int ret = get_l2(s, l1i, &t);
    if (ret < 0) {
        return ret;
    }
    for (uint64_t i = 0; i < n; i++) {
        out[i] = GUINT64_FROM_BE(l2_entries(t)[l2i + i]);
        ret = check_entry(s, gc + i, out[i]);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

int qcow2_set_entries(Qcow2 *s, uint64_t gc, uint64_t n, const uint64_t *entries)
{
    uint64_t l1i = gc >> s->l2_bits;
    uint64_t l2i = gc & ((1ULL << s->l2_bits) - 1);
    g_assert(l1i < s->l1_size && (s->l1[l1i] & QCOW2_OFLAG_COPIED));
    uint64_t *t;
    int ret = get_l2(s, l1i, &t);
    if (ret < 0) {
        return ret;
    }
    for (uint64_t i = 0; i < n; i++) {
        l2_entries(t)[l2i + i] = GUINT64_TO_BE(entries[i]);
    }
    qcow2_cache_mark_dirty(s->l2_cache, t);
    return 0;
}

void qcow2_free_entry(Qcow2 *s, uint64_t entry)
{
    switch (qcow2_entry_type(entry)) {
    case QCOW2_COMPRESSED: {
        uint64_t offset, bytes;
        qcow2_compressed_range(s, entry, &offset, &bytes);
        qcow2_free_later(s, offset, bytes);
        break;
    }
    case QCOW2_ZERO:
    case QCOW2_NORMAL:
        if (entry & QCOW2_OFFSET_MASK) {
            qcow2_free_later(s, entry & QCOW2_OFFSET_MASK, s->cluster_size);
        }
        break;
    case QCOW2_UNALLOCATED:
        break;
    }
}

static void l1_set(Qcow2 *s, uint64_t l1i, uint64_t entry)
{
    s->l1[l1i] = entry;
    s->l1_dirty[l1i * sizeof(uint64_t) / BLOCK_SECTOR_SIZE] = true;
    s->l1_any_dirty = true;
}

/*
 * A missing L2 table is allocated zeroed; one without the COPIED flag is
 * shared (with a snapshot's L1 table) and is copied first: the copy keeps
 * every entry, the data clusters' refcounts already count both tables. The
 * new table is dirty in the cache and the L1 entry dirty in memory, written
 * in that order (qcow2_flush_metadata); the old table's reference is
 * dropped once the new L1 entry is on disk.
 */
int qcow2_l2_make_writable(Qcow2 *s, uint64_t l1i)
{
    uint64_t e = s->l1[l1i];
    uint64_t old = e & QCOW2_OFFSET_MASK;
    if (old && (e & QCOW2_OFLAG_COPIED)) {
        return 0;
    }
    g_autofree uint64_t *copy = NULL;
    if (old) {
        uint64_t *t;
        int ret = get_l2(s, l1i, &t);
        if (ret < 0) {
            return ret;
        }
        copy = g_memdup2(t, s->cluster_size);
    }
    uint64_t host, got;
    int ret = qcow2_alloc_clusters(s, 1, &host, &got);
    if (ret < 0) {
        return ret;
    }
    void *t;
    ret = qcow2_cache_get_empty(s->l2_cache, host, &t);
    if (ret < 0) {
        qcow2_free_now(s, host, s->cluster_size);
        return ret;
    }
    if (copy) {
        memcpy(t, copy, s->cluster_size);
    }
    qcow2_cache_mark_dirty(s->l2_cache, t);
    l1_set(s, l1i, host | QCOW2_OFLAG_COPIED);
    if (old) {
        qcow2_free_later(s, old, s->cluster_size);
    }
    return 0;
}

int qcow2_read_compressed(Qcow2 *s, uint64_t entry, uint8_t *buf)
{
    uint64_t offset, bytes;
    qcow2_compressed_range(s, entry, &offset, &bytes);
    if (offset >= s->file_end) {
        qcow2_warn(s, "compressed cluster at 0x%" G_GINT64_MODIFIER "x is past the end of the file",
                   offset);
        return -EIO;
    }
    g_autofree uint8_t *in = g_malloc(bytes);
    /* The last compressed cluster may claim sectors past the end: they read as zeroes. */
    ssize_t n = block_file_pread(s->node.file, in, bytes, offset);
    if (n < 0) {
        return (int)n;
    }
    z_stream z = {0};
    if (inflateInit2(&z, -12) != Z_OK) { /* raw deflate, 4 KiB window (qcow2.txt) */
        return -ENOMEM;
    }
    z.next_in = in;
    z.avail_in = (uInt)bytes;
    z.next_out = buf;
    z.avail_out = (uInt)s->cluster_size;
    int zr = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    /* As QEMU: the stream may end exactly at the cluster's end without a final marker. */
    if (z.avail_out != 0 || (zr != Z_STREAM_END && zr != Z_BUF_ERROR && zr != Z_OK)) {
        qcow2_warn(s, "compressed cluster at 0x%" G_GINT64_MODIFIER "x does not decompress",
                   offset);
        return -EIO;
    }
    return 0;
}

int qcow2_write_l1(Qcow2 *s)
{
    if (!s->l1_any_dirty) {
        return 0;
    }
    void *buf = qcow2_alloc_buf(BLOCK_SECTOR_SIZE);
    if (!buf) {
        return -ENOMEM;
    }
    unsigned per = BLOCK_SECTOR_SIZE / sizeof(uint64_t);
    int ret = 0;
    for (size_t i = 0; i < s->l1_sectors && ret == 0; i++) {
        if (!s->l1_dirty[i]) {
            continue;
        }
        uint64_t *be = buf;
        for (unsigned j = 0; j < per; j++) {
            be[j] = GUINT64_TO_BE(s->l1[i * per + j]);
        }
        ret = block_file_pwrite(s->node.file, buf, BLOCK_SECTOR_SIZE,
                                s->l1_offset + i * BLOCK_SECTOR_SIZE);
        if (ret == 0) {
            s->l1_dirty[i] = false;
            s->l2_unsynced = true;
        }
    }
    free(buf);
    if (ret == 0) {
        s->l1_any_dirty = false;
    }
    return ret;
}

/*
 * An L2 table goes to disk only after every refcount block in the cache
 * (the clusters it points to have their refcounts there first), synced.
 */
int qcow2_l2_writeback(Qcow2 *s, uint64_t offset, const void *table)
{
    int ret = qcow2_cache_flush(s->rc_cache);
    if (ret < 0) {
        return ret;
    }
    if (s->rc_unsynced) {
        ret = qcow2_sync(s);
        if (ret < 0) {
            return ret;
        }
    }
    ret = block_file_pwrite(s->node.file, table, s->cluster_size, offset);
    if (ret == 0) {
        s->l2_unsynced = true;
    }
    return ret;
}
