/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP commands about devices: query-block, query-named-block-nodes,
 * query-blockstats, query-chardev, and device_del
 * (qlite has no hotplug).
 */
#include "monitor/qmp-int.h"

#include <string.h>

/*
 * A node as QEMU's BlockDeviceInfo: the disk's format node (drv raw or
 * qcow2), or with file set its file node (drv file). Throttling is all off.
 */
static JsonObject *node_info(const QmpBlockInfo *b, bool file)
{
    const char *format = file ? "file" : b->format ? b->format : "raw";
    JsonObject *image = json_object_new();
    json_object_set_int_member(image, "virtual-size", (gint64)(file ? b->file_size : b->size));
    json_object_set_string_member(image, "filename", b->file);
    json_object_set_string_member(image, "format", format);
    JsonObject *cache = json_object_new();
    json_object_set_boolean_member(cache, "no-flush", b->cache.no_flush);
    json_object_set_boolean_member(cache, "direct", b->cache.direct);
    json_object_set_boolean_member(cache, "writeback", b->cache.writeback);
    JsonObject *ins = json_object_new();
    json_object_set_string_member(ins, "detect_zeroes", "off");
    json_object_set_object_member(ins, "image", image);
    json_object_set_boolean_member(ins, "ro", b->readonly);
    const char *node = file ? b->file_node_name : b->node_name;
    if (node) {
        json_object_set_string_member(ins, "node-name", node);
    }
    json_object_set_int_member(ins, "backing_file_depth", file ? 0 : b->backing_depth);
    json_object_set_string_member(ins, "drv", format);
    json_object_set_boolean_member(ins, "encrypted", FALSE);
    static const char *const limits[] = {"iops_rd", "iops_wr", "iops",           "bps_wr",
                                         "bps",     "bps_rd",  "write_threshold"};
    for (size_t k = 0; k < G_N_ELEMENTS(limits); k++) {
        json_object_set_int_member(ins, limits[k], 0);
    }
    json_object_set_object_member(ins, "cache", cache);
    json_object_set_string_member(ins, "file", b->file);
    return ins;
}

/* The QOM path of disk i's virtio backend, as QEMU names it. */
static char *qdev_path(const QmpBlockInfo *b, unsigned i)
{
    return b->qdev ? g_strdup_printf("/machine/peripheral/%s/virtio-backend", b->qdev)
                   : g_strdup_printf("/machine/peripheral-anon/device[%u]/virtio-backend", i);
}

/* The fields a manager reads from query-block: qdev is the device's QOM path, as QEMU's. */
JsonNode *qmp_cmd_query_block(QmpServer *s, JsonObject *args)
{
    QmpBlockInfo blk[64];
    unsigned n = MIN(s->ops->blocks(s->opaque, blk, G_N_ELEMENTS(blk)), G_N_ELEMENTS(blk));
    JsonArray *a = json_array_new();
    for (unsigned i = 0; i < n; i++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "io-status", "ok");
        json_object_set_string_member(o, "device", blk[i].device);
        json_object_set_boolean_member(o, "locked", FALSE);
        json_object_set_boolean_member(o, "removable", FALSE);
        json_object_set_object_member(o, "inserted", node_info(&blk[i], false));
        g_autofree char *qdev = qdev_path(&blk[i], i);
        json_object_set_string_member(o, "qdev", qdev);
        json_object_set_string_member(o, "type", "unknown");
        json_array_add_object_element(a, o);
    }
    return qmp_return(qmp_array_node(a));
}

/* Each disk's named nodes (-blockdev): the format node, then the file node under it. */
JsonNode *qmp_cmd_query_named_block_nodes(QmpServer *s, JsonObject *args)
{
    QmpBlockInfo blk[64];
    unsigned n = MIN(s->ops->blocks(s->opaque, blk, G_N_ELEMENTS(blk)), G_N_ELEMENTS(blk));
    JsonArray *a = json_array_new();
    for (unsigned i = 0; i < n; i++) {
        if (blk[i].node_name) {
            json_array_add_object_element(a, node_info(&blk[i], false));
        }
        if (blk[i].file_node_name) {
            json_array_add_object_element(a, node_info(&blk[i], true));
        }
    }
    return qmp_return(qmp_array_node(a));
}

/*
 * QEMU's BlockDeviceStats. A disk's counters are its device's (the format
 * node as the device sees it); a node by itself (the file node, or any node
 * under query-nodes) counts no requests, only how far it was written.
 */
