/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Inside the QMP monitor: the server, a listener per monitor socket, the
 * clients of each, and what the files of src/monitor call in one another:
 *   qmp-framer.c         where one JSON text of the input ends
 *   qmp-json.c           reply and error nodes, QEMU's JSON formatting
 *   qmp-server.c         set-up, listening sockets, events, tear-down
 *   qmp-client.c         a connection: accept, greeting, input, output
 *   qmp-dispatch.c       a request from its text to its reply; the command table
 *   qmp-schema.c         the description (qmp-schema.json): argument checks, introspection
 *   qmp-cmd-probe.c      what a manager asks first: target, machines, QOM types and properties
 *   qmp-cmd-run.c        the VM as a whole: status, stop, cont, reset, quit, HMP
 *   qmp-cmd-block.c      query-block, query-named-block-nodes, query-blockstats,
 *                        query-chardev, device_del
 *   qmp-cmd-stats.c      query-stats, query-stats-schemas: KVM's counters
 *   qmp-cmd-qom.c        qom-list, qom-get: /machine, its peripherals and vCPUs
 *   qmp-cmd-fd.c         getfd, closefd, the descriptors a monitor keeps
 *   qmp-cmd-migration.c  migrate and the rest of migration
 */
#include "monitor/qmp.h"
#include "util/iothread.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct QmpListener QmpListener;

typedef struct {
    QmpListener *l;
    int fd;
    GSource *in_src;
    GSource *out_src;
    GString *out;
    QmpFramer *framer;
    bool negotiated;
    bool oob;     /* the client enabled the oob capability */
    bool closing; /* close once the output is flushed */
    int msgfd;    /* the descriptor of the latest SCM_RIGHTS message, for getfd; -1 */
} QmpClient;

struct QmpListener {
    QmpServer *s;
    int fd;
    char *path; /* unix socket to unlink */
    GSource *accept_src;
    GPtrArray *clients; /* QmpClient, served side by side */
    GPtrArray *fds;     /* MonitorFd (qmp-cmd-fd.c): per monitor, as QEMU, kept across clients */
};

struct QmpServer {
    const QmpMachineOps *ops;
    void *opaque;
    IoThread *thread;
    GPtrArray *listeners;
    QmpClient *cur; /* whose command runs (monitor thread) */
    bool serving;   /* qmp_server_start: clients are accepted (monitor thread) */
    /* migrate-set-capabilities / -parameters (monitor thread; read atomically elsewhere) */
    gint mig_events;
    gint mig_return_path;
    int64_t downtime_limit; /* ms */
    int64_t max_bandwidth;  /* bytes/s */
};

/* qmp-json.c */
JsonNode *qmp_error(const char *cls, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
JsonNode *qmp_object_node(JsonObject *o);
JsonNode *qmp_array_node(JsonArray *a); /* takes a */
JsonNode *qmp_return(JsonNode *value);
void qmp_json_append(GString *out, JsonNode *node);

/* qmp-client.c */
void qmp_client_write(QmpClient *c, JsonNode *node);
void qmp_client_flush(QmpClient *c);
void qmp_client_close(QmpClient *c);
/* Accepts clients again while the listener has room for one. */
void qmp_listener_watch(QmpListener *l);

/* qmp-dispatch.c: the framer's callback, one request text of client opaque. */
void qmp_client_handle_text(void *opaque, const char *text, size_t len, const char *refusal);
/* Whether every command has a handler and every handler a description. */
bool qmp_dispatch_check_schema(GError **error);

/* qmp-cmd-fd.c: the free function of QmpListener.fds; the take for an fd:NAME URI. */
void qmp_monitor_fd_free(gpointer p);
int qmp_monitor_fd_take(QmpServer *s, const char *name);

/* The commands, which qmp-dispatch.c's table names; each returns its reply. */
JsonNode *qmp_cmd_query_version(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_target(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_machines(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_cpu_definitions(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_command_line_options(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_qom_list_types(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_device_list_properties(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_qom_list_properties(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_status(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_name(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_kvm(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_cpus_fast(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_stop(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_cont(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_system_reset(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_system_powerdown(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_quit(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_hmp(QmpServer *s, JsonObject *args);

JsonNode *qmp_cmd_query_block(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_chardev(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_named_block_nodes(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_blockstats(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_stats(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_stats_schemas(QmpServer *s, JsonObject *args);

JsonNode *qmp_cmd_qom_list(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_qom_get(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_device_del(QmpServer *s, JsonObject *args);

JsonNode *qmp_cmd_getfd(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_closefd(QmpServer *s, JsonObject *args);

JsonNode *qmp_cmd_migrate(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_migrate_incoming(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_migrate_cancel(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_migrate(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_migrate_set_capabilities(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_migrate_capabilities(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_migrate_set_parameters(QmpServer *s, JsonObject *args);
JsonNode *qmp_cmd_query_migrate_parameters(QmpServer *s, JsonObject *args);
