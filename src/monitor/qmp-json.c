/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Replies as QEMU writes them: the {"return": ...} and {"error": ...} nodes,
 * and the byte-exact JSON formatting every line a client reads goes through.
 */
#include "monitor/qmp-int.h"

#include <string.h>

JsonNode *qmp_error(const char *cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *desc = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "error");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "class");
    json_builder_add_string_value(b, cls);
    json_builder_set_member_name(b, "desc");
    json_builder_add_string_value(b, desc);
    json_builder_end_object(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

/* Wraps an object in a node; takes o. */
JsonNode *qmp_object_node(JsonObject *o)
{
    JsonNode *n = json_node_alloc();
    json_node_take_object(json_node_init(n, JSON_NODE_OBJECT), o);
    return n;
}

JsonNode *qmp_array_node(JsonArray *a)
{
    JsonNode *n = json_node_alloc();
    json_node_take_array(json_node_init(n, JSON_NODE_ARRAY), a);
    return n;
}

/* {"return": value}, {} when value is NULL; takes value. */
JsonNode *qmp_return(JsonNode *value)
{
    JsonObject *o = json_object_new();
    json_object_set_member(o, "return", value ? value : qmp_object_node(json_object_new()));
    return qmp_object_node(o);
}

/*
 * QEMU's JSON formatting, which clients may compare byte for byte: ", " and
 * ": " separators, members in insertion order, non-ASCII and control
 * characters as \u escapes.
 */
static void json_append_string(GString *out, const char *str)
{
    g_string_append_c(out, '"');
    for (const char *p = str; *p; p = g_utf8_next_char(p)) {
        gunichar ch = g_utf8_get_char_validated(p, -1);
        /* JSON's two-character escapes; ch is never 0 here (the loop ends there). */
        static const char plain[] = "\"\\\b\f\n\r\t", escaped[] = "\"\\bfnrt";
        const char *hit = ch < 0x80 ? strchr(plain, (int)ch) : NULL;
        if (hit) {
            g_string_append_c(out, '\\');
            g_string_append_c(out, escaped[hit - plain]);
            continue;
        }
        if (ch == (gunichar)-1 || ch == (gunichar)-2) {
            g_string_append(out, "\\ufffd"); /* invalid UTF-8 */
            g_string_append_c(out, '"');
            return;
        }
        if (ch >= 0x20 && ch < 0x7f) {
            g_string_append_c(out, (char)ch);
        } else if (ch < 0x10000) {
            g_string_append_printf(out, "\\u%04x", ch);
        } else {
            ch -= 0x10000;
            g_string_append_printf(out, "\\u%04x\\u%04x", 0xd800 | (ch >> 10),
                                   0xdc00 | (ch & 0x3ff));
        }
    }
    g_string_append_c(out, '"');
}

void qmp_json_append(GString *out, JsonNode *node)
{
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT: {
        JsonObject *o = json_node_get_object(node);
        g_autoptr(GList) members = json_object_get_members(o);
        g_string_append_c(out, '{');
        for (GList *m = members; m; m = m->next) {
            json_append_string(out, m->data);
            g_string_append(out, ": ");
            qmp_json_append(out, json_object_get_member(o, m->data));
            if (m->next) {
                g_string_append(out, ", ");
            }
        }
        g_string_append_c(out, '}');
        break;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *a = json_node_get_array(node);
        g_string_append_c(out, '[');
        for (guint i = 0; i < json_array_get_length(a); i++) {
            if (i) {
                g_string_append(out, ", ");
            }
            qmp_json_append(out, json_array_get_element(a, i));
        }
        g_string_append_c(out, ']');
        break;
    }
    case JSON_NODE_NULL:
        g_string_append(out, "null");
        break;
    case JSON_NODE_VALUE:
        switch (json_node_get_value_type(node)) {
        case G_TYPE_INT64:
            g_string_append_printf(out, "%" G_GINT64_FORMAT, json_node_get_int(node));
            break;
        case G_TYPE_DOUBLE: {
            char buf[G_ASCII_DTOSTR_BUF_SIZE];
            g_string_append(out, g_ascii_dtostr(buf, sizeof(buf), json_node_get_double(node)));
            break;
        }
        case G_TYPE_BOOLEAN:
            g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
            break;
        default:
            json_append_string(out, json_node_get_string(node));
            break;
        }
        break;
    }
}
