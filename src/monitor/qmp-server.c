/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP server: its monitor thread, the listening sockets (unix, tcp, a
 * socket passed as an fd), events to every negotiated client, tear-down.
 */
#include "monitor/qmp-int.h"
#include "util/error.h"
#include "util/iothread.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- events ---- */

static gint64 qmp_now_us(void)
{
    return g_get_real_time();
}

typedef struct {
    QmpServer *s;
    JsonNode *event;
} QueuedEvent;

static JsonNode *event_node(const char *name, JsonNode *data)
{
    gint64 now = qmp_now_us();
    JsonObject *ts = json_object_new();
    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    JsonObject *o = json_object_new();
    json_object_set_object_member(o, "timestamp", ts); /* QEMU's member order */
    json_object_set_string_member(o, "event", name);
    if (data) {
        json_object_set_member(o, "data", data);
    }
    return qmp_object_node(o);
}

static void broadcast(QmpServer *s, JsonNode *event)
{
    /* Events before negotiation are dropped, not queued (as QEMU). */
    for (guint i = 0; i < s->listeners->len; i++) {
        QmpListener *l = g_ptr_array_index(s->listeners, i);
        for (guint j = 0; j < l->clients->len; j++) {
            QmpClient *c = g_ptr_array_index(l->clients, j);
            if (c->negotiated && !c->closing) {
                qmp_client_write(c, event);
            }
        }
    }
}

static gboolean event_dispatch(gpointer opaque)
{
    QueuedEvent *q = opaque;
    broadcast(q->s, q->event);
    json_node_unref(q->event);
    g_free(q);
    return G_SOURCE_REMOVE;
}

void qmp_server_event(QmpServer *s, const char *name, JsonNode *data)
{
    if (!s) { /* no monitor: nobody to tell */
        if (data) {
            json_node_unref(data);
        }
        return;
    }
    JsonNode *ev = event_node(name, data);
    if (iothread_is_current(s->thread)) {
        broadcast(s, ev);
        json_node_unref(ev);
        return;
    }
    QueuedEvent *q = g_new(QueuedEvent, 1);
    q->s = s;
    q->event = ev;
    /* The priority of iothread_run_sync: an event queued before the server is freed goes out. */
    g_main_context_invoke_full(iothread_context(s->thread), G_PRIORITY_HIGH, event_dispatch, q,
                               NULL);
}

/* ---- set-up ---- */

QmpServer *qmp_server_new(const QmpMachineOps *ops, void *opaque, GError **error)
{
    if (!qmp_dispatch_check_schema(error)) {
        return NULL;
    }
    g_autoptr(QmpServer) s = g_new0(QmpServer, 1);
    s->ops = ops;
    s->opaque = opaque;
    s->listeners = g_ptr_array_new();
    s->downtime_limit = QMP_DEFAULT_DOWNTIME_LIMIT;
    s->max_bandwidth = QMP_DEFAULT_MAX_BANDWIDTH;
    s->thread = iothread_new("monitor", error);
    if (!s->thread) {
        return NULL;
    }
    return g_steal_pointer(&s);
}

typedef struct {
    QmpServer *s;
    int fd;
    char *path;
} AddListener;

static void add_listener_cb(void *opaque)
{
    AddListener *a = opaque;
    QmpListener *l = g_new0(QmpListener, 1);
    l->s = a->s;
    l->fd = a->fd;
    l->path = a->path;
    l->fds = g_ptr_array_new_with_free_func(qmp_monitor_fd_free);
    l->clients = g_ptr_array_new();
    g_ptr_array_add(a->s->listeners, l);
    qmp_listener_watch(l);
}

static void start_cb(void *opaque)
{
    QmpServer *s = opaque;
    s->serving = true;
    for (guint i = 0; i < s->listeners->len; i++) {
        qmp_listener_watch(g_ptr_array_index(s->listeners, i));
    }
}

void qmp_server_start(QmpServer *s)
{
    iothread_run_sync(s->thread, start_cb, s);
}

