/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A write-back cache of cluster-sized tables (L2 tables, refcount blocks),
 * keyed by host offset, least recently used out first. What a dirty table
 * must wait for before it is written (an L2 table waits for the refcount
 * blocks) is the writeback function's business.
 */
#include "block/qcow2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct Qcow2CacheEntry {
    uint64_t offset; /* 0: empty (offset 0 is the header, never a table) */
    void *table;
    bool dirty;
    uint64_t used; /* tick of the last use */
} Qcow2CacheEntry;

struct Qcow2Cache {
    Qcow2 *s;
    Qcow2CacheWriteback *writeback;
    unsigned n;
    Qcow2CacheEntry *entries;
    GHashTable *index; /* offset -> entry index + 1 */
    uint64_t tick;
    Qcow2CacheEntry *last; /* the last one returned: what mark_dirty is nearly always about */
};

Qcow2Cache *qcow2_cache_new(Qcow2 *s, unsigned entries, Qcow2CacheWriteback *writeback)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);
    c->s = s;
    c->writeback = writeback;
    c->n = entries;
    c->entries = g_new0(Qcow2CacheEntry, entries);
    c->index = g_hash_table_new(g_direct_hash, g_direct_equal);
    return c;
}

void qcow2_cache_free(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    for (unsigned i = 0; i < c->n; i++) {
        free(c->entries[i].table);
    }
    g_hash_table_destroy(c->index);
    g_free(c->entries);
    g_free(c);
}

static Qcow2CacheEntry *cache_lookup(Qcow2Cache *c, uint64_t offset)
{
    gpointer v = g_hash_table_lookup(c->index, GSIZE_TO_POINTER(offset));
    return v ? &c->entries[GPOINTER_TO_SIZE(v) - 1] : NULL;
}

static int cache_write(Qcow2Cache *c, Qcow2CacheEntry *e)
{
    if (!e->dirty) {
        return 0;
    }
    int ret = c->writeback(c->s, e->offset, e->table);
    if (ret == 0) {
        e->dirty = false;
    }
    return ret;
}

/* An entry to hold a new table: an empty one, or the least recently used, written back. */
static int cache_victim(Qcow2Cache *c, Qcow2CacheEntry **out)
{
    Qcow2CacheEntry *victim = NULL;
    for (unsigned i = 0; i < c->n; i++) {
        Qcow2CacheEntry *e = &c->entries[i];
        if (!e->offset) {
            victim = e;
            break;
        }
        if (!victim || e->used < victim->used) {
            victim = e;
        }
    }
    if (victim->offset) {
        int ret = cache_write(c, victim);
        if (ret < 0) {
            return ret;
        }
        g_hash_table_remove(c->index, GSIZE_TO_POINTER(victim->offset));
        victim->offset = 0;
    }
    if (!victim->table) {
        victim->table = qcow2_alloc_buf(c->s->cluster_size);
        if (!victim->table) {
            return -ENOMEM;
        }
    }
    *out = victim;
    return 0;
}

static void cache_insert(Qcow2Cache *c, Qcow2CacheEntry *e, uint64_t offset)
{
    e->offset = offset;
    e->dirty = false;
    e->used = ++c->tick;
    g_hash_table_insert(c->index, GSIZE_TO_POINTER(offset), GSIZE_TO_POINTER(e - c->entries + 1));
}

int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, void **table)
{
    Qcow2CacheEntry *e = cache_lookup(c, offset);
    if (e) {
        e->used = ++c->tick;
        c->last = e;
        *table = e->table;
        return 0;
    }
    int ret = cache_victim(c, &e);
    if (ret < 0) {
        return ret;
    }
    size_t cs = c->s->cluster_size;
    ssize_t n = block_file_pread(c->s->node.file, e->table, cs, offset);
    if (n < 0) {
        return (int)n;
    }
    if ((size_t)n < cs) {
        qcow2_warn(c->s, "table at 0x%" G_GINT64_MODIFIER "x is past the end of the file", offset);
        return -EIO;
    }
    cache_insert(c, e, offset);
    c->last = e;
    *table = e->table;
    return 0;
}

int qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset, void **table)
{
    Qcow2CacheEntry *e = cache_lookup(c, offset);
    if (!e) {
        int ret = cache_victim(c, &e);
        if (ret < 0) {
            return ret;
        }
        cache_insert(c, e, offset);
    }
    e->used = ++c->tick;
    c->last = e;
    memset(e->table, 0, c->s->cluster_size);
    *table = e->table;
    return 0;
}

void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table)
{
    if (c->last && c->last->table == table && c->last->offset) {
        c->last->dirty = true;
        return;
    }
    for (unsigned i = 0; i < c->n; i++) {
        if (c->entries[i].table == table && c->entries[i].offset) {
            c->entries[i].dirty = true;
            return;
        }
    }
    g_assert_not_reached();
}

bool qcow2_cache_has_dirty(Qcow2Cache *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->entries[i].offset && c->entries[i].dirty) {
            return true;
        }
    }
    return false;
}

int qcow2_cache_flush(Qcow2Cache *c)
{
    int ret = 0;
    /* In offset order: sequential writes, and a stable order for tests. */
    for (;;) {
        Qcow2CacheEntry *next = NULL;
        for (unsigned i = 0; i < c->n; i++) {
            Qcow2CacheEntry *e = &c->entries[i];
            if (e->offset && e->dirty && (!next || e->offset < next->offset)) {
                next = e;
            }
        }
        if (!next) {
            return ret;
        }
        int r = cache_write(c, next);
        if (r < 0) {
            return r; /* stays dirty: the next flush tries again */
        }
    }
}

void qcow2_cache_drop(Qcow2Cache *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        c->entries[i].offset = 0;
        c->entries[i].dirty = false;
    }
    g_hash_table_remove_all(c->index);
    c->last = NULL;
}
