/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qcow2 images (QEMU's docs/interop/qcow2.txt): the header and its checks,
 * opening with the backing chain, the migration hand-over, closing, and the
 * order in which cached metadata reaches the disk.
 */
#include "block/qcow2.h"
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define QCOW2_MAX_WARNINGS 10

bool qcow2_probe(const uint8_t *buf, size_t len)
{
    return len >= 4 && buf[0] == 'Q' && buf[1] == 'F' && buf[2] == 'I' && buf[3] == 0xfb;
}

void qcow2_warn(Qcow2 *s, const char *fmt, ...)
{
    if (s->warnings >= QCOW2_MAX_WARNINGS) {
        return;
    }
    s->warnings++;
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_warning("qcow2 image '%s': %s%s", s->path, msg,
              s->warnings == QCOW2_MAX_WARNINGS ? " (no more warnings for this image)" : "");
}

void *qcow2_alloc_buf(size_t len)
{
    void *p;
    if (posix_memalign(&p, 4096, MAX(len, 1))) {
        return NULL;
    }
    memset(p, 0, len);
    return p;
}

int qcow2_sync(Qcow2 *s)
{
    int ret = 0;
    if (s->sync && (s->rc_unsynced || s->l2_unsynced)) {
        ret = block_file_datasync(s->node.file);
    }
    if (ret == 0) {
        s->rc_unsynced = s->l2_unsynced = false;
    }
    return ret;
}

int qcow2_write_header(Qcow2 *s, unsigned offset, const void *data, size_t len)
{
    g_assert(offset + len <= BLOCK_SECTOR_SIZE);
    uint8_t *sector = qcow2_alloc_buf(BLOCK_SECTOR_SIZE);
    if (!sector) {
        return -ENOMEM;
    }
    ssize_t n = block_file_pread(s->node.file, sector, BLOCK_SECTOR_SIZE, 0);
    int ret = n < 0 ? (int)n : 0;
    if (ret == 0) {
        memcpy(sector + offset, data, len);
        ret = block_file_pwrite(s->node.file, sector, BLOCK_SECTOR_SIZE, 0);
    }
    free(sector);
    return ret;
}

/*
 * The order that keeps the image consistent if qlite dies at any point
 * (docs/block.md): refcounts reach the disk before the tables that
 * reference the clusters, an L2 table before the L1 entry pointing to it,
 * and a reference is dropped from a refcount only once no table on disk
 * holds it. Each step is synced before the next unless cache=unsafe.
 */
int qcow2_flush_metadata(Qcow2 *s, bool punch)
{
    if (s->readonly || !s->owned) {
        return 0;
    }
    int ret = qcow2_cache_flush(s->rc_cache);
    if (ret == 0 && (qcow2_cache_has_dirty(s->l2_cache) || s->l1_any_dirty)) {
        if (s->rc_unsynced) {
            ret = qcow2_sync(s);
        }
        if (ret == 0) {
            ret = qcow2_cache_flush(s->l2_cache);
        }
        if (ret == 0 && s->l1_any_dirty) {
            if (s->l2_unsynced) {
                ret = qcow2_sync(s);
            }
            if (ret == 0) {
                ret = qcow2_write_l1(s);
            }
        }
    }
    if (ret == 0 && s->frees->len) {
        ret = qcow2_sync(s);
        if (ret == 0) {
            ret = qcow2_apply_frees(s, punch);
        }
        int r = qcow2_cache_flush(s->rc_cache);
        ret = ret ? ret : r;
    }
    if (ret == 0) {
        ret = qcow2_sync(s);
    }
    return ret;
}

/* ---- header ---- */

static uint32_t be32_at(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_BE(v);
}

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_BE(v);
}

/* Whether [a, a + alen) and [b, b + blen) overlap (lengths already bounded). */
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

G_GNUC_PRINTF(3, 4)
static bool bad(GError **error, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "qcow2 image '%s': %s", path, msg);
    return false;
}

static bool parse_extensions(Qcow2 *s, const uint8_t *c0, uint64_t start, uint64_t end,
                             GError **error)
{
    uint64_t pos = start;
    while (pos + 8 <= end) {
        uint32_t type = be32_at(c0 + pos);
        uint32_t len = be32_at(c0 + pos + 4);
        pos += 8;
        if (type == QCOW2_EXT_END) {
            break;
        }
        if (len > end - pos) {
            return bad(error, s->path, "header extension 0x%08x runs past the header", type);
        }
        if (type == QCOW2_EXT_BACKING_FORMAT) {
            g_free(s->backing_format);
            s->backing_format = g_strndup((const char *)c0 + pos, len);
        } else if (type == QCOW2_EXT_DATA_FILE) {
            return bad(error, s->path, "qcow2 external data files are not supported");
        }
        pos += ROUND_UP((uint64_t)len, 8);
    }
    return true;
}

