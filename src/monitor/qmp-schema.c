/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The monitor's description (qmp-schema.json): argument checks as QEMU's
 * QObject input visitor makes them, and introspection as QEMU answers
 * query-qmp-schema (type names other than builtins masked as numbers).
 */
#include "monitor/qmp-schema.h"

#include "monitor/qmp-int.h"

#include <string.h>

typedef struct {
    JsonParser *parser;
    JsonObject *commands;
    JsonObject *events;
    JsonObject *types;
    JsonObject *qom_types;
    JsonObject *cmdline_options;
} Schema;

static gpointer schema_load(gpointer unused)
{
    Schema *s = g_new0(Schema, 1);
    s->parser = json_parser_new_immutable();
    g_autoptr(GError) err = NULL;
    if (!json_parser_load_from_data(s->parser, qmp_schema_json, -1, &err)) {
        g_error("qmp-schema.json: %s", err->message); /* checked at build time */
    }
    JsonObject *root = json_node_get_object(json_parser_get_root(s->parser));
    s->commands = json_object_get_object_member(root, "commands");
    s->events = json_object_get_object_member(root, "events");
    s->types = json_object_get_object_member(root, "types");
    s->qom_types = json_object_get_object_member(root, "qom-types");
    s->cmdline_options = json_object_get_object_member(root, "command-line-options");
    return s;
}

static const Schema *schema(void)
{
    static GOnce once = G_ONCE_INIT;
    return g_once(&once, schema_load, NULL);
}

bool qmp_schema_has_command(const char *name)
{
    return json_object_has_member(schema()->commands, name);
}

GList *qmp_schema_commands(void)
{
    return json_object_get_members(schema()->commands);
}

JsonObject *qmp_schema_cmdline_options(void)
{
    return schema()->cmdline_options;
}

JsonObject *qmp_schema_qom_type(const char *name)
{
    JsonObject *types = schema()->qom_types;
    return json_object_has_member(types, name) ? json_object_get_object_member(types, name) : NULL;
}

GList *qmp_schema_qom_types(void)
{
    return json_object_get_members(schema()->qom_types);
}

bool qmp_schema_qom_is_a(const char *type, const char *name)
{
    for (JsonObject *t = qmp_schema_qom_type(type); t;) {
        if (strcmp(type, name) == 0) {
            return true;
        }
        type =
            json_object_has_member(t, "parent") ? json_object_get_string_member(t, "parent") : NULL;
        t = type ? qmp_schema_qom_type(type) : NULL;
    }
    return false;
}

/* ---- argument checks ---- */

typedef enum { B_NONE, B_STR, B_INT, B_UINT64, B_SIZE, B_BOOL, B_NUMBER, B_ANY } Builtin;

static const struct {
    const char *name;
    Builtin b;
    const char *json_type;
} builtins[] = {
    {"str", B_STR, "string"}, {"int", B_INT, "int"},       {"uint64", B_UINT64, "int"},
    {"size", B_SIZE, "int"},  {"bool", B_BOOL, "boolean"}, {"number", B_NUMBER, "number"},
    {"any", B_ANY, "value"},
};

static Builtin builtin(const char *type)
{
    for (size_t i = 0; i < G_N_ELEMENTS(builtins); i++) {
        if (strcmp(builtins[i].name, type) == 0) {
            return builtins[i].b;
        }
    }
    return B_NONE;
}

static bool holds(JsonNode *v, GType t)
{
    return JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == t;
}

static JsonNode *wrong_type(const char *full, const char *expected)
{
    return qmp_error("GenericError", "Invalid parameter type for '%s', expected: %s", full,
                     expected);
}

static JsonNode *check_members(JsonObject *spec, JsonObject *value, const char *prefix);

/*
 * full: the value's name as QEMU's messages give it ("caps[0].state");
 * leaf: its own member name (NULL in an array), which enum errors use.
 */
