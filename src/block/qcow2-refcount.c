/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qcow2 refcounts (qcow2.txt "Host cluster management"): a refcount table,
 * kept in memory, points to refcount blocks, cached (qcow2-cache.c), of
 * 2^refcount_order-bit counts, one per host cluster.
 *
 * Allocation takes the first cluster with refcount 0 from a hint on (a
 * cluster freed below the hint moves it back), so freed clusters are reused
 * and the file grows only when none is free. A cluster's refcount drops only
 * once no table on disk references it any more: the references dropped in
 * the cache wait in s->frees until qcow2_flush_metadata has written and
 * synced the tables (qcow2_apply_frees).
 *
 * A refcount block or table that must grow goes past the end of the file,
 * with the blocks that count its own clusters (rc_grow).
 */
#include "block/qcow2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rc_read(const uint8_t *b, unsigned order, uint64_t i)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        /* Sub-byte refcounts: entry 0 in the least significant bits (as QEMU). */
        unsigned bits = 1u << order;
        unsigned per = 8 >> order;
        return (b[i / per] >> (bits * (i % per))) & ((1u << bits) - 1);
    }
    case 3:
        return b[i];
    case 4:
        return (uint64_t)b[2 * i] << 8 | b[2 * i + 1];
    case 5: {
        uint32_t v;
        memcpy(&v, b + 4 * i, 4);
        return GUINT32_FROM_BE(v);
    }
    default: {
        uint64_t v;
        memcpy(&v, b + 8 * i, 8);
        return GUINT64_FROM_BE(v);
    }
    }
}

static void rc_write(uint8_t *b, unsigned order, uint64_t i, uint64_t value)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        unsigned bits = 1u << order;
        unsigned per = 8 >> order;
        unsigned shift = bits * (unsigned)(i % per);
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
        b[i / per] = (uint8_t)((b[i / per] & ~mask) | ((value << shift) & mask));
        break;
    }
    case 3:
        b[i] = (uint8_t)value;
        break;
    case 4:
        b[2 * i] = (uint8_t)(value >> 8);
        b[2 * i + 1] = (uint8_t)value;
        break;
    case 5: {
        uint32_t v = GUINT32_TO_BE((uint32_t)value);
        memcpy(b + 4 * i, &v, 4);
        break;
    }
    default: {
        uint64_t v = GUINT64_TO_BE(value);
        memcpy(b + 8 * i, &v, 8);
        break;
    }
    }
}

static uint64_t rc_max(Qcow2 *s)
{
    return s->refcount_order == 6 ? INT64_MAX : (1ULL << (1u << s->refcount_order)) - 1;
}

static bool rc_has_block(Qcow2 *s, uint64_t idx)
{
    return idx < s->rt_size && s->rt[idx];
}

bool qcow2_is_fixed_metadata(Qcow2 *s, uint64_t cluster)
{
    uint64_t off = cluster << s->cluster_bits;
    uint64_t l1_end = s->l1_offset + (uint64_t)s->l1_size * sizeof(uint64_t);
    uint64_t rt_end = s->rt_offset + ((uint64_t)s->rt_clusters << s->cluster_bits);
    return cluster == 0 || (off < l1_end && off + s->cluster_size > s->l1_offset) ||
           (off < rt_end && off + s->cluster_size > s->rt_offset);
}

int qcow2_rc_get(Qcow2 *s, uint64_t cluster, uint64_t *refcount)
{
    uint64_t idx = cluster >> s->rb_bits;
    if (!rc_has_block(s, idx)) {
        *refcount = 0;
        return 0;
    }
    void *b;
    int ret = qcow2_cache_get(s->rc_cache, s->rt[idx], &b);
    if (ret < 0) {
        return ret;
    }
    *refcount = rc_read(b, s->refcount_order, cluster & ((1ULL << s->rb_bits) - 1));
    return 0;
}

