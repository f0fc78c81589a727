/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A request, from its text to its reply: parsing, the request's shape, the
 * command table and its argument checks, capabilities negotiation, the id
 * echoed in the reply.
 */
#include "monitor/qmp-int.h"
#include "monitor/qmp-schema.h"

#include <gio/gio.h>

#include <string.h>

typedef JsonNode *(*QmpHandler)(QmpServer *s, JsonObject *args);

/* The handlers of the commands qmp-schema.json describes (checked both ways at start). */
typedef struct {
    const char *name;
    QmpHandler fn;
} QmpCommand;

static JsonNode *cmd_query_commands(QmpServer *s, JsonObject *args);
static JsonNode *cmd_query_qmp_schema(QmpServer *s, JsonObject *args);

static const QmpCommand qmp_commands[] = {
    {"qmp_capabilities", NULL},
    {"query-version", qmp_cmd_query_version},
    {"query-commands", cmd_query_commands},
    {"query-qmp-schema", cmd_query_qmp_schema},
    {"query-target", qmp_cmd_query_target},
    {"query-machines", qmp_cmd_query_machines},
    {"query-cpu-definitions", qmp_cmd_query_cpu_definitions},
    {"query-command-line-options", qmp_cmd_query_command_line_options},
    {"qom-list-types", qmp_cmd_qom_list_types},
    {"device-list-properties", qmp_cmd_device_list_properties},
    {"qom-list-properties", qmp_cmd_qom_list_properties},
    {"query-status", qmp_cmd_query_status},
    {"query-name", qmp_cmd_query_name},
    {"query-kvm", qmp_cmd_query_kvm},
    {"query-cpus-fast", qmp_cmd_query_cpus_fast},
    {"query-block", qmp_cmd_query_block},
    {"query-chardev", qmp_cmd_query_chardev},
    {"query-named-block-nodes", qmp_cmd_query_named_block_nodes},
    {"query-blockstats", qmp_cmd_query_blockstats},
    {"query-stats", qmp_cmd_query_stats},
    {"query-stats-schemas", qmp_cmd_query_stats_schemas},
    {"qom-list", qmp_cmd_qom_list},
    {"qom-get", qmp_cmd_qom_get},
    {"device_del", qmp_cmd_device_del},
    {"stop", qmp_cmd_stop},
    {"cont", qmp_cmd_cont},
    {"system_reset", qmp_cmd_system_reset},
    {"system_powerdown", qmp_cmd_system_powerdown},
    {"quit", qmp_cmd_quit},
    {"human-monitor-command", qmp_cmd_hmp},
    {"getfd", qmp_cmd_getfd},
    {"closefd", qmp_cmd_closefd},
    {"migrate", qmp_cmd_migrate},
    {"migrate-incoming", qmp_cmd_migrate_incoming},
    {"migrate_cancel", qmp_cmd_migrate_cancel},
    {"query-migrate", qmp_cmd_query_migrate},
    {"migrate-set-capabilities", qmp_cmd_migrate_set_capabilities},
    {"query-migrate-capabilities", qmp_cmd_query_migrate_capabilities},
    {"migrate-set-parameters", qmp_cmd_migrate_set_parameters},
    {"query-migrate-parameters", qmp_cmd_query_migrate_parameters},
};

static JsonNode *cmd_query_commands(QmpServer *s, JsonObject *args)
{
    JsonArray *a = json_array_new();
    g_autoptr(GList) names = qmp_schema_commands();
    for (GList *n = names; n; n = n->next) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", n->data);
        json_array_add_object_element(a, o);
    }
    return qmp_return(qmp_array_node(a));
}

static JsonNode *cmd_query_qmp_schema(QmpServer *s, JsonObject *args)
{
    return qmp_return(qmp_schema_introspect());
}

static const QmpCommand *find_command(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(qmp_commands); i++) {
        if (strcmp(qmp_commands[i].name, name) == 0) {
            return &qmp_commands[i];
        }
    }
    return NULL;
}