/*
 * Reads and checks the header, the L1 table and the refcount table. first:
 * at open (the backing file's name is read too); else after another
 * process wrote the image (a migration's source).
 */
static bool qcow2_load(Qcow2 *s, bool first, GError **error)
{
    const char *path = s->path;
    if (!first && !block_file_refresh_length(s->node.file, error)) {
        return false;
    }
    uint64_t flen = block_file_length(s->node.file);
    g_autofree uint8_t *h = g_malloc0(QCOW2_V3_HEADER_LENGTH + 8);
    ssize_t n = block_file_pread(s->node.file, h, QCOW2_V3_HEADER_LENGTH + 8, 0);
    if (n < 0) {
        qlite_error_errno(error, (int)-n, "cannot read image '%s'", path);
        return false;
    }
    if (n < QCOW2_V2_HEADER_LENGTH) {
        return bad(error, path, "file too short for a qcow2 header");
    }
    if (be32_at(h) != QCOW2_MAGIC) {
        return bad(error, path, "bad magic: not a qcow2 image");
    }
    uint32_t version = be32_at(h + 4);
    if (version != 2 && version != 3) {
        return bad(error, path, "unsupported qcow2 version %u (2 and 3 are)", version);
    }
    uint64_t backing_offset = be64_at(h + 8);
    uint32_t backing_size = be32_at(h + 16);
    uint32_t cluster_bits = be32_at(h + 20);
    uint64_t size = be64_at(h + 24);
    uint32_t crypt = be32_at(h + 32);
    uint32_t l1_size = be32_at(h + 36);
    uint64_t l1_offset = be64_at(h + 40);
    uint64_t rt_offset = be64_at(h + 48);
    uint32_t rt_clusters = be32_at(h + 56);
    uint64_t incompat = 0, autoclear = 0;
    uint32_t refcount_order = 4, header_length = QCOW2_V2_HEADER_LENGTH;
    uint8_t compression = 0;
    if (cluster_bits < QCOW2_MIN_CLUSTER_BITS || cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        return bad(error, path, "cluster_bits %u out of range (%d to %d)", cluster_bits,
                   QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
    }
    uint64_t cs = 1ULL << cluster_bits;
    if (version == 3) {
        if (n < QCOW2_V3_HEADER_LENGTH) {
            return bad(error, path, "file too short for a version 3 header");
        }
        incompat = be64_at(h + 72);
        autoclear = be64_at(h + 88);
        refcount_order = be32_at(h + 96);
        header_length = be32_at(h + 100);
        if (header_length < QCOW2_V3_HEADER_LENGTH || header_length > cs) {
            return bad(error, path, "header_length %u out of range (%d to the cluster size)",
                       header_length, QCOW2_V3_HEADER_LENGTH);
        }
        if (header_length > QCOW2_V3_HEADER_LENGTH) {
            compression = h[104];
        }
        if (refcount_order > 6) {
            return bad(error, path, "refcount_order %u out of range (0 to 6)", refcount_order);
        }
    }
    if (crypt) {
        return bad(error, path, "qcow2 encryption is not supported");
    }
    if (incompat & ~QCOW2_INCOMPAT_KNOWN) {
        return bad(error, path, "unknown incompatible features 0x%" G_GINT64_MODIFIER "x",
                   (uint64_t)(incompat & ~QCOW2_INCOMPAT_KNOWN));
    }
    if (incompat & QCOW2_INCOMPAT_DATA_FILE) {
        return bad(error, path, "qcow2 external data files are not supported");
    }
    if (incompat & QCOW2_INCOMPAT_EXTL2) {
        return bad(error, path, "qcow2 extended L2 entries (subclusters) are not supported");
    }
    if ((incompat & QCOW2_INCOMPAT_COMPRESSION) || compression) {
        return bad(error, path, "qcow2 compression type %s is not supported (only zlib)",
                   compression == 1 ? "zstd" : "other than zlib");
    }
    if (!s->readonly && (incompat & QCOW2_INCOMPAT_CORRUPT)) {
        return bad(error, path,
                   "image is marked corrupt: open it read-only or repair it "
                   "(qemu-img check -r all)");
    }
    if (!s->readonly && (incompat & QCOW2_INCOMPAT_DIRTY)) {
        return bad(error, path,
                   "image is dirty (lazy refcounts, which qlite does not do): repair it with "
                   "qemu-img check -r all");
    }
    if (size % BLOCK_SECTOR_SIZE) {
        return bad(error, path, "disk size %" G_GUINT64_FORMAT " is not a multiple of 512", size);
    }
    /* Each L1 entry maps cs / 8 clusters of cs bytes. */
    unsigned l1_shift = 2 * cluster_bits - 3;
    uint64_t l1_needed = (size >> l1_shift) + ((size & ((1ULL << l1_shift) - 1)) != 0);
    uint64_t l1_max = QCOW2_MAX_L1_BYTES / sizeof(uint64_t);
    if (l1_needed > l1_max) {
        return bad(error, path,
                   "disk size %" G_GUINT64_FORMAT " too large (its L1 table would exceed %u MiB)",
                   size, QCOW2_MAX_L1_BYTES >> 20);
    }
    if (l1_size > l1_max) {
        return bad(error, path, "L1 table too large (%u entries, at most %" G_GUINT64_FORMAT ")",
                   l1_size, l1_max);
    }
    if (l1_size < l1_needed) {
        return bad(error, path,
                   "L1 table too small for the disk size (%u entries, %" G_GUINT64_FORMAT
                   " needed)",
                   l1_size, l1_needed);
    }
    uint64_t l1_bytes = (uint64_t)l1_size * sizeof(uint64_t);
    if (l1_size && (l1_offset % cs || l1_offset == 0)) {
        return bad(error, path, "L1 table offset 0x%" G_GINT64_MODIFIER "x is not cluster-aligned",
                   l1_offset);
    }
    if (l1_size && (l1_offset > flen || l1_bytes > flen - l1_offset)) {
        return bad(error, path, "L1 table is past the end of the file");
    }
    if (rt_clusters == 0) {
        return bad(error, path, "refcount table is empty");
    }
    if ((uint64_t)rt_clusters > QCOW2_MAX_REFTABLE_BYTES / cs) {
        return bad(error, path, "refcount table too large (%u clusters, at most %u MiB)",
                   rt_clusters, QCOW2_MAX_REFTABLE_BYTES >> 20);
    }
    uint64_t rt_bytes = (uint64_t)rt_clusters * cs;
    if (rt_offset % cs || rt_offset == 0) {
        return bad(error, path,
                   "refcount table offset 0x%" G_GINT64_MODIFIER "x is not cluster-aligned",
                   rt_offset);
    }
    if (rt_offset > flen || rt_bytes > flen - rt_offset) {
        return bad(error, path, "refcount table is past the end of the file");
    }
    if (l1_size && overlaps(l1_offset, l1_bytes, rt_offset, rt_bytes)) {
        return bad(error, path, "L1 table and refcount table overlap");
    }
    if (backing_offset) {
        if (backing_size > QCOW2_MAX_BACKING_NAME) {
            return bad(error, path, "backing file name too long (%u bytes)", backing_size);
        }
        if (backing_offset < header_length || backing_offset > cs ||
            backing_size > cs - backing_offset) {
            return bad(error, path, "backing file name lies outside the header cluster");
        }
    }

    /* The header cluster: extensions and the backing file's name. */
    g_autofree uint8_t *c0 = g_malloc0(cs);
    n = block_file_pread(s->node.file, c0, cs, 0);
    if (n < 0) {
        qlite_error_errno(error, (int)-n, "cannot read image '%s'", path);
        return false;
    }
    if (first) {
        if (!parse_extensions(s, c0, header_length, backing_offset ? backing_offset : cs, error)) {
            return false;
        }
        if (backing_offset && backing_size) {
            s->backing_name = g_strndup((const char *)c0 + backing_offset, backing_size);
        }
    } else if (size != s->size || cluster_bits != s->cluster_bits) {
        return bad(error, path, "disk size or cluster size changed while another process had it");
    }

    /* L1 table, padded to whole sectors. */
    size_t l1_sectors = DIV_ROUND_UP(l1_bytes, BLOCK_SECTOR_SIZE);
    uint64_t *l1 = qcow2_alloc_buf(l1_sectors * BLOCK_SECTOR_SIZE);
    if (!l1) {
        return bad(error, path, "out of memory for the L1 table");
    }
    n = l1_sectors ? block_file_pread(s->node.file, l1, l1_sectors * BLOCK_SECTOR_SIZE, l1_offset)
                   : 0;
    if (n < 0) {
        free(l1);
        qlite_error_errno(error, (int)-n, "cannot read the L1 table of '%s'", path);
        return false;
    }
    for (size_t i = 0; i < l1_sectors * BLOCK_SECTOR_SIZE / sizeof(uint64_t); i++) {
        l1[i] = GUINT64_FROM_BE(l1[i]);
        uint64_t off = l1[i] & QCOW2_OFFSET_MASK;
        if (i < l1_size && ((l1[i] & QCOW2_L1E_RESERVED) || off % cs)) {
            uint64_t e = l1[i];
            free(l1);
            return bad(error, path,
                       "L1 entry %zu (0x%" G_GINT64_MODIFIER "x): L2 table offset not "
                       "cluster-aligned or reserved bits set",
                       i, e);
        }
        if (i < l1_size && off && off < cs) {
            free(l1);
            return bad(error, path, "L1 entry %zu: L2 table overlaps the header", i);
        }
    }

    /* Refcount table. */
    uint64_t rt_size = rt_bytes / sizeof(uint64_t);
    uint64_t *rt = g_new(uint64_t, rt_size);
    n = block_file_pread(s->node.file, rt, rt_bytes, rt_offset);
    if (n < 0) {
        free(l1);
        g_free(rt);
        qlite_error_errno(error, (int)-n, "cannot read the refcount table of '%s'", path);
        return false;
    }
    g_autoptr(GHashTable) blocks = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (uint64_t i = 0; i < rt_size; i++) {
        rt[i] = GUINT64_FROM_BE(rt[i]);
        uint64_t off = rt[i] & QCOW2_REFT_OFFSET_MASK;
        const char *why = NULL;
        if (!rt[i]) {
            continue;
        } else if (rt[i] != off || off % cs) {
            why = "is not cluster-aligned";
        } else if (off > flen || cs > flen - off) {
            why = "is past the end of the file";
        } else if (off < cs) {
            why = "overlaps the header";
        } else if (overlaps(off, cs, rt_offset, rt_bytes)) {
            why = "overlaps the refcount table";
        } else if (l1_size && overlaps(off, cs, l1_offset, l1_bytes)) {
            why = "overlaps the L1 table";
        } else if (!g_hash_table_add(blocks, GSIZE_TO_POINTER(off))) {
            why = "is also another refcount block";
        }
        if (why) {
            uint64_t e = rt[i];
            free(l1);
            g_free(rt);
            return bad(error, path,
                       "refcount block %" G_GUINT64_FORMAT " at 0x%" G_GINT64_MODIFIER "x %s", i, e,
                       why);
        }
    }

    free(s->l1);
    g_free(s->l1_dirty);
    g_free(s->rt);
    s->version = version;
    s->cluster_bits = cluster_bits;
    s->cluster_size = cs;
    s->l2_bits = cluster_bits - 3;
    s->size = size;
    s->incompat = incompat;
    s->header_length = header_length;
    s->l1_size = l1_size;
    s->l1_offset = l1_offset;
    s->l1 = l1;
    s->l1_sectors = l1_sectors;
    s->l1_dirty = g_new0(bool, MAX(l1_sectors, 1));
    s->l1_any_dirty = false;
    s->rt_offset = rt_offset;
    s->rt_clusters = rt_clusters;
    s->rt_size = rt_size;
    s->rt = rt;
    s->refcount_order = refcount_order;
    s->rb_bits = cluster_bits + 3 - refcount_order;
    s->file_end = flen;
    s->free_hint = 0;
    s->rc_unsynced = s->l2_unsynced = false;

    /* Bits for features qlite does not keep up to date (bitmaps) are cleared on writing. */
    if (version == 3 && autoclear && !s->readonly && s->owned) {
        uint64_t zero = 0;
        int ret = qcow2_write_header(s, 88, &zero, sizeof(zero));
        if (ret < 0) {
            qlite_error_errno(error, -ret, "cannot write the header of '%s'", path);
            return false;
        }
    }
    return true;
}

static void qcow2_make_caches(Qcow2 *s)
{
    uint64_t l1_shift = 2 * s->cluster_bits - 3;
    uint64_t tables = DIV_ROUND_UP(s->size, 1ULL << l1_shift);
    uint64_t l2 = MIN(QCOW2_L2_CACHE_BYTES / s->cluster_size, tables);
    uint64_t rc = QCOW2_RC_CACHE_BYTES / s->cluster_size;
    s->l2_cache = qcow2_cache_new(s, (unsigned)MAX(l2, QCOW2_CACHE_MIN), qcow2_l2_writeback);
    s->rc_cache = qcow2_cache_new(s, (unsigned)MAX(rc, QCOW2_CACHE_MIN), qcow2_rc_writeback);
}

static void qcow2_free(Qcow2 *s)
{
    block_node_close(s->backing);
    qcow2_cache_free(s->l2_cache);
    qcow2_cache_free(s->rc_cache);
    free(s->l1);
    g_free(s->l1_dirty);
    g_free(s->rt);
    g_free(s->backing_name);
    g_free(s->backing_format);
    if (s->frees) {
        g_array_unref(s->frees);
    }
    free(s->zero_buf);
    block_file_close(s->node.file);
    g_free(s);
}

static bool qcow2_open_backing(Qcow2 *s, const BlockNodeOptions *o, BlockAio *aio,
                               BlockChain *chain, unsigned depth, GError **error)
{
    g_autofree char *path = NULL;
    if (g_path_is_absolute(s->backing_name)) {
        path = g_strdup(s->backing_name);
    } else {
        /* Relative to the directory of the image that names it (as QEMU). */
        g_autofree char *dir = g_path_get_dirname(s->path);
        path = g_build_filename(dir, s->backing_name, NULL);
    }
    BlockNodeOptions bo = {
        .readonly = true,
        .cache = o->cache,
        .direct = false,
        .backing = true,
    };
    s->backing = block_node_open(path, s->backing_format, &bo, aio, chain, depth + 1, error);
    if (!s->backing) {
        g_prefix_error(error, "backing file of '%s': ", s->path);
        return false;
    }
    s->node.backing_depth = s->backing->backing_depth + 1;
    return true;
}

BlockNode *qcow2_open(BlockFile *file, const BlockNodeOptions *o, BlockAio *aio, BlockChain *chain,
                      unsigned depth, GError **error)
{
    Qcow2 *s = g_new0(Qcow2, 1);
    s->node.ops = &qcow2_ops;
    s->node.file = file;
    s->path = block_file_path(file);
    s->readonly = o->readonly;
    s->owned = !o->inactive;
    BlockCacheFlags cf = block_cache_flags(o->cache);
    s->sync = !cf.no_flush;
    s->writethrough = !cf.writeback;
    s->frees = g_array_new(FALSE, FALSE, sizeof(Qcow2Free));
    g_queue_init(&s->reqs);
    g_queue_init(&s->waiting);
    g_queue_init(&s->allocs);
    if (!qcow2_load(s, true, error)) {
        qcow2_free(s);
        return NULL;
    }
    s->node.length = s->size;
    qcow2_make_caches(s);
    if (s->backing_name && !qcow2_open_backing(s, o, aio, chain, depth, error)) {
        qcow2_free(s);
        return NULL;
    }
    return &s->node;
}

/*
 * Migration: the source writes everything back and lets go; the
 * destination, which opened the image before the source stopped writing it,
 * forgets its caches and reads the metadata again.
 */
bool qcow2_set_owned(BlockNode *n, bool owned, GError **error)
{
    Qcow2 *s = (Qcow2 *)n;
    if (owned == s->owned) {
        return true;
    }
    if (!owned) {
        if (!s->readonly) {
            /* No hole punching here: the migration thread's filter has no fallocate. */
            int ret = qcow2_flush_metadata(s, false);
            if (ret == 0) {
                ret = block_file_datasync(n->file);
            }
            if (ret < 0) {
                qlite_error_errno(error, -ret, "cannot flush image '%s'", s->path);
                return false;
            }
        }
        if (!block_file_lock(n->file, false, error)) {
            return false;
        }
        s->owned = false;
        return true;
    }
    if (!block_file_lock(n->file, true, error)) {
        return false;
    }
    qcow2_cache_drop(s->l2_cache);
    qcow2_cache_drop(s->rc_cache);
    g_array_set_size(s->frees, 0);
    s->owned = true;
    if (!qcow2_load(s, false, error)) {
        s->owned = false;
        block_file_lock(n->file, false, NULL);
        return false;
    }
    return true;
}

void qcow2_close(BlockNode *n)
{
    Qcow2 *s = (Qcow2 *)n;
    g_assert(g_queue_is_empty(&s->reqs));
    int ret = qcow2_flush_metadata(s, true);
    if (ret < 0) {
        g_warning("qcow2 image '%s': cannot write its metadata back: %s", s->path,
                  g_strerror(-ret));
    }
    qcow2_free(s);
}