/* Writes the refcount table's sector holding entry idx. */
static int rt_write_entry(Qcow2 *s, uint64_t idx)
{
    unsigned per = BLOCK_SECTOR_SIZE / sizeof(uint64_t);
    uint64_t first = idx / per * per;
    uint64_t *buf = qcow2_alloc_buf(BLOCK_SECTOR_SIZE);
    if (!buf) {
        return -ENOMEM;
    }
    for (unsigned j = 0; j < per; j++) {
        buf[j] = first + j < s->rt_size ? GUINT64_TO_BE(s->rt[first + j]) : 0;
    }
    int ret = block_file_pwrite(s->node.file, buf, BLOCK_SECTOR_SIZE,
                                s->rt_offset + first * sizeof(uint64_t));
    free(buf);
    s->rc_unsynced = true;
    return ret;
}

static int rc_flush_and_sync(Qcow2 *s)
{
    int ret = qcow2_cache_flush(s->rc_cache);
    if (ret == 0 && s->rc_unsynced) {
        ret = qcow2_sync(s);
    }
    return ret;
}

/*
 * Makes room for the refcount of a cluster whose refcount block (index
 * want) does not exist. The new blocks, and a new, bigger refcount table
 * when want (or a new block) lies past the table's end, go past the end of
 * the file as one area whose own clusters they count. Order on disk: new
 * blocks, refcounts in existing blocks, sync, then the table entries, or
 * the new table and then the header pointing to it (one sector write), sync;
 * the old table's clusters are freed last. A crash anywhere leaks clusters
 * at worst.
 */
