/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A monitor's clients: accepting them, the greeting, reading their input
 * and the descriptors passed with it, buffered non-blocking output, and
 * dropping a client that does not read.
 */
#include "monitor/qmp-int.h"
#include "util/iothread.h"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QMP_OUT_HIGH    (64 << 10) /* unread replies beyond which a client's input waits */
#define QMP_OUT_MAX     (1 << 20)  /* unread output beyond which a client is dropped */
#define QMP_MAX_CLIENTS 64         /* per monitor; more wait to be accepted */
#define QMP_MAX_MSGFDS  16         /* descriptors read from one message; the rest are dropped */

static void client_readable(void *opaque);

static gboolean client_out_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpClient *c = opaque;
    qmp_client_flush(c);
    if (c->closing && c->out->len == 0) {
        qmp_client_close(c); /* also destroys this source: glib allows that from its callback */
    }
    return G_SOURCE_CONTINUE;
}

/* Sends what it can without blocking; the rest waits for POLLOUT. Never frees c. */
void qmp_client_flush(QmpClient *c)
{
    while (c->out->len > 0) {
        ssize_t n = send(c->fd, c->out->str, c->out->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            break;
        }
        if (n <= 0) {
            c->out->len = 0;
            c->closing = true;
            break;
        }
        g_string_erase(c->out, 0, n);
    }
    /*
     * A client that sends commands but does not read the replies gets no
     * more of its input read until it catches up, so it costs bounded
     * memory and stalls nobody else.
     */
    if (c->out->len > QMP_OUT_HIGH && c->in_src) {
        iothread_remove_source(c->in_src);
        c->in_src = NULL;
    } else if (c->out->len <= QMP_OUT_HIGH && !c->in_src) {
        /* Reading again; for a client whose socket failed, to see it end and close it. */
        c->in_src = iothread_add_fd(c->l->s->thread, c->fd, client_readable, c);
    }
    bool pending = c->out->len > 0;
    if (pending && !c->out_src) {
        c->out_src = g_unix_fd_source_new(c->fd, G_IO_OUT);
        g_source_set_callback(c->out_src, G_SOURCE_FUNC(client_out_ready), c, NULL);
        g_source_attach(c->out_src, iothread_context(c->l->s->thread));
    } else if (!pending && c->out_src) {
        iothread_remove_source(c->out_src);
        c->out_src = NULL;
    }
}

/*
 * A client that leaves more than QMP_OUT_MAX unread (events keep coming
 * while it reads nothing) is disconnected, its output dropped: memory stays
 * bounded. Its socket is shut down, so reading it ends in qmp_client_close.
 */
static void client_drop(QmpClient *c)
{
    g_printerr("qlite: a QMP client left over %d KiB of output unread: disconnected\n",
               QMP_OUT_MAX >> 10);
    g_string_truncate(c->out, 0);
    c->closing = true;
    shutdown(c->fd, SHUT_RDWR);
    if (!c->in_src) {
        c->in_src = iothread_add_fd(c->l->s->thread, c->fd, client_readable, c);
    }
}

void qmp_client_write(QmpClient *c, JsonNode *node)
{
    if (c->closing) {
        return;
    }
    qmp_json_append(c->out, node);
    g_string_append(c->out, "\r\n");
    qmp_client_flush(c);
    if (c->out->len > QMP_OUT_MAX) {
        client_drop(c);
    }
}

void qmp_client_close(QmpClient *c)
{
    QmpListener *l = c->l;
    iothread_remove_source(c->in_src);
    iothread_remove_source(c->out_src);
    close(c->fd);
    if (c->msgfd >= 0) {
        close(c->msgfd);
    }
    g_string_free(c->out, TRUE);
    qmp_framer_free(c->framer);
    g_ptr_array_remove_fast(l->clients, c);
    g_free(c);
    qmp_listener_watch(l); /* below the limit again: the next client may come in */
}

/*
 * As QEMU: the descriptors of a message replace any not taken yet, and getfd
 * takes the first; the others are closed.
 */
static void client_keep_fds(QmpClient *c, struct msghdr *msg)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (i == 0) {
                if (c->msgfd >= 0) {
                    close(c->msgfd);
                }
                c->msgfd = fd;
            } else {
                close(fd);
            }
        }
    }
}

static void client_readable(void *opaque)
{
    QmpClient *c = opaque;
    char buf[4096];
    union {
        char space[CMSG_SPACE(QMP_MAX_MSGFDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
    ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        qmp_client_close(c);
        return;
    }
    client_keep_fds(c, &msg);
    qmp_framer_feed(c->framer, buf, (size_t)n, qmp_client_handle_text, c);
    if (c->closing && c->out->len == 0) {
        qmp_client_close(c);
    }
}

static JsonNode *greeting(void)
{
    g_autoptr(JsonNode) v = qmp_cmd_query_version(NULL, NULL);
    JsonNode *version = json_node_copy(json_object_get_member(json_node_get_object(v), "return"));
    JsonObject *qmp = json_object_new();
    json_object_set_member(qmp, "version", version);
    JsonArray *caps = json_array_new();
    json_array_add_string_element(caps, "oob");
    json_object_set_array_member(qmp, "capabilities", caps);
    JsonObject *o = json_object_new();
    json_object_set_object_member(o, "QMP", qmp);
    return qmp_object_node(o);
}

static void listener_accept(void *opaque)
{
    QmpListener *l = opaque;
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        return;
    }
    QmpClient *c = g_new0(QmpClient, 1);
    c->l = l;
    c->fd = fd;
    c->msgfd = -1;
    c->out = g_string_new(NULL);
    c->framer = qmp_framer_new();
    g_ptr_array_add(l->clients, c);
    if (l->clients->len >= QMP_MAX_CLIENTS) {
        iothread_remove_source(l->accept_src); /* the rest wait in the backlog */
        l->accept_src = NULL;
    }
    c->in_src = iothread_add_fd(l->s->thread, fd, client_readable, c);
    g_autoptr(JsonNode) g = greeting();
    qmp_client_write(c, g);
}

void qmp_listener_watch(QmpListener *l)
{
    if (l->s->serving && !l->accept_src && l->clients->len < QMP_MAX_CLIENTS) {
        l->accept_src = iothread_add_fd(l->s->thread, l->fd, listener_accept, l);
    }
}
