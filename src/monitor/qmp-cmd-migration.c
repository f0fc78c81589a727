/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP migration: migrate, migrate-incoming, migrate_cancel, query-migrate,
 * the capabilities and parameters (and their reading from other threads),
 * the MIGRATION and MIGRATION_PASS events.
 */
#include "monitor/qmp-int.h"

#include <inttypes.h>
#include <string.h>

/*
 * The descriptor of an fd: URI. migrate takes a name only; migrate-incoming,
 * as QEMU, also a number (a descriptor qlite was started with), which the
 * transport parses: -1 then.
 */
static bool migration_fd(QmpServer *s, const char *uri, bool numbers, int *fd, JsonNode **error)
{
    *fd = -1;
    if (!g_str_has_prefix(uri, "fd:") || (numbers && g_ascii_isdigit(uri[3]))) {
        return true;
    }
    *fd = qmp_monitor_fd_take(s, uri + 3);
    if (*fd < 0) {
        *error =
            qmp_error("GenericError", "File descriptor named '%s' has not been found", uri + 3);
        return false;
    }
    return true;
}

/* An optional boolean argument (the schema checked its type); false when absent. */
static bool flag(JsonObject *args, const char *name)
{
    return json_object_has_member(args, name) && json_object_get_boolean_member(args, name);
}

