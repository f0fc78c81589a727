/* SPDX-License-Identifier: GPL-2.0-or-later */
/* -blockdev nodes and the disks they make (blockdev.h). */
#include "block/blockdev.h"

#include "util/error.h"
#include "util/opts.h"

#include <string.h>

typedef struct {
    char *name;
    char *driver;   /* file, raw, qcow2 */
    char *filename; /* file: the image */
    char *child;    /* raw, qcow2: the file node under it */
    bool readonly;
    bool direct, no_flush; /* cache.direct, cache.no-flush */
    bool taken;            /* a device uses it */
} Node;

struct BlockdevTable {
    GHashTable *nodes; /* node-name -> Node */
};

static void node_free(gpointer p)
{
    Node *n = p;
    g_free(n->name);
    g_free(n->driver);
    g_free(n->filename);
    g_free(n->child);
    g_free(n);
}

BlockdevTable *blockdev_table_new(void)
{
    BlockdevTable *t = g_new0(BlockdevTable, 1);
    t->nodes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, node_free);
    return t;
}

void blockdev_table_free(BlockdevTable *t)
{
    if (t) {
        g_hash_table_unref(t->nodes);
        g_free(t);
    }
}

bool blockdev_has(BlockdevTable *t, const char *node)
{
    return g_hash_table_contains(t->nodes, node);
}

static bool node_add(BlockdevTable *t, Node *n, GError **error)
{
    if (g_hash_table_contains(t->nodes, n->name)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Duplicate nodes with node-name='%s'",
                    n->name);
        node_free(n);
        return false;
    }
    g_hash_table_insert(t->nodes, n->name, n);
    return true;
}

/*
 * The options every node takes; prefix is "" for the node itself, "file."
 * for an inline file node. discard=unmap/ignore and auto-read-only are
 * accepted: qlite's disks pass discards on when the format can, and open
 * read-only only when asked.
 */
static bool node_common(Opts *o, const char *prefix, Node *n, GError **error)
{
    g_autofree char *ro = g_strconcat(prefix, "read-only", NULL);
    g_autofree char *aro = g_strconcat(prefix, "auto-read-only", NULL);
    g_autofree char *direct = g_strconcat(prefix, "cache.direct", NULL);
    g_autofree char *noflush = g_strconcat(prefix, "cache.no-flush", NULL);
    g_autofree char *discard = g_strconcat(prefix, "discard", NULL);
    bool auto_ro;
    const char *d = opts_get(o, discard);
    if (d && strcmp(d, "unmap") != 0 && strcmp(d, "ignore") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Parameter 'discard' does not accept value '%s'", d);
        return false;
    }
    return opts_get_bool(o, ro, false, &n->readonly, error) &&
           opts_get_bool(o, aro, false, &auto_ro, error) &&
           opts_get_bool(o, direct, false, &n->direct, error) &&
           opts_get_bool(o, noflush, false, &n->no_flush, error);
}

static Node *file_node(Opts *o, const char *prefix, const char *name, GError **error)
{
    g_autofree char *fkey = g_strconcat(prefix, "filename", NULL);
    g_autofree char *akey = g_strconcat(prefix, "aio", NULL);
    const char *filename = opts_get(o, fkey);
    const char *aio = opts_get(o, akey);
    Node *n = g_new0(Node, 1);
    n->name = g_strdup(name);
    n->driver = g_strdup("file");
    n->filename = g_strdup(filename);
    if (!node_common(o, prefix, n, error)) {
        node_free(n);
        return NULL;
    }
    if (!filename || !*filename) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Parameter 'filename' is missing");
        node_free(n);
        return NULL;
    }
    if (aio && strcmp(aio, "native") != 0 && strcmp(aio, "threads") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "aio=%s is not supported (native or threads)", aio);
        node_free(n);
        return NULL;
    }
    return n;
}