static int rc_grow(Qcow2 *s, uint64_t want)
{
    uint64_t cs = s->cluster_size;
    uint64_t end = DIV_ROUND_UP(s->file_end, cs);
    uint64_t mask = (1ULL << s->rb_bits) - 1;
    g_autoptr(GArray) idx = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    uint64_t T = 0, new_entries = s->rt_size;
    for (unsigned iter = 0;; iter++) {
        if (iter > 64) {
            return -EIO;
        }
        uint64_t B = idx->len;
        uint64_t area_end = end + T + B;
        g_array_set_size(idx, 0);
        if (!rc_has_block(s, want)) {
            g_array_append_val(idx, want);
        }
        if (T + B > 0) {
            for (uint64_t i = end >> s->rb_bits; i <= (area_end - 1) >> s->rb_bits; i++) {
                if (!rc_has_block(s, i) && i != want) {
                    g_array_append_val(idx, i);
                }
            }
        }
        uint64_t max_idx = want;
        for (unsigned j = 0; j < idx->len; j++) {
            max_idx = MAX(max_idx, g_array_index(idx, uint64_t, j));
        }
        uint64_t T2 = 0;
        new_entries = s->rt_size;
        if (max_idx >= s->rt_size) {
            new_entries = (max_idx + 1) + (max_idx + 1) / 2;
            T2 = DIV_ROUND_UP(new_entries * sizeof(uint64_t), cs);
            new_entries = T2 * cs / sizeof(uint64_t);
        }
        if (T2 == T && idx->len == B) {
            break;
        }
        T = T2;
    }
    if (T * cs > QCOW2_MAX_REFTABLE_BYTES) {
        qcow2_warn(s, "the refcount table would grow past %u MiB", QCOW2_MAX_REFTABLE_BYTES >> 20);
        return -ENOSPC;
    }
    uint64_t B = idx->len;
    uint64_t area_end = end + T + B;
    if ((area_end << s->cluster_bits) > QCOW2_MAX_HOST_OFFSET) {
        return -ENOSPC;
    }
    /* The area must be free where existing blocks count it. */
    for (uint64_t c = end; c < area_end; c++) {
        uint64_t rc;
        int ret = qcow2_rc_get(s, c, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc) {
            qcow2_warn(s, "cluster %" G_GUINT64_FORMAT " past the end of the file has a refcount",
                       c);
            return -EIO;
        }
    }

    g_autofree uint8_t **blocks = g_new0(uint8_t *, B + 1);
    int ret = 0;
    for (uint64_t j = 0; j < B && ret == 0; j++) {
        blocks[j] = qcow2_alloc_buf(cs);
        ret = blocks[j] ? 0 : -ENOMEM;
    }
    s->file_end = MAX(s->file_end, area_end * cs);
    for (uint64_t c = end; c < area_end && ret == 0; c++) {
        uint64_t i = c >> s->rb_bits;
        unsigned j = 0;
        while (j < B && g_array_index(idx, uint64_t, j) != i) {
            j++;
        }
        if (j < B) {
            rc_write(blocks[j], s->refcount_order, c & mask, 1);
        } else {
            ret = qcow2_rc_update(s, c, 1);
        }
    }
    for (uint64_t j = 0; j < B && ret == 0; j++) {
        ret = block_file_pwrite(s->node.file, blocks[j], cs, (end + T + j) * cs);
        s->rc_unsynced = true;
    }
    for (uint64_t j = 0; j < B; j++) {
        free(blocks[j]);
    }
    if (ret == 0) {
        ret = rc_flush_and_sync(s);
    }
    if (ret < 0) {
        return ret;
    }

    if (!T) {
        for (uint64_t j = 0; j < B && ret == 0; j++) {
            uint64_t i = g_array_index(idx, uint64_t, j);
            s->rt[i] = (end + T + j) * cs;
            ret = rt_write_entry(s, i);
        }
        return ret;
    }

    uint64_t *table = g_new0(uint64_t, new_entries);
    memcpy(table, s->rt, s->rt_size * sizeof(uint64_t));
    for (uint64_t j = 0; j < B; j++) {
        table[g_array_index(idx, uint64_t, j)] = (end + T + j) * cs;
    }
    uint64_t *be = qcow2_alloc_buf(T * cs);
    if (!be) {
        g_free(table);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < new_entries; i++) {
        be[i] = GUINT64_TO_BE(table[i]);
    }
    ret = block_file_pwrite(s->node.file, be, T * cs, end * cs);
    free(be);
    s->rc_unsynced = true;
    if (ret == 0) {
        ret = qcow2_sync(s);
    }
    if (ret == 0) {
        /* refcount_table_offset (48) and refcount_table_clusters (56), one sector write. */
        uint8_t hdr[12];
        uint64_t off_be = GUINT64_TO_BE(end * cs);
        uint32_t clusters_be = GUINT32_TO_BE((uint32_t)T);
        memcpy(hdr, &off_be, 8);
        memcpy(hdr + 8, &clusters_be, 4);
        ret = qcow2_write_header(s, 48, hdr, sizeof(hdr));
        s->rc_unsynced = true;
    }
    if (ret == 0) {
        ret = qcow2_sync(s);
    }
    if (ret < 0) {
        g_free(table);
        return ret;
    }
    uint64_t old_offset = s->rt_offset;
    uint64_t old_clusters = s->rt_clusters;
    g_free(s->rt);
    s->rt = table;
    s->rt_size = new_entries;
    s->rt_offset = end * cs;
    s->rt_clusters = (uint32_t)T;
    /* Nothing points to the old table any more. */
    return qcow2_free_now(s, old_offset, old_clusters * cs);
}

int qcow2_rc_update(Qcow2 *s, uint64_t cluster, int delta)
{
    uint64_t idx = cluster >> s->rb_bits;
    if (!rc_has_block(s, idx)) {
        if (delta < 0) {
            qcow2_warn(s, "freeing cluster %" G_GUINT64_FORMAT " that has no refcount block",
                       cluster);
            return -EIO;
        }
        int ret = rc_grow(s, idx);
        if (ret < 0) {
            return ret;
        }
    }
    void *b;
    int ret = qcow2_cache_get(s->rc_cache, s->rt[idx], &b);
    if (ret < 0) {
        return ret;
    }
    uint64_t i = cluster & ((1ULL << s->rb_bits) - 1);
    uint64_t v = rc_read(b, s->refcount_order, i);
    if ((delta < 0 && v == 0) || (delta > 0 && v >= rc_max(s))) {
        qcow2_warn(s, "refcount of cluster %" G_GUINT64_FORMAT " would %s", cluster,
                   delta < 0 ? "drop below 0" : "overflow");
        return -EIO;
    }
    v += (uint64_t)(int64_t)delta;
    rc_write(b, s->refcount_order, i, v);
    qcow2_cache_mark_dirty(s->rc_cache, b);
    if (v == 0 && cluster < s->free_hint) {
        s->free_hint = cluster;
    }
    return 0;
}