JsonNode *qmp_cmd_migrate(QmpServer *s, JsonObject *args)
{
    JsonNode *reply = NULL;
    if (flag(args, "resume")) { /* there is no postcopy, so never a paused one */
        return qmp_error("GenericError", "Cannot resume if there is no paused migration");
    }
    if (flag(args, "blk") || flag(args, "inc")) {
        return qmp_error("GenericError", "qlite has no block migration (blk, inc): the disks must "
                                         "be shared by both sides");
    }
    const char *uri = json_object_get_string_member(args, "uri");
    int fd;
    if (!migration_fd(s, uri, false, &fd, &reply)) {
        return reply;
    }
    g_autoptr(GError) err = NULL;
    if (!s->ops->migrate(s->opaque, uri, fd, &err)) {
        return qmp_error("GenericError", "%s", err->message);
    }
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_migrate_incoming(QmpServer *s, JsonObject *args)
{
    const char *uri = json_object_get_string_member(args, "uri");
    int fd;
    JsonNode *reply = NULL;
    if (!migration_fd(s, uri, true, &fd, &reply)) {
        return reply;
    }
    g_autoptr(GError) err = NULL;
    if (!s->ops->migrate_incoming(s->opaque, uri, fd, &err)) {
        return qmp_error("GenericError", "%s", err->message);
    }
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_migrate_cancel(QmpServer *s, JsonObject *args)
{
    s->ops->migrate_cancel(s->opaque);
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_query_migrate(QmpServer *s, JsonObject *args)
{
    QmpMigrateInfo info = {0};
    s->ops->query_migrate(s->opaque, &info);
    JsonObject *o = json_object_new();
    if (info.status) {
        json_object_set_string_member(o, "status", info.status);
        json_object_set_int_member(o, "setup-time", info.setup_time);
        json_object_set_int_member(o, "total-time", info.total_time);
        if (strcmp(info.status, "completed") == 0) {
            json_object_set_int_member(o, "downtime", info.downtime);
        } else if (strcmp(info.status, "active") == 0) {
            json_object_set_int_member(o, "expected-downtime", info.expected_downtime);
        }
        JsonObject *ram = json_object_new();
        json_object_set_int_member(ram, "transferred", (gint64)info.transferred);
        json_object_set_int_member(ram, "remaining", (gint64)info.remaining);
        json_object_set_int_member(ram, "total", (gint64)info.total);
        json_object_set_int_member(ram, "duplicate", (gint64)info.duplicate);
        json_object_set_int_member(ram, "normal", (gint64)info.normal);
        json_object_set_int_member(ram, "normal-bytes", (gint64)info.normal_bytes);
        json_object_set_double_member(ram, "mbps", info.mbps);
        json_object_set_int_member(ram, "dirty-pages-rate", (gint64)info.dirty_pages_rate);
        json_object_set_int_member(ram, "dirty-sync-count", (gint64)info.dirty_sync_count);
        json_object_set_int_member(ram, "page-size", 4096);
        json_object_set_object_member(o, "ram", ram);
        if (info.error_desc[0]) {
            json_object_set_string_member(o, "error-desc", info.error_desc);
        }
    }
    return qmp_return(qmp_object_node(o));
}

void qmp_server_migration_event(QmpServer *s, const char *status)
{
    if (s && g_atomic_int_get(&s->mig_events)) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "status", status);
        qmp_server_event(s, "MIGRATION", qmp_object_node(o));
    }
}

void qmp_server_migration_pass_event(QmpServer *s, uint64_t pass)
{
    if (s && g_atomic_int_get(&s->mig_events)) {
        JsonObject *o = json_object_new();
        json_object_set_int_member(o, "pass", (gint64)pass);
        qmp_server_event(s, "MIGRATION_PASS", qmp_object_node(o));
    }
}

void qmp_server_migration_params(QmpServer *s, int64_t *downtime_limit, int64_t *max_bandwidth)
{
    *downtime_limit =
        s ? __atomic_load_n(&s->downtime_limit, __ATOMIC_RELAXED) : QMP_DEFAULT_DOWNTIME_LIMIT;
    *max_bandwidth =
        s ? __atomic_load_n(&s->max_bandwidth, __ATOMIC_RELAXED) : QMP_DEFAULT_MAX_BANDWIDTH;
}

bool qmp_server_migration_return_path(QmpServer *s)
{
    return s && g_atomic_int_get(&s->mig_return_path);
}

/* The capabilities qlite has, in QEMU's order (the schema's enum). */
static gint *capability(QmpServer *s, const char *name)
{
    return strcmp(name, "events") == 0 ? &s->mig_events : &s->mig_return_path;
}

static const char *const capabilities[] = {"events", "return-path"};

/* migrate-set-capabilities: as QEMU, not while this VM is being sent (receiving is fine). */
JsonNode *qmp_cmd_migrate_set_capabilities(QmpServer *s, JsonObject *args)
{
    QmpMigrateInfo info = {0};
    s->ops->query_migrate(s->opaque, &info);
    if (info.status && (strcmp(info.status, "setup") == 0 || strcmp(info.status, "active") == 0) &&
        strcmp(s->ops->status(s->opaque), "inmigrate") != 0) {
        return qmp_error("GenericError", "There's a migration process in progress");
    }
    JsonArray *a = json_object_get_array_member(args, "capabilities");
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *c = json_array_get_object_element(a, i);
        g_atomic_int_set(capability(s, json_object_get_string_member(c, "capability")),
                         json_object_get_boolean_member(c, "state"));
    }
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_query_migrate_capabilities(QmpServer *s, JsonObject *args)
{
    JsonArray *a = json_array_new();
    for (size_t i = 0; i < G_N_ELEMENTS(capabilities); i++) {
        JsonObject *c = json_object_new();
        json_object_set_string_member(c, "capability", capabilities[i]);
        json_object_set_boolean_member(c, "state",
                                       g_atomic_int_get(capability(s, capabilities[i])));
        json_array_add_object_element(a, c);
    }
    return qmp_return(qmp_array_node(a));
}

/*
 * downtime-limit (ms) and max-bandwidth (bytes/s), kept for
 * query-migrate-parameters; both checked before either is set, as QEMU.
 */
JsonNode *qmp_cmd_migrate_set_parameters(QmpServer *s, JsonObject *args)
{
    bool has_downtime = json_object_has_member(args, "downtime-limit");
    bool has_bandwidth = json_object_has_member(args, "max-bandwidth");
    int64_t downtime = has_downtime ? json_object_get_int_member(args, "downtime-limit") : 0;
    int64_t bandwidth = has_bandwidth ? json_object_get_int_member(args, "max-bandwidth") : 0;
    if (downtime < 0 || downtime > QMP_MAX_DOWNTIME_LIMIT) {
        return qmp_error("GenericError",
                         "Parameter 'downtime_limit' expects an integer in the range of 0 to "
                         "(2000 * 1000) ms");
    }
    if (bandwidth < 0) {
        return qmp_error("GenericError",
                         "Parameter 'max_bandwidth' expects an integer in the range of 0 to "
                         "%" PRId64 " bytes/second",
                         INT64_MAX);
    }
    if (has_downtime) {
        __atomic_store_n(&s->downtime_limit, downtime, __ATOMIC_RELAXED);
    }
    if (has_bandwidth) {
        __atomic_store_n(&s->max_bandwidth, bandwidth, __ATOMIC_RELAXED);
    }
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_query_migrate_parameters(QmpServer *s, JsonObject *args)
{
    JsonObject *o = json_object_new();
    json_object_set_int_member(o, "downtime-limit", s->downtime_limit);
    json_object_set_int_member(o, "max-bandwidth", s->max_bandwidth);
    return qmp_return(qmp_object_node(o));
}
