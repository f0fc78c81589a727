/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Descriptors passed over the socket: getfd, closefd, and the descriptor an
 * fd:NAME migration URI takes.
 */
#include "monitor/qmp-int.h"

#include <string.h>
#include <unistd.h>

/* A descriptor getfd named; the monitor keeps it until closefd or a migration takes it. */
typedef struct {
    char *name;
    int fd;
} MonitorFd;

void qmp_monitor_fd_free(gpointer p)
{
    MonitorFd *f = p;
    close(f->fd);
    g_free(f->name);
    g_free(f);
}

static guint monitor_fd_find(QmpListener *l, const char *name)
{
    for (guint i = 0; i < l->fds->len; i++) {
        if (strcmp(((MonitorFd *)g_ptr_array_index(l->fds, i))->name, name) == 0) {
            return i;
        }
    }
    return G_MAXUINT;
}

/* Takes the descriptor getfd named out of the current monitor; -1 when there is none. */
int qmp_monitor_fd_take(QmpServer *s, const char *name)
{
    QmpListener *l = s->cur->l;
    guint i = monitor_fd_find(l, name);
    if (i == G_MAXUINT) {
        return -1;
    }
    MonitorFd *f = g_ptr_array_steal_index(l->fds, i);
    int fd = f->fd;
    g_free(f->name);
    g_free(f);
    return fd;
}

JsonNode *qmp_cmd_getfd(QmpServer *s, JsonObject *args)
{
    const char *name = json_object_get_string_member(args, "fdname");
    QmpClient *c = s->cur;
    int fd = c->msgfd;
    c->msgfd = -1;
    if (fd < 0) {
        return qmp_error("GenericError", "No file descriptor supplied via SCM_RIGHTS");
    }
    if (g_ascii_isdigit(name[0])) { /* fd:N means descriptor number N */
        close(fd);
        return qmp_error("GenericError",
                         "Parameter 'fdname' expects a name not starting with a digit");
    }
    QmpListener *l = c->l;
    guint i = monitor_fd_find(l, name);
    if (i != G_MAXUINT) { /* the name now means the new descriptor */
        MonitorFd *f = g_ptr_array_index(l->fds, i);
        close(f->fd);
        f->fd = fd;
        return qmp_return(NULL);
    }
    MonitorFd *f = g_new(MonitorFd, 1);
    f->name = g_strdup(name);
    f->fd = fd;
    g_ptr_array_add(l->fds, f);
    return qmp_return(NULL);
}

JsonNode *qmp_cmd_closefd(QmpServer *s, JsonObject *args)
{
    const char *name = json_object_get_string_member(args, "fdname");
    QmpListener *l = s->cur->l;
    guint i = monitor_fd_find(l, name);
    if (i == G_MAXUINT) {
        return qmp_error("GenericError", "File descriptor named '%s' not found", name);
    }
    g_ptr_array_remove_index(l->fds, i);
    return qmp_return(NULL);
}