bool qmp_dispatch_check_schema(GError **error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(qmp_commands); i++) {
        if (!qmp_schema_has_command(qmp_commands[i].name)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "QMP command %s has a handler but is not in qmp-schema.json",
                        qmp_commands[i].name);
            return false;
        }
    }
    g_autoptr(GList) names = qmp_schema_commands();
    for (GList *n = names; n; n = n->next) {
        if (!find_command(n->data)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "QMP command %s is in qmp-schema.json but has no handler",
                        (const char *)n->data);
            return false;
        }
    }
    return true;
}

/* Checks the request's shape and runs it; returns the reply without the id. */
static JsonNode *dispatch(QmpClient *c, JsonObject *req)
{
    static const char *const members[] = {"execute", "arguments", "id", "exec-oob"};
    g_autoptr(GList) names = json_object_get_members(req);
    for (GList *m = names; m; m = m->next) {
        bool known = false;
        for (size_t i = 0; i < G_N_ELEMENTS(members); i++) {
            known |= strcmp(m->data, members[i]) == 0;
        }
        if (!known) {
            return qmp_error("GenericError", "QMP input member '%s' is unexpected",
                             (const char *)m->data);
        }
    }
    JsonNode *exec = json_object_get_member(req, "execute");
    JsonNode *oob = json_object_get_member(req, "exec-oob");
    if (!exec && oob && c->oob && JSON_NODE_HOLDS_VALUE(oob) &&
        json_node_get_value_type(oob) == G_TYPE_STRING) {
        /* No command of ours runs out of band. */
        return qmp_error("GenericError", "The command %s does not support OOB",
                         json_node_get_string(oob));
    }
    if (!exec) {
        return qmp_error("GenericError", "QMP input lacks member 'execute'");
    }
    if (!JSON_NODE_HOLDS_VALUE(exec) || json_node_get_value_type(exec) != G_TYPE_STRING) {
        return qmp_error("GenericError", "QMP input member 'execute' must be a string");
    }
    JsonNode *argn = json_object_get_member(req, "arguments");
    if (argn && !JSON_NODE_HOLDS_OBJECT(argn)) {
        return qmp_error("GenericError", "QMP input member 'arguments' must be an object");
    }
    const char *name = json_node_get_string(exec);
    const QmpCommand *cmd = find_command(name);
    if (!c->negotiated && (!cmd || cmd->fn)) {
        return qmp_error("CommandNotFound",
                         "Expecting capabilities negotiation with 'qmp_capabilities'");
    }
    if (!cmd) {
        return qmp_error("CommandNotFound", "The command %s has not been found", name);
    }
    /* No arguments reads as none given: every handler gets an object. */
    g_autoptr(JsonObject) none = argn ? NULL : json_object_new();
    JsonObject *args = argn ? json_node_get_object(argn) : none;
    JsonNode *bad = qmp_schema_check_args(name, args);
    if (bad) {
        return bad;
    }
    if (!cmd->fn) { /* qmp_capabilities */
        if (c->negotiated) {
            return qmp_error("CommandNotFound",
                             "Capabilities negotiation is already complete, command ignored");
        }
        c->negotiated = true;
        c->oob = json_object_has_member(args, "enable") &&
                 json_array_get_length(json_object_get_array_member(args, "enable")) > 0;
        return qmp_return(NULL);
    }
    c->l->s->cur = c;
    JsonNode *reply = cmd->fn(c->l->s, args);
    c->l->s->cur = NULL;
    return reply;
}

/*
 * json-glib keeps integers as int64; QEMU echoes ids up to 2^64 as sent. For
 * an unsigned integer id above INT64_MAX, find its digits in the request text
 * (the top-level "id" member) so the reply can carry them unchanged.
 */
