/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP commands about devices: query-block, and device_del (qlite has no
 * hotplug).
 */
#include "monitor/qmp-int.h"

/* The fields a manager reads from query-block; throttling and the like are all off. */
JsonNode *qmp_cmd_query_block(QmpServer *s, JsonObject *args)
{
    QmpBlockInfo blk[64];
    unsigned n = MIN(s->ops->blocks(s->opaque, blk, G_N_ELEMENTS(blk)), G_N_ELEMENTS(blk));
    JsonArray *a = json_array_new();
    for (unsigned i = 0; i < n; i++) {
        JsonObject *image = json_object_new();
        json_object_set_int_member(image, "virtual-size", (gint64)blk[i].size);
        json_object_set_string_member(image, "filename", blk[i].file);
        const char *format = blk[i].format ? blk[i].format : "raw";
        json_object_set_string_member(image, "format", format);
        JsonObject *cache = json_object_new();
        json_object_set_boolean_member(cache, "no-flush", blk[i].cache.no_flush);
        json_object_set_boolean_member(cache, "direct", blk[i].cache.direct);
        json_object_set_boolean_member(cache, "writeback", blk[i].cache.writeback);
        JsonObject *ins = json_object_new();
        json_object_set_string_member(ins, "detect_zeroes", "off");
        json_object_set_object_member(ins, "image", image);
        json_object_set_boolean_member(ins, "ro", blk[i].readonly);
        json_object_set_int_member(ins, "backing_file_depth", blk[i].backing_depth);
        json_object_set_string_member(ins, "drv", format);
        json_object_set_boolean_member(ins, "encrypted", FALSE);
        static const char *const limits[] = {"iops_rd", "iops_wr", "iops",           "bps_wr",
                                             "bps",     "bps_rd",  "write_threshold"};
        for (size_t k = 0; k < G_N_ELEMENTS(limits); k++) {
            json_object_set_int_member(ins, limits[k], 0);
        }
        json_object_set_object_member(ins, "cache", cache);
        json_object_set_string_member(ins, "file", blk[i].file);
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "io-status", "ok");
        json_object_set_string_member(o, "device", blk[i].device);
        json_object_set_boolean_member(o, "locked", FALSE);
        json_object_set_boolean_member(o, "removable", FALSE);
        json_object_set_object_member(o, "inserted", ins);
        json_object_set_string_member(o, "type", "unknown");
        json_array_add_object_element(a, o);
    }
    JsonNode *node = json_node_alloc();
    json_node_take_array(json_node_init(node, JSON_NODE_ARRAY), a);
    return qmp_return(node);
}

/* No device has an id qlite could unplug by (no hotplug): every id is unknown. */
JsonNode *qmp_cmd_device_del(QmpServer *s, JsonObject *args)
{
    return qmp_error("DeviceNotFound", "Device '%s' not found",
                     json_object_get_string_member(args, "id"));
}