static JsonNode *check_value(JsonNode *spec, JsonNode *v, const char *full, const char *leaf)
{
    if (JSON_NODE_HOLDS_ARRAY(spec)) {
        if (!JSON_NODE_HOLDS_ARRAY(v)) {
            return wrong_type(full, "array");
        }
        JsonArray *a = json_node_get_array(v);
        JsonNode *elem = json_array_get_element(json_node_get_array(spec), 0);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            g_autofree char *name = g_strdup_printf("%s[%u]", full, i);
            JsonNode *err = check_value(elem, json_array_get_element(a, i), name, NULL);
            if (err) {
                return err;
            }
        }
        return NULL;
    }
    const char *type = json_node_get_string(spec);
    switch (builtin(type)) {
    case B_STR:
        return holds(v, G_TYPE_STRING) ? NULL : wrong_type(full, "string");
    case B_INT:
        return holds(v, G_TYPE_INT64) ? NULL : wrong_type(full, "integer");
    case B_UINT64:
    case B_SIZE:
        /* As QEMU: negative integers pass, for compatibility. */
        return holds(v, G_TYPE_INT64)
                   ? NULL
                   : qmp_error("GenericError", "Parameter '%s' expects %s", full, type);
    case B_BOOL:
        return holds(v, G_TYPE_BOOLEAN) ? NULL : wrong_type(full, "boolean");
    case B_NUMBER:
        return holds(v, G_TYPE_INT64) || holds(v, G_TYPE_DOUBLE) ? NULL
                                                                 : wrong_type(full, "number");
    case B_ANY:
        return NULL;
    case B_NONE:
        break;
    }
    JsonObject *def = json_object_get_object_member(schema()->types, type);
    if (json_object_has_member(def, "alternate")) {
        JsonObject *alt = json_object_get_object_member(def, "alternate");
        g_autoptr(GList) branches = json_object_get_members(alt);
        for (GList *b = branches; b; b = b->next) {
            JsonNode *err = check_value(json_object_get_member(alt, b->data), v, full, leaf);
            if (!err) {
                return NULL;
            }
            json_node_unref(err);
        }
        return wrong_type(full, type);
    }
    if (json_object_has_member(def, "enum")) {
        if (!holds(v, G_TYPE_STRING)) {
            return wrong_type(full, "string");
        }
        JsonArray *values = json_object_get_array_member(def, "enum");
        const char *s = json_node_get_string(v);
        for (guint i = 0; i < json_array_get_length(values); i++) {
            if (strcmp(json_array_get_string_element(values, i), s) == 0) {
                return NULL;
            }
        }
        return qmp_error("GenericError", "Parameter '%s' does not accept value '%s'",
                         leaf ? leaf : "null", s);
    }
    if (!JSON_NODE_HOLDS_OBJECT(v)) {
        return wrong_type(full, "object");
    }
    return check_members(json_object_get_object_member(def, "data"), json_node_get_object(v), full);
}

/* Members in the description's order, then anything the value has beyond them. */
static JsonNode *check_members(JsonObject *spec, JsonObject *value, const char *prefix)
{
    g_autoptr(GList) names = json_object_get_members(spec);
    for (GList *n = names; n; n = n->next) {
        const char *key = n->data;
        bool optional = key[0] == '*';
        const char *name = optional ? key + 1 : key;
        g_autofree char *full = *prefix ? g_strdup_printf("%s.%s", prefix, name) : g_strdup(name);
        JsonNode *v = json_object_get_member(value, name);
        if (!v) {
            if (optional) {
                continue;
            }
            return qmp_error("GenericError", "Parameter '%s' is missing", full);
        }
        JsonNode *err = check_value(json_object_get_member(spec, key), v, full, name);
        if (err) {
            return err;
        }
    }
    g_autoptr(GList) keys = json_object_get_members(value);
    for (GList *k = keys; k; k = k->next) {
        g_autofree char *opt = g_strconcat("*", k->data, NULL);
        if (!json_object_has_member(spec, k->data) && !json_object_has_member(spec, opt)) {
            g_autofree char *full =
                *prefix ? g_strdup_printf("%s.%s", prefix, (char *)k->data) : g_strdup(k->data);
            return qmp_error("GenericError", "Parameter '%s' is unexpected", full);
        }
    }
    return NULL;
}

