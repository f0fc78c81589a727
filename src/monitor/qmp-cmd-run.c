/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP commands about the VM as a whole: what it is and whether it runs
 * (query-version, -status, -name, -kvm, -cpus-fast), stop, cont,
 * system_reset, system_powerdown, quit, and human-monitor-command.
 */
#include "monitor/qmp-int.h"

#include <string.h>

#define QMP_VERSION_MAJOR 7 /* the QEMU release whose protocol we match */
#define QMP_VERSION_MINOR 2
#define QMP_VERSION_MICRO 0

JsonNode *qmp_cmd_query_version(QmpServer *s, JsonObject *args)
{
    JsonObject *q = json_object_new();
    json_object_set_int_member(q, "micro", QMP_VERSION_MICRO);
    json_object_set_int_member(q, "minor", QMP_VERSION_MINOR);
    json_object_set_int_member(q, "major", QMP_VERSION_MAJOR);
    JsonObject *v = json_object_new();
    json_object_set_object_member(v, "qemu", q);
    json_object_set_string_member(v, "package", "qlite " QLITE_VERSION);
    return qmp_return(qmp_object_node(v));
}

JsonNode *qmp_cmd_query_status(QmpServer *s, JsonObject *args)
{
    const char *st = s->ops->status(s->opaque);
    /* QEMU's member order. */
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "status", st);
    json_object_set_boolean_member(o, "singlestep", FALSE);
    json_object_set_boolean_member(o, "running", strcmp(st, "running") == 0);
    return qmp_return(qmp_object_node(o));
}

JsonNode *qmp_cmd_query_name(QmpServer *s, JsonObject *args)
{
    JsonObject *o = json_object_new();
    const char *name = s->ops->name(s->opaque);
    if (name) {
        json_object_set_string_member(o, "name", name);
    }
    return qmp_return(qmp_object_node(o));
}

JsonNode *qmp_cmd_query_kvm(QmpServer *s, JsonObject *args)
{
    /* present: built with KVM support, which qlite always is; enabled: in use. */
    JsonObject *o = json_object_new();
    json_object_set_boolean_member(o, "enabled", !s->ops->kvm || s->ops->kvm(s->opaque));
    json_object_set_boolean_member(o, "present", TRUE);
    return qmp_return(qmp_object_node(o));
}

JsonNode *qmp_cmd_query_cpus_fast(QmpServer *s, JsonObject *args)
{
    QmpCpuInfo cpus[256];
    unsigned n = MIN(s->ops->cpus(s->opaque, cpus, G_N_ELEMENTS(cpus)), G_N_ELEMENTS(cpus));
    JsonArray *a = json_array_new();
    for (unsigned i = 0; i < n; i++) {
        JsonObject *props = json_object_new();
        json_object_set_int_member(props, "core-id", cpus[i].index);
        json_object_set_int_member(props, "thread-id", 0);
        json_object_set_int_member(props, "socket-id", 0);
        JsonObject *o = json_object_new(); /* QEMU's member order */
        json_object_set_int_member(o, "thread-id", cpus[i].thread_id);
        json_object_set_object_member(o, "props", props);
        g_autofree char *path = g_strdup_printf("/machine/unattached/device[%u]", cpus[i].index);
        json_object_set_string_member(o, "qom-path", path);
        json_object_set_int_member(o, "cpu-index", cpus[i].index);
        json_object_set_string_member(o, "target", "x86_64");
        json_array_add_object_element(a, o);
    }
    return qmp_return(qmp_array_node(a));
}

JsonNode *qmp_cmd_stop(QmpServer *s, JsonObject *args)
{
    s->ops->stop(s->opaque);
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_cont(QmpServer *s, JsonObject *args)
{
    g_autoptr(GError) err = NULL;
    if (!s->ops->cont(s->opaque, &err)) {
        return qmp_error("GenericError", "%s", err->message);
    }
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_system_reset(QmpServer *s, JsonObject *args)
{
    s->ops->system_reset(s->opaque);
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_system_powerdown(QmpServer *s, JsonObject *args)
{
    s->ops->system_powerdown(s->opaque);
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_quit(QmpServer *s, JsonObject *args)
{
    s->ops->quit(s->opaque);
    return qmp_return(NULL);
}

static JsonNode *string_return(const char *text)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(n, text);
    return qmp_return(n);
}

/*
 * The human monitor, the few commands managers send through QMP; output as
 * QEMU's, CRLF line ends. Anything else gets QEMU's "unknown command" text.
 */
JsonNode *qmp_cmd_hmp(QmpServer *s, JsonObject *args)
{
    g_autofree char *line =
        g_strstrip(g_strdup(json_object_get_string_member(args, "command-line")));
    if (!*line) {
        return string_return("");
    }
    if (strcmp(line, "info status") == 0) {
        const char *st = s->ops->status(s->opaque);
        g_autofree char *text = g_strdup_printf(
            "VM status: %s%s%s%s\r\n", strcmp(st, "running") == 0 ? "running" : "paused",
            strcmp(st, "running") && strcmp(st, "paused") ? " (" : "",
            strcmp(st, "running") && strcmp(st, "paused") ? st : "",
            strcmp(st, "running") && strcmp(st, "paused") ? ")" : "");
        return string_return(text);
    }
    if (strcmp(line, "info version") == 0) {
        g_autofree char *text =
            g_strdup_printf("%d.%d.%d%s\r\n", QMP_VERSION_MAJOR, QMP_VERSION_MINOR,
                            QMP_VERSION_MICRO, "qlite " QLITE_VERSION);
        return string_return(text);
    }
    if (strcmp(line, "stop") == 0) {
        s->ops->stop(s->opaque);
    } else if (strcmp(line, "cont") == 0 || strcmp(line, "c") == 0) {
        g_autoptr(GError) err = NULL;
        if (!s->ops->cont(s->opaque, &err)) {
            g_autofree char *text = g_strdup_printf("Error: %s\r\n", err->message);
            return string_return(text);
        }
    } else if (strcmp(line, "system_reset") == 0) {
        s->ops->system_reset(s->opaque);
    } else if (strcmp(line, "system_powerdown") == 0) {
        s->ops->system_powerdown(s->opaque);
    } else if (strcmp(line, "quit") == 0 || strcmp(line, "q") == 0) {
        s->ops->quit(s->opaque);
    } else {
        g_autofree char *text = g_strdup_printf("unknown command: '%s'\r\n", line);
        return string_return(text);
    }
    return string_return("");
}
