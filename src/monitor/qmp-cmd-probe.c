/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP commands a manager asks before it starts a VM, to learn what this
 * emulator is (libvirt's capability probe): query-target, query-machines,
 * query-cpu-definitions, query-command-line-options, qom-list-types,
 * device-list-properties and qom-list-properties. The QOM answers come from
 * the description's "qom-types" (qmp-schema.json).
 */
#include "monitor/qmp-int.h"
#include "monitor/qmp-schema.h"

#include "machine/pc.h" /* PC_MACHINE_NAME, PC_MAX_CPUS: header only */

#include <string.h>

static JsonNode *array_reply(JsonArray *a)
{
    return qmp_return(qmp_array_node(a));
}

JsonNode *qmp_cmd_query_target(QmpServer *s, JsonObject *args)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "arch", "x86_64");
    return qmp_return(qmp_object_node(o));
}

/* QEMU's member order. */
static JsonObject *machine_info(const char *name, const char *alias, unsigned cpu_max)
{
    JsonObject *o = json_object_new();
    json_object_set_boolean_member(o, "hotpluggable-cpus", FALSE);
    json_object_set_string_member(o, "name", name);
    if (alias) {
        json_object_set_boolean_member(o, "is-default", TRUE);
    }
    json_object_set_boolean_member(o, "numa-mem-supported", FALSE);
    if (alias) {
        json_object_set_string_member(o, "default-cpu-type", "host-x86_64-cpu");
    }
    json_object_set_int_member(o, "cpu-max", cpu_max);
    json_object_set_boolean_member(o, "deprecated", FALSE);
    if (alias) {
        json_object_set_string_member(o, "alias", alias);
    }
    return o;
}

/* The PC qlite builds (an i440FX's place in QEMU's list), and "none" for a monitor alone. */
JsonNode *qmp_cmd_query_machines(QmpServer *s, JsonObject *args)
{
    JsonArray *a = json_array_new();
    json_array_add_object_element(a, machine_info(PC_MACHINE_NAME, "pc", PC_MAX_CPUS));
    json_array_add_object_element(a, machine_info("none", NULL, 1));
    return array_reply(a);
}

/* -cpu host is the one model: the host's CPU as KVM offers it. */
JsonNode *qmp_cmd_query_cpu_definitions(QmpServer *s, JsonObject *args)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "name", "host");
    json_object_set_string_member(o, "typename", "host-x86_64-cpu");
    json_object_set_array_member(o, "unavailable-features", json_array_new());
    json_object_set_boolean_member(o, "static", FALSE);
    json_object_set_boolean_member(o, "migration-safe", FALSE);
    json_object_set_boolean_member(o, "deprecated", FALSE);
    JsonArray *a = json_array_new();
    json_array_add_object_element(a, o);
    return array_reply(a);
}

static JsonObject *option_info(const char *name, JsonObject *params)
{
    JsonArray *list = json_array_new();
    g_autoptr(GList) names = json_object_get_members(params);
    for (GList *n = names; n; n = n->next) {
        JsonObject *p = json_object_new();
        json_object_set_string_member(p, "name", n->data);
        json_object_set_string_member(p, "type", json_object_get_string_member(params, n->data));
        json_array_add_object_element(list, p);
    }
    JsonObject *o = json_object_new();
    json_object_set_array_member(o, "parameters", list);
    json_object_set_string_member(o, "option", name);
    return o;
}

/* The options the description lists with their parameters; another name is refused, as QEMU. */
JsonNode *qmp_cmd_query_command_line_options(QmpServer *s, JsonObject *args)
{
    JsonObject *options = qmp_schema_cmdline_options();
    const char *option = json_object_has_member(args, "option")
                             ? json_object_get_string_member(args, "option")
                             : NULL;
    if (option && !json_object_has_member(options, option)) {
        return qmp_error("GenericError", "invalid option name: %s", option);
    }
    JsonArray *a = json_array_new();
    g_autoptr(GList) names = json_object_get_members(options);
    for (GList *n = names; n; n = n->next) {
        if (!option || strcmp(option, n->data) == 0) {
            json_array_add_object_element(
                a, option_info(n->data, json_object_get_object_member(options, n->data)));
        }
    }
    return array_reply(a);
}