JsonNode *qmp_schema_check_args(const char *command, JsonObject *args)
{
    JsonObject *cmd = json_object_get_object_member(schema()->commands, command);
    g_autoptr(JsonObject) none = json_object_new();
    JsonObject *spec =
        json_object_has_member(cmd, "data") ? json_object_get_object_member(cmd, "data") : none;
    return check_members(spec, args, "");
}

/* ---- introspection ---- */

typedef struct {
    GHashTable *masked; /* type name -> its number, or "[N]" for arrays */
    GQueue pending;     /* names whose entity is still to be written */
    JsonArray *out;
} Introspect;

static const char *type_ref(Introspect *in, JsonNode *spec);

static const char *name_ref(Introspect *in, const char *type)
{
    const char *m = g_hash_table_lookup(in->masked, type);
    if (m) {
        return m;
    }
    char *mask = builtin(type) != B_NONE ? g_strdup(type)
                                         : g_strdup_printf("%u", g_hash_table_size(in->masked));
    g_hash_table_insert(in->masked, g_strdup(type), mask);
    g_queue_push_tail(&in->pending, g_strdup(type));
    return mask;
}

static const char *type_ref(Introspect *in, JsonNode *spec)
{
    if (!JSON_NODE_HOLDS_ARRAY(spec)) {
        return name_ref(in, json_node_get_string(spec));
    }
    const char *elem = type_ref(in, json_array_get_element(json_node_get_array(spec), 0));
    g_autofree char *key =
        g_strdup_printf("[%s]", json_array_get_string_element(json_node_get_array(spec), 0));
    const char *m = g_hash_table_lookup(in->masked, key);
    if (m) {
        return m;
    }
    char *mask = g_strdup_printf("[%s]", elem);
    g_hash_table_insert(in->masked, g_strdup(key), mask);
    g_queue_push_tail(&in->pending, g_strdup(key));
    return mask;
}

/* The object type of a command's or event's data: "0", the empty object, when none. */
static const char *data_ref(Introspect *in, JsonObject *body, const char *owner)
{
    if (!json_object_has_member(body, "data")) {
        return name_ref(in, "");
    }
    g_autofree char *key = g_strconcat(":", owner, NULL); /* an implicit type */
    return name_ref(in, key);
}

static JsonArray *member_list(Introspect *in, JsonObject *data)
{
    JsonArray *members = json_array_new();
    g_autoptr(GList) names = data ? json_object_get_members(data) : NULL;
    for (GList *n = names; n; n = n->next) {
        const char *key = n->data;
        JsonObject *m = json_object_new();
        json_object_set_string_member(m, "name", key[0] == '*' ? key + 1 : key);
        if (key[0] == '*') {
            json_object_set_null_member(m, "default");
        }
        json_object_set_string_member(m, "type", type_ref(in, json_object_get_member(data, key)));
        json_array_add_object_element(members, m);
    }
    return members;
}

/* An entity starts with its name; its meta-type follows its own members, as in QEMU. */
static JsonObject *entity_new(const char *name)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "name", name);
    return o;
}

static void entity(Introspect *in, const char *meta, JsonObject *o)
{
    json_object_set_string_member(o, "meta-type", meta);
    json_array_add_object_element(in->out, o);
}

static JsonObject *implicit_data(const char *key)
{
    const Schema *s = schema();
    JsonObject *owner = json_object_has_member(s->commands, key + 1)
                            ? json_object_get_object_member(s->commands, key + 1)
                            : json_object_get_object_member(s->events, key + 1);
    return json_object_get_object_member(owner, "data");
}

