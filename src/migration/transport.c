/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Where a migration stream goes and comes from, QEMU's URIs: file:PATH,
 * exec:COMMAND (through /bin/sh, the stream on its stdin or stdout),
 * unix:PATH and tcp:HOST:PORT (the destination listens, the source
 * connects), fd:NAME or fd:NUMBER (a descriptor passed with getfd, or one
 * qlite was started with). Every descriptor is blocking: the stream code
 * expects that.
 */
#include "migration/transport.h"
#include "util/error.h"
#include "util/spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <limits.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* "HOST:PORT" with HOST possibly in brackets ([::1]:4444) or empty. */
static bool split_host_port(const char *text, char **host, char **port, GError **error)
{
    const char *colon = strrchr(text, ':');
    if (!colon || !colon[1]) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "'%s': expected HOST:PORT", text);
        return false;
    }
    const char *h = text;
    size_t hlen = (size_t)(colon - text);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    *host = hlen ? g_strndup(h, hlen) : NULL;
    *port = g_strdup(colon + 1);
    return true;
}

static int inet_socket(const char *addr, bool listening, GError **error)
{
    g_autofree char *host = NULL, *port = NULL;
    if (!split_host_port(addr, &host, &port, error)) {
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = listening ? AI_PASSIVE : 0};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "tcp:%s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        bool ok = listening ? setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
                                  bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1) == 0
                            : connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
        if (!ok) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        qlite_error_errno(error, err, "tcp:%s", addr);
    }
    return fd;
}

static int unix_socket(const char *path, bool listening, GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "unix:%s: path too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        qlite_error_errno(error, errno, "unix:%s", path);
        return -1;
    }
    if (listening) {
        unlink(path);
    }
    bool ok = listening ? bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0
                        : connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (!ok) {
        qlite_error_errno(error, errno, "unix:%s", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* /bin/sh -c command, its stdin (outgoing) or stdout (incoming) a pipe we keep the other end of. */
static int exec_command(const char *command, bool outgoing, GPid *child, GError **error)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        qlite_error_errno(error, errno, "exec:%s: pipe", command);
        return -1;
    }
    int theirs = outgoing ? p[0] : p[1], ours = outgoing ? p[1] : p[0];
    bool ok = spawner_run(command, theirs, outgoing, child, error);
    close(theirs);
    if (!ok) {
        g_prefix_error(error, "exec:%s: ", command);
        close(ours);
        return -1;
    }
    return ours;
}

/* fd:: the descriptor the monitor resolved, else the number in the URI. */
static int given_fd(const char *text, int fd, GError **error)
{
    guint64 n;
    if (fd < 0) {
        if (!g_ascii_string_to_unsigned(text, 10, 0, INT_MAX, &n, NULL) ||
            fcntl((int)n, F_GETFD) < 0) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "Invalid file descriptor number '%s'", text);
            return -1;
        }
        fd = (int)n;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (!g_unix_set_fd_nonblocking(fd, FALSE, error)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int open_uri(const char *uri, int passed, bool outgoing, GPid *child, int *listen_fd,
                    GError **error)
{
    *child = 0;
    *listen_fd = -1;
    if (g_str_has_prefix(uri, "fd:")) {
        return given_fd(uri + 3, passed, error);
    }
    if (passed >= 0) {
        close(passed); /* only fd: comes with one */
    }
    if (g_str_has_prefix(uri, "file:")) {
        const char *path = uri + 5;
        int fd = outgoing ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
                          : open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            qlite_error_errno(error, errno, "file:%s", path);
        }
        return fd;
    }
    if (g_str_has_prefix(uri, "exec:")) {
        return exec_command(uri + 5, outgoing, child, error);
    }
    if (g_str_has_prefix(uri, "unix:") || g_str_has_prefix(uri, "tcp:")) {
        bool is_unix = uri[0] == 'u';
        const char *addr = strchr(uri, ':') + 1;
        int fd =
            is_unix ? unix_socket(addr, !outgoing, error) : inet_socket(addr, !outgoing, error);
        if (fd < 0 || outgoing) {
            return fd;
        }
        *listen_fd = fd;
        return -1; /* the caller accepts on listen_fd */
    }
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                "invalid migration URI '%s' (file:, exec:, unix:, tcp: or fd:)", uri);
    return -1;
}

int mig_transport_connect(const char *uri, int fd, GPid *child, GError **error)
{
    int listen_fd;
    return open_uri(uri, fd, true, child, &listen_fd, error);
}

bool mig_transport_listen(const char *uri, int fd, MigIncoming *inc, GError **error)
{
    inc->fd = open_uri(uri, fd, false, &inc->child, &inc->listen_fd, error);
    return inc->fd >= 0 || inc->listen_fd >= 0;
}

int mig_transport_accept(MigIncoming *inc, GError **error)
{
    if (inc->listen_fd < 0) {
        int fd = inc->fd;
        inc->fd = -1;
        return fd;
    }
    int fd = accept4(inc->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        qlite_error_errno(error, errno, "accepting the incoming migration");
    }
    close(inc->listen_fd);
    inc->listen_fd = -1;
    return fd;
}

bool mig_transport_finish(GPid child, GError **error)
{
    return !child || spawner_wait(child, error);
}

bool mig_return_path_open(int fd, GError **error)
{
    int type;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
        g_set_error_literal(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                            "the return-path capability needs a socket (unix:, tcp: or an fd: "
                            "socket), the destination's answer comes back on it");
        return false;
    }
    return true;
}

void mig_return_path_send(int fd, bool loaded)
{
    uint8_t verdict = loaded ? MIG_RP_LOADED : MIG_RP_FAILED;
    if (send(fd, &verdict, 1, MSG_NOSIGNAL) != 1) {
        g_warning("migration: the source did not get the destination's answer: %s",
                  g_strerror(errno));
    }
}

bool mig_return_path_wait(int fd, GError **error)
{
    uint8_t verdict;
    ssize_t n;
    do {
        n = read(fd, &verdict, 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        qlite_error_errno(error, errno, "waiting for the destination's answer");
        return false;
    }
    if (n == 0 || verdict != MIG_RP_LOADED) {
        g_set_error_literal(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                            n == 0 ? "the destination closed the connection before it had loaded "
                                     "the VM"
                                   : "the destination failed to load the VM");
        return false;
    }
    return true;
}
