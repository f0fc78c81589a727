/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A request, from its text to its reply: parsing, the request's shape, the
 * command table and its argument checks, capabilities negotiation, the id
 * echoed in the reply.
 */
#include "monitor/qmp-int.h"

#include <string.h>

typedef JsonNode *(*QmpHandler)(QmpServer *s, JsonObject *args);

typedef struct {
    const char *name;
    QmpHandler fn;
    const char *const *params;   /* accepted argument names, NULL-terminated */
    const char *const *required; /* those that must be there, of type string */
} QmpCommand;

static JsonNode *cmd_query_commands(QmpServer *s, JsonObject *args);

static const char *const no_params[] = {NULL};
static const char *const hmp_params[] = {"command-line", "cpu-index", NULL};
static const char *const hmp_required[] = {"command-line", NULL};
static const char *const id_param[] = {"id", NULL};
static const char *const uri_param[] = {"uri", NULL};
static const char *const migrate_params[] = {"uri", "blk", "inc", "detach", "resume", NULL};
static const char *const caps_param[] = {"capabilities", NULL};
static const char *const fdname_param[] = {"fdname", NULL};
static const char *const mig_parameters[] = {"downtime-limit", "max-bandwidth", NULL};

static const QmpCommand qmp_commands[] = {
    {"qmp_capabilities", NULL, (const char *const[]){"enable", NULL}, no_params},
    {"query-version", qmp_cmd_query_version, no_params, no_params},
    {"query-commands", cmd_query_commands, no_params, no_params},
    {"query-status", qmp_cmd_query_status, no_params, no_params},
    {"query-name", qmp_cmd_query_name, no_params, no_params},
    {"query-kvm", qmp_cmd_query_kvm, no_params, no_params},
    {"query-cpus-fast", qmp_cmd_query_cpus_fast, no_params, no_params},
    {"query-block", qmp_cmd_query_block, no_params, no_params},
    {"device_del", qmp_cmd_device_del, id_param, id_param},
    {"stop", qmp_cmd_stop, no_params, no_params},
    {"cont", qmp_cmd_cont, no_params, no_params},
    {"system_reset", qmp_cmd_system_reset, no_params, no_params},
    {"system_powerdown", qmp_cmd_system_powerdown, no_params, no_params},
    {"quit", qmp_cmd_quit, no_params, no_params},
    {"human-monitor-command", qmp_cmd_hmp, hmp_params, hmp_required},
    {"getfd", qmp_cmd_getfd, fdname_param, fdname_param},
    {"closefd", qmp_cmd_closefd, fdname_param, fdname_param},
    {"migrate", qmp_cmd_migrate, migrate_params, uri_param},
    {"migrate-incoming", qmp_cmd_migrate_incoming, uri_param, uri_param},
    {"migrate_cancel", qmp_cmd_migrate_cancel, no_params, no_params},
    {"query-migrate", qmp_cmd_query_migrate, no_params, no_params},
    {"migrate-set-capabilities", qmp_cmd_migrate_set_capabilities, caps_param, no_params},
    {"query-migrate-capabilities", qmp_cmd_query_migrate_capabilities, no_params, no_params},
    {"migrate-set-parameters", qmp_cmd_migrate_set_parameters, mig_parameters, no_params},
    {"query-migrate-parameters", qmp_cmd_query_migrate_parameters, no_params, no_params},
};

static JsonNode *cmd_query_commands(QmpServer *s, JsonObject *args)
{
    JsonArray *a = json_array_new();
    for (size_t i = 0; i < G_N_ELEMENTS(qmp_commands); i++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", qmp_commands[i].name);
        json_array_add_object_element(a, o);
    }
    JsonNode *n = json_node_alloc();
    json_node_take_array(json_node_init(n, JSON_NODE_ARRAY), a);
    return qmp_return(n);
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

static bool param_known(const QmpCommand *c, const char *name)
{
    for (const char *const *p = c->params; *p; p++) {
        if (strcmp(*p, name) == 0) {
            return true;
        }
    }
    return false;
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
    /* As QEMU: a missing argument is reported before an unexpected one. */
    for (const char *const *r = cmd->required; *r; r++) {
        JsonNode *v = args ? json_object_get_member(args, *r) : NULL;
        if (!v) {
            return qmp_error("GenericError", "Parameter '%s' is missing", *r);
        }
        if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING) {
            return qmp_error("GenericError", "Invalid parameter type for '%s', expected: string",
                             *r);
        }
    }
    if (args) {
        g_autoptr(GList) keys = json_object_get_members(args);
        for (GList *k = keys; k; k = k->next) {
            if (!param_known(cmd, k->data)) {
                return qmp_error("GenericError", "Parameter '%s' is unexpected",
                                 (const char *)k->data);
            }
        }
    }
    if (!cmd->fn) { /* qmp_capabilities */
        JsonNode *enable = args ? json_object_get_member(args, "enable") : NULL;
        if (enable && !JSON_NODE_HOLDS_ARRAY(enable)) {
            return qmp_error("GenericError",
                             "Invalid parameter type for 'enable', expected: array");
        }
        for (guint i = 0; enable && i < json_array_get_length(json_node_get_array(enable)); i++) {
            JsonNode *cap = json_array_get_element(json_node_get_array(enable), i);
            if (!JSON_NODE_HOLDS_VALUE(cap) || json_node_get_value_type(cap) != G_TYPE_STRING ||
                strcmp(json_node_get_string(cap), "oob") != 0) {
                /* QEMU's message names 'null', not 'enable'. */
                return qmp_error("GenericError", "Parameter 'null' does not accept value '%s'",
                                 JSON_NODE_HOLDS_VALUE(cap) &&
                                         json_node_get_value_type(cap) == G_TYPE_STRING
                                     ? json_node_get_string(cap)
                                     : "");
            }
        }
        if (c->negotiated) {
            return qmp_error("CommandNotFound",
                             "Capabilities negotiation is already complete, command ignored");
        }
        c->negotiated = true;
        c->oob = enable && json_array_get_length(json_node_get_array(enable)) > 0;
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
