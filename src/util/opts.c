/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/opts.h"
#include "util/error.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    char *value;
    bool used;
} Opt;

struct Opts {
    GArray *items; /* Opt */
};

static void opt_clear(gpointer p)
{
    Opt *o = p;
    g_free(o->key);
    g_free(o->value);
}

void opts_free(Opts *opts)
{
    if (!opts) {
        return;
    }
    g_array_unref(opts->items);
    g_free(opts);
}

/* Reads up to an unescaped ',' (or '=' when stop_at_eq); ",," is a literal comma. */
static char *read_token(const char **p, bool stop_at_eq)
{
    GString *s = g_string_new(NULL);
    while (**p) {
        if (**p == ',') {
            if ((*p)[1] == ',') {
                g_string_append_c(s, ',');
                *p += 2;
                continue;
            }
            break;
        }
        if (stop_at_eq && **p == '=') {
            break;
        }
        g_string_append_c(s, **p);
        (*p)++;
    }
    return g_string_free(s, FALSE);
}

static void opts_add(Opts *opts, const char *key, char *value)
{
    Opt o = {.key = g_strdup(key), .value = value};
    g_array_append_val(opts->items, o);
}

/*
 * A JSON object's members as keys: a nested object's with dots
 * ("file": {"driver": "file"} is file.driver=file), booleans as on/off,
 * numbers in decimal, as QEMU's keyval reads its JSON form.
 */
static bool opts_add_json(Opts *opts, const char *prefix, JsonObject *obj, GError **error)
{
    g_autoptr(GList) names = json_object_get_members(obj);
    for (GList *n = names; n; n = n->next) {
        JsonNode *v = json_object_get_member(obj, n->data);
        g_autofree char *key =
            *prefix ? g_strdup_printf("%s.%s", prefix, (char *)n->data) : g_strdup(n->data);
        if (JSON_NODE_HOLDS_OBJECT(v)) {
            if (!opts_add_json(opts, key, json_node_get_object(v), error)) {
                return false;
            }
            continue;
        }
        GType t = JSON_NODE_HOLDS_VALUE(v) ? json_node_get_value_type(v) : G_TYPE_INVALID;
        if (t == G_TYPE_STRING) {
            opts_add(opts, key, g_strdup(json_node_get_string(v)));
        } else if (t == G_TYPE_BOOLEAN) {
            opts_add(opts, key, g_strdup(json_node_get_boolean(v) ? "on" : "off"));
        } else if (t == G_TYPE_INT64) {
            opts_add(opts, key, g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(v)));
        } else {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "Parameter '%s': qlite takes strings, numbers, booleans and objects here",
                        key);
            return false;
        }
    }
    return true;
}

static Opts *opts_parse_json(const char *text, GError **error)
{
    g_autoptr(Opts) opts = g_new0(Opts, 1);
    opts->items = g_array_new(FALSE, TRUE, sizeof(Opt));
    g_array_set_clear_func(opts->items, opt_clear);
    g_autoptr(JsonParser) p = json_parser_new_immutable();
    g_autoptr(GError) err = NULL;
    if (!json_parser_load_from_data(p, text, -1, &err)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "JSON parse error, %s", err->message);
        return NULL;
    }
    JsonNode *root = json_parser_get_root(p);
    if (!JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "a JSON object is expected");
        return NULL;
    }
    return opts_add_json(opts, "", json_node_get_object(root), error) ? g_steal_pointer(&opts)
                                                                      : NULL;
}

