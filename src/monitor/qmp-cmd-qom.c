/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qom-list and qom-get over the part of QEMU's QOM tree a manager reads:
 * /machine (its type), /machine/peripheral with a child per device given an
 * id (libvirt lists it after start and after each reset), and the vCPUs at
 * /machine/unattached/device[N]. Every object has "type"; devices and vCPUs
 * also "realized" (true: qlite has no unrealized devices).
 */
#include "monitor/qmp-int.h"

#include <stdio.h>
#include <string.h>

#define QOM_MAX_PERIPHERALS 64

typedef struct {
    const char *type; /* NULL: no such object */
    bool device;      /* has "realized" */
} QomObject;

static unsigned cpu_count(QmpServer *s)
{
    QmpCpuInfo one[1];
    return s->ops->cpus(s->opaque, one, 0);
}

static QomObject qom_find(QmpServer *s, const char *path, QmpPeripheral *per, unsigned nper)
{
    if (strcmp(path, "/machine") == 0) {
        return (QomObject){.type = s->ops->machine_type(s->opaque)};
    }
    if (strcmp(path, "/machine/peripheral") == 0 || strcmp(path, "/machine/unattached") == 0 ||
        strcmp(path, "/machine/peripheral-anon") == 0) {
        return (QomObject){.type = "container"};
    }
    if (g_str_has_prefix(path, "/machine/peripheral/")) {
        for (unsigned i = 0; i < nper; i++) {
            if (strcmp(path + strlen("/machine/peripheral/"), per[i].id) == 0) {
                return (QomObject){.type = per[i].driver, .device = true};
            }
        }
    }
    unsigned cpu;
    char end;
    if (sscanf(path, "/machine/unattached/device[%u%c", &cpu, &end) == 2 && end == ']' &&
        strlen(path) == (size_t)snprintf(NULL, 0, "/machine/unattached/device[%u]", cpu) &&
        cpu < cpu_count(s)) {
        return (QomObject){.type = "host-x86_64-cpu", .device = true};
    }
    return (QomObject){0};
}

static void add_prop(JsonArray *a, const char *name, const char *type)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "name", name);
    json_object_set_string_member(o, "type", type);
    json_array_add_object_element(a, o);
}

/* What a qom command looks at: the object at its path and the peripherals read for it. */
typedef struct {
    QmpPeripheral per[QOM_MAX_PERIPHERALS];
    unsigned nper;
    QomObject obj;
} QomLookup;

/* Fills q for args' path; NULL, or the error reply. */
static JsonNode *qom_lookup(QmpServer *s, JsonObject *args, QomLookup *q)
{
    const char *path = json_object_get_string_member(args, "path");
    q->nper = MIN(s->ops->peripherals(s->opaque, q->per, QOM_MAX_PERIPHERALS), QOM_MAX_PERIPHERALS);
    q->obj = qom_find(s, path, q->per, q->nper);
    return q->obj.type ? NULL : qmp_error("DeviceNotFound", "Device '%s' not found", path);
}

JsonNode *qmp_cmd_qom_list(QmpServer *s, JsonObject *args)
{
    const char *path = json_object_get_string_member(args, "path");
    QomLookup q;
    JsonNode *err = qom_lookup(s, args, &q);
    if (err) {
        return err;
    }
    JsonArray *a = json_array_new();
    add_prop(a, "type", "string");
    if (q.obj.device) {
        add_prop(a, "realized", "bool");
    }
    if (strcmp(path, "/machine") == 0) {
        add_prop(a, "peripheral", "child<container>");
        add_prop(a, "peripheral-anon", "child<container>");
        add_prop(a, "unattached", "child<container>");
    } else if (strcmp(path, "/machine/peripheral") == 0) {
        for (unsigned i = 0; i < q.nper; i++) {
            g_autofree char *child = g_strdup_printf("child<%s>", q.per[i].driver);
            add_prop(a, q.per[i].id, child);
        }
    } else if (strcmp(path, "/machine/unattached") == 0) {
        for (unsigned i = 0; i < cpu_count(s); i++) {
            g_autofree char *name = g_strdup_printf("device[%u]", i);
            add_prop(a, name, "child<host-x86_64-cpu>");
        }
    }
    return qmp_return(qmp_array_node(a));
}

JsonNode *qmp_cmd_qom_get(QmpServer *s, JsonObject *args)
{
    const char *prop = json_object_get_string_member(args, "property");
    QomLookup q;
    JsonNode *err = qom_lookup(s, args, &q);
    if (err) {
        return err;
    }
    JsonNode *v = json_node_alloc();
    if (strcmp(prop, "type") == 0) {
        json_node_init_string(v, q.obj.type);
    } else if (q.obj.device && strcmp(prop, "realized") == 0) {
        json_node_init_boolean(v, TRUE);
    } else {
        json_node_free(v);
        return qmp_error("GenericError", "Property '%s.%s' not found", q.obj.type, prop);
    }
    return qmp_return(v);
}