/* Whether cluster c may be allocated: refcount 0 and not fixed metadata. */
static int cluster_free(Qcow2 *s, uint64_t c, bool *is_free)
{
    uint64_t rc = 0;
    if (qcow2_is_fixed_metadata(s, c)) {
        *is_free = false;
        return 0;
    }
    int ret = qcow2_rc_get(s, c, &rc);
    *is_free = rc == 0;
    return ret;
}

int qcow2_alloc_clusters(Qcow2 *s, uint64_t n, uint64_t *host, uint64_t *got)
{
    uint64_t c = s->free_hint;
    for (;;) {
        uint64_t idx = c >> s->rb_bits;
        if (!rc_has_block(s, idx) && !qcow2_is_fixed_metadata(s, c)) {
            break; /* no block: free */
        }
        bool is_free;
        int ret = cluster_free(s, c, &is_free);
        if (ret < 0) {
            return ret;
        }
        if (is_free) {
            break;
        }
        c++;
    }
    s->free_hint = c;
    uint64_t k = 1;
    while (k < n) {
        bool is_free;
        int ret = cluster_free(s, c + k, &is_free);
        if (ret < 0) {
            return ret;
        }
        if (!is_free) {
            break;
        }
        k++;
    }
    if (((c + k) << s->cluster_bits) > QCOW2_MAX_HOST_OFFSET) {
        return -ENOSPC;
    }
    s->file_end = MAX(s->file_end, (c + k) << s->cluster_bits);
    for (uint64_t i = 0; i < k; i++) {
        int ret = qcow2_rc_update(s, c + i, 1);
        if (ret < 0) {
            qcow2_free_now(s, c << s->cluster_bits, i << s->cluster_bits);
            return ret;
        }
    }
    s->free_hint = c + k;
    *host = c << s->cluster_bits;
    *got = k;
    return 0;
}

void qcow2_free_later(Qcow2 *s, uint64_t offset, uint64_t bytes)
{
    Qcow2Free f = {offset, bytes};
    g_array_append_val(s->frees, f);
}

static int free_range(Qcow2 *s, uint64_t offset, uint64_t bytes, bool punch)
{
    uint64_t first = offset >> s->cluster_bits;
    uint64_t last = (offset + bytes - 1) >> s->cluster_bits;
    int ret = 0;
    for (uint64_t c = first; c <= last && bytes; c++) {
        int r = qcow2_rc_update(s, c, -1);
        if (r < 0) {
            ret = r; /* go on: the others are freed, this one leaks */
            continue;
        }
        uint64_t rc = 0;
        if (punch && qcow2_rc_get(s, c, &rc) == 0 && rc == 0) {
            block_file_discard(s->node.file, c << s->cluster_bits, s->cluster_size);
        }
    }
    return ret;
}

int qcow2_free_now(Qcow2 *s, uint64_t offset, uint64_t bytes)
{
    return free_range(s, offset, bytes, false);
}

int qcow2_apply_frees(Qcow2 *s, bool punch)
{
    int ret = 0;
    for (unsigned i = 0; i < s->frees->len; i++) {
        Qcow2Free *f = &g_array_index(s->frees, Qcow2Free, i);
        int r = free_range(s, f->offset, f->bytes, punch);
        ret = ret ? ret : r;
    }
    g_array_set_size(s->frees, 0);
    return ret;
}

int qcow2_rc_writeback(Qcow2 *s, uint64_t offset, const void *table)
{
    s->rc_unsynced = true;
    return block_file_pwrite(s->node.file, table, s->cluster_size, offset);
}