Opts *opts_parse(const char *text, const char *implied_key, GError **error)
{
    if (text[0] == '{') {
        return opts_parse_json(text, error);
    }
    g_autoptr(Opts) opts = g_new0(Opts, 1);
    opts->items = g_array_new(FALSE, TRUE, sizeof(Opt));
    g_array_set_clear_func(opts->items, opt_clear);

    const char *p = text;
    bool first = true;
    while (*p) {
        g_autofree char *key = read_token(&p, true);
        Opt o = {0};
        if (*p == '=') {
            p++;
            o.key = g_steal_pointer(&key);
            o.value = read_token(&p, false);
        } else if (first && implied_key) {
            o.key = g_strdup(implied_key);
            o.value = g_steal_pointer(&key);
        } else {
            /* QEMU treats a bare "flag" as "flag=on". */
            o.key = g_steal_pointer(&key);
            o.value = g_strdup("on");
        }
        if (!*o.key) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "empty parameter name in '%s'",
                        text);
            opt_clear(&o);
            return NULL;
        }
        g_array_append_val(opts->items, o);
        first = false;
        if (*p == ',') {
            p++;
        }
    }
    return g_steal_pointer(&opts);
}

const char *opts_get(Opts *opts, const char *key)
{
    const char *found = NULL;
    for (guint i = 0; i < opts->items->len; i++) {
        Opt *o = &g_array_index(opts->items, Opt, i);
        if (strcmp(o->key, key) == 0) {
            o->used = true;
            found = o->value; /* the last one wins, as in QEMU */
        }
    }
    return found;
}

GPtrArray *opts_get_all(Opts *opts, const char *key)
{
    GPtrArray *values = g_ptr_array_new();
    for (guint i = 0; i < opts->items->len; i++) {
        Opt *o = &g_array_index(opts->items, Opt, i);
        if (strcmp(o->key, key) == 0) {
            o->used = true;
            g_ptr_array_add(values, o->value);
        }
    }
    return values;
}

bool opts_get_bool(Opts *opts, const char *key, bool def, bool *out, GError **error)
{
    const char *v = opts_get(opts, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!parse_bool(v, out)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Parameter '%s' expects 'on' or 'off', not '%s'", key, v);
        return false;
    }
    return true;
}

bool opts_get_u64(Opts *opts, const char *key, uint64_t def, uint64_t *out, GError **error)
{
    const char *v = opts_get(opts, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!parse_u64(v, out)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Parameter '%s' expects a number, not '%s'", key, v);
        return false;
    }
    return true;
}

bool opts_get_size(Opts *opts, const char *key, uint64_t def, uint64_t *out, GError **error)
{
    const char *v = opts_get(opts, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!parse_size(v, 1, out)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Parameter '%s' expects a size, not '%s'", key, v);
        return false;
    }
    return true;
}

bool opts_check_unused(Opts *opts, GError **error)
{
    for (guint i = 0; i < opts->items->len; i++) {
        Opt *o = &g_array_index(opts->items, Opt, i);
        if (!o->used) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Invalid parameter '%s'", o->key);
            return false;
        }
    }
    return true;
}

bool parse_u64(const char *text, uint64_t *out)
{
    if (!text || !*text || *text == '-' || *text == '+' || g_ascii_isspace(*text)) {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 0);
    if (errno || *end) {
        return false;
    }
    *out = v;
    return true;
}

bool parse_size(const char *text, uint64_t default_unit, uint64_t *out)
{
    if (!text || !g_ascii_isdigit(*text)) {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno) {
        return false;
    }
    uint64_t unit = default_unit;
    if (*end) {
        switch (g_ascii_toupper(*end)) {
        case 'B':
            unit = 1;
            break;
        case 'K':
            unit = 1ULL << 10;
            break;
        case 'M':
            unit = 1ULL << 20;
            break;
        case 'G':
            unit = 1ULL << 30;
            break;
        case 'T':
            unit = 1ULL << 40;
            break;
        default:
            return false;
        }
        end++;
        if (*end) {
            return false;
        }
    }
    if (v && unit > UINT64_MAX / v) {
        return false;
    }
    *out = v * unit;
    return true;
}

bool parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"on", "yes", "true", "y"};
    static const char *const no[] = {"off", "no", "false", "n"};
    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (strcmp(text, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(text, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}