bool qmp_server_sandbox(QmpServer *s, GError **error)
{
    return iothread_sandbox(s->thread, SANDBOX_MONITOR, error);
}

bool qmp_server_listen_fd(QmpServer *s, int fd, GError **error)
{
    int listening = 0;
    socklen_t sl = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) < 0 || !listening) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "fd %d is not a listening socket", fd);
        return false;
    }
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    AddListener a = {.s = s, .fd = fd};
    iothread_run_sync(s->thread, add_listener_cb, &a);
    return true;
}

static int listen_unix(const char *path, GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "socket path too long: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(path); /* a stale socket from an earlier run, as QEMU does */
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        qlite_error_errno(error, errno, "cannot listen on %s", path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *hostport, GError **error)
{
    g_autoptr(GSocketAddressEnumerator) en = NULL;
    g_autoptr(GSocketConnectable) addr = g_network_address_parse(hostport, 0, error);
    if (!addr) {
        return -1;
    }
    en = g_socket_connectable_enumerate(addr);
    g_autoptr(GSocketAddress) sa = g_socket_address_enumerator_next(en, NULL, error);
    if (!sa) {
        return -1;
    }
    g_autoptr(GSocket) sock = g_socket_new(g_socket_address_get_family(sa), G_SOCKET_TYPE_STREAM,
                                           G_SOCKET_PROTOCOL_TCP, error);
    if (!sock || !g_socket_bind(sock, sa, TRUE, error) || !g_socket_listen(sock, error)) {
        g_prefix_error(error, "cannot listen on %s: ", hostport);
        return -1;
    }
    return dup(g_socket_get_fd(sock));
}

bool qmp_server_listen(QmpServer *s, const char *spec, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(spec, ",", -1);
    bool server = false, nowait = false;
    if (!parts[0]) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "'' is not a monitor address (unix:PATH or tcp:HOST:PORT)");
        return false;
    }
    for (int i = 1; parts[i]; i++) {
        if (strcmp(parts[i], "server=on") == 0 || strcmp(parts[i], "server") == 0) {
            server = true;
        } else if (strcmp(parts[i], "wait=off") == 0 || strcmp(parts[i], "nowait") == 0) {
            nowait = true;
        } else {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "unsupported option '%s'",
                        parts[i]);
            return false;
        }
    }
    if (!server || !nowait) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "only listening monitors are supported: add server=on,wait=off");
        return false;
    }
    int fd;
    char *path = NULL;
    if (g_str_has_prefix(parts[0], "unix:")) {
        path = g_strdup(parts[0] + 5);
        fd = listen_unix(path, error);
    } else if (g_str_has_prefix(parts[0], "tcp:")) {
        fd = listen_tcp(parts[0] + 4, error);
    } else {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "'%s' is not a monitor address (unix:PATH or tcp:HOST:PORT)", parts[0]);
        return false;
    }
    if (fd < 0) {
        g_free(path);
        return false;
    }
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    AddListener a = {.s = s, .fd = fd, .path = path};
    iothread_run_sync(s->thread, add_listener_cb, &a);
    return true;
}

static void free_listeners_cb(void *opaque)
{
    QmpServer *s = opaque;
    for (guint i = 0; i < s->listeners->len; i++) {
        QmpListener *l = g_ptr_array_index(s->listeners, i);
        while (l->clients->len > 0) {
            QmpClient *c = g_ptr_array_index(l->clients, 0);
            qmp_client_flush(c);
            qmp_client_close(c);
        }
        g_ptr_array_free(l->clients, TRUE);
        iothread_remove_source(l->accept_src);
        close(l->fd);
        if (l->path) {
            unlink(l->path);
        }
        g_free(l->path);
        g_ptr_array_free(l->fds, TRUE);
        g_free(l);
    }
    g_ptr_array_set_size(s->listeners, 0);
}

void qmp_server_free(QmpServer *s)
{
    if (!s) {
        return;
    }
    if (s->thread) {
        iothread_run_sync(s->thread, free_listeners_cb, s);
        iothread_free(s->thread);
    }
    g_ptr_array_free(s->listeners, TRUE);
    g_free(s);
}
