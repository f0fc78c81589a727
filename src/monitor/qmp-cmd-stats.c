/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * query-stats and query-stats-schemas: KVM's own statistics of the VM and of
 * each vCPU (cpu/kvm-stats.h), named, typed and scaled as the kernel
 * describes them, as QEMU's "kvm" provider reports them.
 */
#include "monitor/qmp-int.h"

#include <linux/kvm.h>
#include <string.h>

static const char *const stat_types[] = {"cumulative", "instant", "peak", "linear-histogram",
                                         "log2-histogram"};
static const char *const stat_units[] = {NULL, "bytes", "seconds", "cycles", "boolean"};

/* What QEMU reports: a known type, unit and base, else the statistic is left out. */
static bool stat_known(const KvmStatsDesc *d)
{
    uint32_t type = (d->flags & KVM_STATS_TYPE_MASK) >> KVM_STATS_TYPE_SHIFT;
    uint32_t unit = (d->flags & KVM_STATS_UNIT_MASK) >> KVM_STATS_UNIT_SHIFT;
    uint32_t base = d->flags & KVM_STATS_BASE_MASK;
    return type < G_N_ELEMENTS(stat_types) && unit < G_N_ELEMENTS(stat_units) &&
           (base == KVM_STATS_BASE_POW10 || base == KVM_STATS_BASE_POW2);
}

static bool stat_is(const KvmStatsDesc *d, uint32_t mask, uint32_t value)
{
    return (d->flags & mask) == value;
}

static bool name_wanted(const char *name, JsonArray *names)
{
    if (!names) {
        return true;
    }
    for (guint i = 0; i < json_array_get_length(names); i++) {
        if (strcmp(json_array_get_string_element(names, i), name) == 0) {
            return true;
        }
    }
    return false;
}

/* One statistic's value: a boolean, a number, or a histogram's buckets. */
static JsonNode *stat_value(const KvmStatsDesc *d, const uint64_t *data)
{
    const uint64_t *v = data + d->offset / sizeof(uint64_t);
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    if (stat_is(d, KVM_STATS_UNIT_MASK, KVM_STATS_UNIT_BOOLEAN)) {
        json_node_set_boolean(n, v[0] != 0);
    } else if (d->size == 1) {
        json_node_set_int(n, (gint64)v[0]);
    } else {
        JsonArray *a = json_array_new();
        for (unsigned i = 0; i < d->size; i++) {
            json_array_add_int_element(a, (gint64)v[i]);
        }
        json_node_init_array(n, a);
        json_array_unref(a);
    }
    return n;
}

/* The VM's (vcpu -1) or a vCPU's statistics; NULL when none is wanted or there are none. */
static JsonObject *stats_result(QmpServer *s, int vcpu, JsonArray *names, JsonNode **error)
{
    const KvmStats *desc;
    g_autoptr(GError) err = NULL;
    g_autofree uint64_t *data = s->ops->kvm_stats(s->opaque, vcpu, &desc, &err);
    if (!data) {
        if (err) {
            *error = qmp_error("GenericError", "%s", err->message);
        }
        return NULL;
    }
    JsonArray *stats = json_array_new();
    for (unsigned i = desc->n; i-- > 0;) { /* QEMU 7.2 lists them last first */
        const KvmStatsDesc *d = &desc->desc[i];
        if (!stat_known(d) || !name_wanted(d->name, names)) {
            continue;
        }
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", d->name);
        json_object_set_member(o, "value", stat_value(d, data));
        json_array_add_object_element(stats, o);
    }
    if (json_array_get_length(stats) == 0) {
        json_array_unref(stats);
        return NULL;
    }
    JsonObject *r = json_object_new();
    json_object_set_string_member(r, "provider", "kvm");
    if (vcpu >= 0) {
        g_autofree char *path = g_strdup_printf("/machine/unattached/device[%d]", vcpu);
        json_object_set_string_member(r, "qom-path", path);
    }
    json_object_set_array_member(r, "stats", stats);
    return r;
}