JsonNode *qmp_cmd_qom_list_types(QmpServer *s, JsonObject *args)
{
    const char *implements = json_object_has_member(args, "implements")
                                 ? json_object_get_string_member(args, "implements")
                                 : NULL;
    bool abstract = json_object_has_member(args, "abstract") &&
                    json_object_get_boolean_member(args, "abstract");
    JsonArray *a = json_array_new();
    g_autoptr(GList) names = qmp_schema_qom_types();
    for (GList *n = names; n; n = n->next) {
        JsonObject *t = qmp_schema_qom_type(n->data);
        bool is_abstract =
            json_object_has_member(t, "abstract") && json_object_get_boolean_member(t, "abstract");
        if ((is_abstract && !abstract) ||
            (implements && !qmp_schema_qom_is_a(n->data, implements))) {
            continue;
        }
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", n->data);
        if (is_abstract) {
            json_object_set_boolean_member(o, "abstract", TRUE);
        }
        if (json_object_has_member(t, "parent")) {
            json_object_set_string_member(o, "parent", json_object_get_string_member(t, "parent"));
        }
        json_array_add_object_element(a, o);
    }
    return array_reply(a);
}

/* The properties of type and its ancestors, the type's own first. */
static JsonArray *type_props(const char *type)
{
    JsonArray *a = json_array_new();
    for (JsonObject *t = qmp_schema_qom_type(type); t;) {
        JsonObject *props =
            json_object_has_member(t, "props") ? json_object_get_object_member(t, "props") : NULL;
        g_autoptr(GList) names = props ? json_object_get_members(props) : NULL;
        for (GList *p = names; p; p = p->next) {
            JsonNode *spec = json_object_get_member(props, p->data);
            JsonObject *o = json_object_new();
            json_object_set_string_member(o, "name", p->data);
            if (JSON_NODE_HOLDS_VALUE(spec)) {
                json_object_set_string_member(o, "type", json_node_get_string(spec));
            } else {
                JsonObject *d = json_node_get_object(spec);
                json_object_set_string_member(o, "type", json_object_get_string_member(d, "type"));
                if (json_object_has_member(d, "description")) {
                    json_object_set_string_member(o, "description",
                                                  json_object_get_string_member(d, "description"));
                }
                if (json_object_has_member(d, "default")) {
                    json_object_set_member(o, "default-value",
                                           json_node_copy(json_object_get_member(d, "default")));
                }
            }
            json_array_add_object_element(a, o);
        }
        const char *parent =
            json_object_has_member(t, "parent") ? json_object_get_string_member(t, "parent") : NULL;
        t = parent ? qmp_schema_qom_type(parent) : NULL;
    }
    return a;
}

JsonNode *qmp_cmd_device_list_properties(QmpServer *s, JsonObject *args)
{
    const char *name = json_object_get_string_member(args, "typename");
    JsonObject *t = qmp_schema_qom_type(name);
    if (!t) {
        return qmp_error("DeviceNotFound", "Device '%s' not found", name);
    }
    if (!qmp_schema_qom_is_a(name, "device") ||
        (json_object_has_member(t, "abstract") && json_object_get_boolean_member(t, "abstract"))) {
        return qmp_error("GenericError", "Parameter 'typename' expects a non-abstract device type");
    }
    return array_reply(type_props(name));
}

/*
 * For a type qlite does not have, QEMU answers DeviceNotFound; libvirt 9.0
 * asks for memory-backend-file whatever qom-list-types said and reads a
 * NULL list on that error (the daemon crashes). So: no properties, an
 * empty list; qom-list-types and device-list-properties still say the type
 * is not there.
 */
JsonNode *qmp_cmd_qom_list_properties(QmpServer *s, JsonObject *args)
{
    const char *name = json_object_get_string_member(args, "typename");
    if (!qmp_schema_qom_type(name)) {
        return array_reply(json_array_new());
    }
    JsonArray *a = type_props(name);
    JsonObject *type = json_object_new(); /* every object has it, as in QEMU */
    json_object_set_string_member(type, "name", "type");
    json_object_set_string_member(type, "type", "string");
    json_array_add_object_element(a, type);
    return array_reply(a);
}