static JsonObject *device_stats(const BlockAcctSnapshot *st, bool device)
{
    static const char *const kinds[BLOCK_ACCT_NR] = {"rd", "wr", "flush", "unmap"};
    JsonObject *o = json_object_new();
    for (int k = 0; k < BLOCK_ACCT_NR; k++) {
        const BlockAcctCounters *c = &st->c[k];
        g_autofree char *ops = g_strdup_printf("%s_operations", kinds[k]);
        g_autofree char *ns = g_strdup_printf("%s_total_time_ns", kinds[k]);
        g_autofree char *failed = g_strdup_printf("failed_%s_operations", kinds[k]);
        g_autofree char *invalid = g_strdup_printf("invalid_%s_operations", kinds[k]);
        json_object_set_int_member(o, ops, device ? (gint64)c->ops : 0);
        json_object_set_int_member(o, ns, device ? (gint64)c->total_ns : 0);
        json_object_set_int_member(o, failed, device ? (gint64)c->failed : 0);
        json_object_set_int_member(o, invalid, device ? (gint64)c->invalid : 0);
        if (k != BLOCK_ACCT_FLUSH) {
            g_autofree char *bytes = g_strdup_printf("%s_bytes", kinds[k]);
            g_autofree char *merged = g_strdup_printf("%s_merged", kinds[k]);
            json_object_set_int_member(o, bytes, device ? (gint64)c->bytes : 0);
            json_object_set_int_member(o, merged, 0); /* qlite merges no requests */
        }
    }
    json_object_set_int_member(o, "wr_highest_offset", (gint64)st->wr_highest_offset);
    if (device && st->idle_ns >= 0) {
        json_object_set_int_member(o, "idle_time_ns", st->idle_ns);
    }
    json_object_set_boolean_member(o, "account_invalid", device);
    json_object_set_boolean_member(o, "account_failed", device);
    json_object_set_array_member(o, "timed_stats", json_array_new());
    return o;
}

/* A disk's file node: the image file, written up to its length for qcow2. */
static JsonObject *file_node_stats(const QmpBlockInfo *b)
{
    BlockAcctSnapshot st = {.wr_highest_offset = b->stats.wr_highest_offset};
    if (b->format && strcmp(b->format, "raw") != 0 && st.wr_highest_offset) {
        st.wr_highest_offset = b->file_size;
    }
    JsonObject *o = json_object_new();
    if (b->file_node_name) {
        json_object_set_string_member(o, "node-name", b->file_node_name);
    }
    json_object_set_object_member(o, "stats", device_stats(&st, false));
    JsonObject *file = json_object_new();
    json_object_set_string_member(file, "driver", "file");
    json_object_set_int_member(file, "discard-nb-ok", 0);
    json_object_set_int_member(file, "discard-nb-failed", 0);
    json_object_set_int_member(file, "discard-bytes-ok", 0);
    json_object_set_object_member(o, "driver-specific", file);
    return o;
}

/*
 * query-blockstats: each disk with its device's counters and its file node
 * as parent; with query-nodes, each named node by itself, as QEMU lists them.
 */
JsonNode *qmp_cmd_query_blockstats(QmpServer *s, JsonObject *args)
{
    bool nodes = json_object_has_member(args, "query-nodes") &&
                 json_object_get_boolean_member(args, "query-nodes");
    QmpBlockInfo blk[64];
    unsigned n = MIN(s->ops->blocks(s->opaque, blk, G_N_ELEMENTS(blk)), G_N_ELEMENTS(blk));
    JsonArray *a = json_array_new();
    for (unsigned i = 0; i < n; i++) {
        if (nodes && !blk[i].node_name) {
            continue;
        }
        if (nodes && blk[i].file_node_name) {
            json_array_add_object_element(a, file_node_stats(&blk[i]));
        }
        JsonObject *o = json_object_new();
        if (!nodes) {
            json_object_set_string_member(o, "device", blk[i].device);
            g_autofree char *qdev = qdev_path(&blk[i], i);
            json_object_set_string_member(o, "qdev", qdev);
        }
        if (blk[i].node_name) {
            json_object_set_string_member(o, "node-name", blk[i].node_name);
        }
        json_object_set_object_member(o, "stats", device_stats(&blk[i].stats, !nodes));
        json_object_set_object_member(o, "parent", file_node_stats(&blk[i]));
        json_array_add_object_element(a, o);
    }
    return qmp_return(qmp_array_node(a));
}

/* No device has an id qlite could unplug by (no hotplug): every id is unknown. */
JsonNode *qmp_cmd_device_del(QmpServer *s, JsonObject *args)
{
    return qmp_error("DeviceNotFound", "Device '%s' not found",
                     json_object_get_string_member(args, "id"));
}

JsonNode *qmp_cmd_query_chardev(QmpServer *s, JsonObject *args)
{
    QmpChardevInfo chr[16];
    unsigned n = MIN(s->ops->chardevs(s->opaque, chr, G_N_ELEMENTS(chr)), G_N_ELEMENTS(chr));
    JsonArray *a = json_array_new();
    for (unsigned i = 0; i < n; i++) {
        JsonObject *o = json_object_new(); /* QEMU's member order */
        json_object_set_boolean_member(o, "frontend-open", chr[i].frontend_open);
        json_object_set_string_member(o, "filename", chr[i].filename);
        json_object_set_string_member(o, "label", chr[i].label);
        json_array_add_object_element(a, o);
        g_free(chr[i].filename);
    }
    return qmp_return(qmp_array_node(a));
}