static char *big_integer_id(const char *text, size_t len)
{
    unsigned depth = 0;
    char quote = 0;
    bool escape = false;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (quote) {
            if (escape) {
                escape = false;
            } else if (ch == '\\') {
                escape = true;
            } else if (ch == quote) {
                quote = 0;
            }
            continue;
        }
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            depth--;
        } else if (ch == '"' || ch == '\'') {
            bool key = depth == 1 && i + 4 <= len && text[i + 1] == 'i' && text[i + 2] == 'd' &&
                       text[i + 3] == ch;
            if (!key) {
                quote = ch;
                continue;
            }
            size_t j = i + 4;
            while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' ||
                               text[j] == '\n' || text[j] == ':')) {
                j++;
            }
            size_t k = j;
            while (k < len && g_ascii_isdigit(text[k])) {
                k++;
            }
            g_autofree char *digits = g_strndup(text + j, k - j);
            guint64 v;
            if (k > j && g_ascii_string_to_unsigned(digits, 10, 0, G_MAXUINT64, &v, NULL) &&
                v > G_MAXINT64) {
                return g_steal_pointer(&digits);
            }
            return NULL;
        }
    }
    return NULL;
}

/*
 * Whether text has a \u0000 escape (a backslash that is not itself escaped,
 * then u0000). json-glib turns it into a NUL that cuts the C string short:
 * "query-name\u0000-x" would run query-name. QEMU refuses it; so do we.
 */
static bool has_nul_escape(const char *text, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++) {
        if (text[i] != '\\') {
            continue;
        }
        if (text[i + 1] == 'u' && memcmp(text + i + 2, "0000", 4) == 0) {
            return true;
        }
        i++; /* the escaped character, a backslash included */
    }
    return false;
}

void qmp_client_handle_text(void *opaque, const char *text, size_t len, const char *refusal)
{
    QmpClient *c = opaque;
    if (c->closing) {
        return;
    }
    g_autoptr(JsonParser) p = json_parser_new_immutable();
    g_autoptr(GError) err = NULL;
    if (refusal) {
        g_autoptr(JsonNode) e = qmp_error("GenericError", "%s", refusal);
        qmp_client_write(c, e);
        return;
    }
    if (has_nul_escape(text, len)) {
        g_autoptr(JsonNode) e =
            qmp_error("GenericError", "JSON parse error, %s", "\\u0000 is not supported");
        qmp_client_write(c, e);
        return;
    }
    if (!json_parser_load_from_data(p, text, (gssize)len, &err)) {
        g_autoptr(JsonNode) e = qmp_error("GenericError", "JSON parse error, %s", err->message);
        qmp_client_write(c, e);
        return;
    }
    JsonNode *root = json_parser_get_root(p);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_autoptr(JsonNode) e = qmp_error("GenericError", "QMP input must be a JSON object");
        qmp_client_write(c, e);
        return;
    }
    JsonObject *req = json_node_get_object(root);
    g_autoptr(JsonNode) reply = dispatch(c, req);
    JsonNode *id = json_object_get_member(req, "id");
    JsonObject *r = json_node_get_object(reply);
    g_autofree char *big =
        id && JSON_NODE_HOLDS_VALUE(id) && json_node_get_value_type(id) == G_TYPE_INT64
            ? big_integer_id(text, len)
            : NULL;
    if (big) {
        /* Spliced as text: {"id": N, "error": ...} or {"return": ..., "id": N}. */
        bool error = json_object_has_member(r, "error");
        GString *out = g_string_new(NULL);
        qmp_json_append(out, reply);
        g_string_truncate(out, out->len - 1);
        g_autofree char *line = error ? g_strdup_printf("{\"id\": %s, %s}", big, out->str + 1)
                                      : g_strdup_printf("%s, \"id\": %s}", out->str, big);
        g_string_free(out, TRUE);
        g_string_append(c->out, line);
        g_string_append(c->out, "\r\n");
        qmp_client_flush(c);
        return;
    }
    if (id && json_object_has_member(r, "error")) {
        /* QEMU's member order: {"id": ..., "error": ...} but {"return": ..., "id": ...}. */
        JsonObject *o = json_object_new();
        json_object_set_member(o, "id", json_node_copy(id));
        json_object_set_member(o, "error", json_node_copy(json_object_get_member(r, "error")));
        g_autoptr(JsonNode) ordered = qmp_object_node(o);
        qmp_client_write(c, ordered);
        return;
    }
    if (id) {
        json_object_set_member(r, "id", json_node_copy(id));
    }
    qmp_client_write(c, reply);
}