/* Whether the kvm provider is asked for, and with which names (NULL: all). */
static bool kvm_requested(JsonObject *args, JsonArray **names)
{
    *names = NULL;
    if (!json_object_has_member(args, "providers")) {
        return true;
    }
    JsonArray *providers = json_object_get_array_member(args, "providers");
    for (guint i = 0; i < json_array_get_length(providers); i++) {
        JsonObject *p = json_array_get_object_element(providers, i);
        if (strcmp(json_object_get_string_member(p, "provider"), "kvm") == 0) {
            *names = json_object_has_member(p, "names") ? json_object_get_array_member(p, "names")
                                                        : NULL;
            return true;
        }
    }
    return false;
}

static bool vcpu_wanted(JsonArray *vcpus, unsigned index)
{
    if (!vcpus) {
        return true;
    }
    g_autofree char *path = g_strdup_printf("/machine/unattached/device[%u]", index);
    return name_wanted(path, vcpus);
}

JsonNode *qmp_cmd_query_stats(QmpServer *s, JsonObject *args)
{
    bool vcpu = strcmp(json_object_get_string_member(args, "target"), "vcpu") == 0;
    JsonArray *vcpus =
        json_object_has_member(args, "vcpus") ? json_object_get_array_member(args, "vcpus") : NULL;
    if (vcpus && !vcpu) { /* QEMU's union has the member for the vcpu target only */
        return qmp_error("GenericError", "Parameter 'vcpus' is unexpected");
    }
    JsonArray *names;
    JsonArray *out = json_array_new();
    JsonNode *error = NULL;
    if (kvm_requested(args, &names)) {
        QmpCpuInfo none[1];
        unsigned n = vcpu ? s->ops->cpus(s->opaque, none, 0) : 1;
        for (unsigned i = 0; i < n && !error; i++) {
            if (vcpu && !vcpu_wanted(vcpus, i)) {
                continue;
            }
            JsonObject *r = stats_result(s, vcpu ? (int)i : -1, names, &error);
            if (r) {
                json_array_add_object_element(out, r);
            }
        }
    }
    if (error) {
        json_array_unref(out);
        return error;
    }
    return qmp_return(qmp_array_node(out));
}

/* The description of each statistic of one target, as QEMU's StatsSchemaValue. */
static JsonObject *stats_schema(const KvmStats *desc, const char *target)
{
    JsonArray *stats = json_array_new();
    for (unsigned i = desc->n; i-- > 0;) { /* QEMU 7.2 lists them last first */
        const KvmStatsDesc *d = &desc->desc[i];
        if (!stat_known(d)) {
            continue;
        }
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", d->name);
        uint32_t type = (d->flags & KVM_STATS_TYPE_MASK) >> KVM_STATS_TYPE_SHIFT;
        json_object_set_string_member(o, "type", stat_types[type]);
        const char *unit = stat_units[(d->flags & KVM_STATS_UNIT_MASK) >> KVM_STATS_UNIT_SHIFT];
        if (unit) {
            json_object_set_string_member(o, "unit", unit);
        }
        if (d->exponent) { /* as QEMU: a base only for a non-zero exponent */
            json_object_set_int_member(
                o, "base", stat_is(d, KVM_STATS_BASE_MASK, KVM_STATS_BASE_POW2) ? 2 : 10);
        }
        json_object_set_int_member(o, "exponent", d->exponent);
        if (stat_is(d, KVM_STATS_TYPE_MASK, KVM_STATS_TYPE_LINEAR_HIST)) {
            json_object_set_int_member(o, "bucket-size", d->bucket_size);
        }
        json_array_add_object_element(stats, o);
    }
    JsonObject *r = json_object_new();
    json_object_set_string_member(r, "provider", "kvm");
    json_object_set_string_member(r, "target", target);
    json_object_set_array_member(r, "stats", stats);
    return r;
}

JsonNode *qmp_cmd_query_stats_schemas(QmpServer *s, JsonObject *args)
{
    JsonArray *out = json_array_new();
    /* "kvm" is the one provider (the schema checked the argument). */
    static const struct {
        int vcpu;
        const char *target;
    } targets[] = {{0, "vcpu"}, {-1, "vm"}}; /* QEMU 7.2's order */
    for (size_t i = 0; i < G_N_ELEMENTS(targets); i++) {
        const KvmStats *desc;
        g_autoptr(GError) err = NULL;
        g_autofree uint64_t *data = s->ops->kvm_stats(s->opaque, targets[i].vcpu, &desc, &err);
        if (data) {
            json_array_add_object_element(out, stats_schema(desc, targets[i].target));
        }
    }
    return qmp_return(qmp_array_node(out));
}