bool blockdev_parse(BlockdevTable *t, const char *arg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, NULL, error);
    if (!o) {
        return false;
    }
    const char *driver = opts_get(o, "driver");
    const char *name = opts_get(o, "node-name");
    if (!name || !*name) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "-blockdev: node-name= is required (qlite has no automatic names)");
        return false;
    }
    if (!driver) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Parameter 'driver' is missing");
        return false;
    }
    if (strcmp(driver, "file") == 0) {
        Node *n = file_node(o, "", name, error);
        return n && opts_check_unused(o, error) && node_add(t, n, error);
    }
    if (strcmp(driver, "raw") != 0 && strcmp(driver, "qcow2") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "-blockdev driver '%s' is not supported (file, raw, qcow2)", driver);
        return false;
    }
    /*
     * qcow2's backing= (null, or the node of its backing image) is accepted:
     * qlite opens the chain an image's header names, which is what a
     * manager that probed the image describes.
     */
    if (strcmp(driver, "qcow2") == 0) {
        opts_get(o, "backing");
    }
    Node *n = g_new0(Node, 1);
    n->name = g_strdup(name);
    n->driver = g_strdup(driver);
    const char *child = opts_get(o, "file");
    const char *inline_driver = opts_get(o, "file.driver");
    if (!node_common(o, "", n, error)) {
        node_free(n);
        return false;
    }
    if (inline_driver) {
        /* file.driver=file,file.filename=...: a file node of its own, named after this one. */
        g_autofree char *fname = g_strconcat(name, "-file", NULL);
        Node *f = strcmp(inline_driver, "file") == 0 ? file_node(o, "file.", fname, error) : NULL;
        if (!f) {
            if (strcmp(inline_driver, "file") != 0) {
                g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                            "-blockdev file.driver '%s' is not supported (file)", inline_driver);
            }
            node_free(n);
            return false;
        }
        n->child = g_strdup(f->name);
        if (!node_add(t, f, error)) {
            node_free(n);
            return false;
        }
    } else if (child) {
        n->child = g_strdup(child);
    }
    if (!opts_check_unused(o, error)) {
        node_free(n);
        return false;
    }
    if (!n->child) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Parameter 'file' is missing");
        node_free(n);
        return false;
    }
    Node *c = g_hash_table_lookup(t->nodes, n->child);
    if (!c || strcmp(c->driver, "file") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    c ? "-blockdev %s: file=%s is not a file node"
                      : "-blockdev %s: Cannot find device='' nor node-name='%s'",
                    name, n->child);
        node_free(n);
        return false;
    }
    return node_add(t, n, error);
}

/* cache.direct and cache.no-flush as a cache= mode; the format node's, or its file's. */
static bool node_cache(const Node *fmt, const Node *file, BlockCacheMode *mode, GError **error)
{
    bool direct = fmt->direct || file->direct;
    bool no_flush = fmt->no_flush || file->no_flush;
    if (direct && no_flush) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s: cache.direct=on with cache.no-flush=on is not supported", fmt->name);
        return false;
    }
    *mode = direct ? BLOCK_CACHE_NONE : no_flush ? BLOCK_CACHE_UNSAFE : BLOCK_CACHE_WRITEBACK;
    return true;
}

DriveConfig *blockdev_take_drive(BlockdevTable *t, const char *node, GError **error)
{
    Node *fmt = g_hash_table_lookup(t->nodes, node);
    if (!fmt) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Cannot find device='%s' nor node-name='%s'", node, node);
        return NULL;
    }
    Node *file = fmt->child ? g_hash_table_lookup(t->nodes, fmt->child) : fmt;
    if (fmt->taken || file->taken) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "node '%s' is already in use by another device", node);
        return NULL;
    }
    DriveConfig *d = g_new0(DriveConfig, 1);
    if (!node_cache(fmt, file, &d->cache, error)) {
        g_free(d);
        return NULL;
    }
    fmt->taken = file->taken = true;
    d->id = g_strdup(node);
    d->node_name = g_strdup(node);
    d->file_node_name = fmt->child ? g_strdup(file->name) : NULL;
    d->file = g_strdup(file->filename);
    d->format = g_strdup(fmt->child ? fmt->driver : "raw");
    d->readonly = fmt->readonly || file->readonly;
    return d;
}
