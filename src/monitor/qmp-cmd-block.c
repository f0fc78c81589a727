/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP commands about devices: query-block, query-named-block-nodes,
 * query-chardev, and device_del
 * (qlite has no hotplug).
 */
#include "monitor/qmp-int.h"

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
        g_autofree char *qdev =
            blk[i].qdev ? g_strdup_printf("/machine/peripheral/%s/virtio-backend", blk[i].qdev)
                        : g_strdup_printf("/machine/peripheral-anon/device[%u]/virtio-backend", i);
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