static void type_entity(Introspect *in, const char *type)
{
    const char *masked = g_hash_table_lookup(in->masked, type);
    JsonObject *o = entity_new(masked);
    Builtin b = builtin(type);
    if (b != B_NONE) {
        for (size_t i = 0; i < G_N_ELEMENTS(builtins); i++) {
            if (builtins[i].b == b) {
                json_object_set_string_member(o, "json-type", builtins[i].json_type);
            }
        }
        entity(in, "builtin", o);
        return;
    }
    if (type[0] == '[') {
        /* masked is "[N]": its element is N */
        g_autofree char *elem = g_strndup(masked + 1, strlen(masked) - 2);
        json_object_set_string_member(o, "element-type", elem);
        entity(in, "array", o);
        return;
    }
    if (type[0] == '\0' || type[0] == ':') {
        json_object_set_array_member(o, "members",
                                     member_list(in, type[0] ? implicit_data(type) : NULL));
        entity(in, "object", o);
        return;
    }
    JsonObject *def = json_object_get_object_member(schema()->types, type);
    if (json_object_has_member(def, "enum")) {
        JsonArray *values = json_object_get_array_member(def, "enum");
        JsonArray *members = json_array_new();
        for (guint i = 0; i < json_array_get_length(values); i++) {
            JsonObject *m = json_object_new();
            json_object_set_string_member(m, "name", json_array_get_string_element(values, i));
            json_array_add_object_element(members, m);
        }
        json_object_set_array_member(o, "members", members);
        entity(in, "enum", o);
        json_object_set_array_member(o, "values", json_array_ref(values));
        return;
    }
    if (json_object_has_member(def, "alternate")) {
        /* QEMU lists an alternate's branches by type only. */
        JsonObject *alt = json_object_get_object_member(def, "alternate");
        JsonArray *members = json_array_new();
        g_autoptr(GList) branches = json_object_get_members(alt);
        for (GList *br = branches; br; br = br->next) {
            JsonObject *m = json_object_new();
            json_object_set_string_member(m, "type",
                                          type_ref(in, json_object_get_member(alt, br->data)));
            json_array_add_object_element(members, m);
        }
        json_object_set_array_member(o, "members", members);
        entity(in, "alternate", o);
        return;
    }
    json_object_set_array_member(o, "members",
                                 member_list(in, json_object_get_object_member(def, "data")));
    entity(in, "object", o);
}

JsonNode *qmp_schema_introspect(void)
{
    const Schema *s = schema();
    Introspect in = {.masked = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
                     .out = json_array_new()};
    g_queue_init(&in.pending);
    name_ref(&in, ""); /* "0": the empty object, as in QEMU */
    g_autoptr(GList) cmds = json_object_get_members(s->commands);
    for (GList *c = cmds; c; c = c->next) {
        JsonObject *body = json_object_get_object_member(s->commands, c->data);
        JsonObject *o = entity_new(c->data);
        const char *arg = data_ref(&in, body, c->data);
        json_object_set_string_member(o, "ret-type",
                                      json_object_has_member(body, "returns")
                                          ? type_ref(&in, json_object_get_member(body, "returns"))
                                          : name_ref(&in, ""));
        entity(&in, "command", o);
        json_object_set_string_member(o, "arg-type", arg);
    }
    g_autoptr(GList) events = json_object_get_members(s->events);
    for (GList *e = events; e; e = e->next) {
        JsonObject *body = json_object_get_object_member(s->events, e->data);
        JsonObject *o = entity_new(e->data);
        entity(&in, "event", o);
        json_object_set_string_member(o, "arg-type", data_ref(&in, body, e->data));
    }
    char *type;
    while ((type = g_queue_pop_head(&in.pending))) {
        type_entity(&in, type);
        g_free(type);
    }
    g_hash_table_destroy(in.masked);
    return qmp_array_node(in.out);
}
