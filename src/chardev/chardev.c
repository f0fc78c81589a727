/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "chardev/chardev.h"
#include "util/error.h"
#include "util/fdset.h"
#include "util/opts.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <glib-unix.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define CHARDEV_ESCAPE 0x01 /* Ctrl-a, as QEMU's -nographic */

typedef enum {
    CHARDEV_NULL,
    CHARDEV_STDIO,
    CHARDEV_FILE,
    CHARDEV_PTY,
    CHARDEV_UNIX,
} ChardevKind;

struct Chardev {
    ChardevKind kind;
    char *label;
    GMainContext *ctx;
    int out_fd;    /* where output goes; -1 drops it */
    int in_fd;     /* where input comes from; -1 for none */
    int listen_fd; /* unix server socket */
    char *path;    /* unix socket path, unlinked at exit; a pty's slave name */
    GMutex out_lock;
    GSource *in_source;
    GSource *listen_source;
    gint input_stalled; /* the frontend was full: in_source removed */
    bool escape_pending;
    ChardevFrontend fe;
    ChardevQuitFn quit;
    void *quit_opaque;
};

static struct termios saved_tty;
static bool tty_saved;

void chardev_restore_terminal(void)
{
    if (tty_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
    }
}

/* Raw input, but keep ISIG so Ctrl-C still ends qlite, and OPOST for output. */
static void stdio_set_raw(void)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) < 0) {
        return;
    }
    tty_saved = true;
    atexit(chardev_restore_terminal);
    struct termios t = saved_tty;
    t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag |= OPOST;
    t.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
    t.c_cflag &= ~(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

static void chardev_deliver(Chardev *chr, const uint8_t *buf, size_t len)
{
    if (chr->fe.receive && len) {
        chr->fe.receive(chr->fe.opaque, buf, len);
    }
}

static void stdio_help(void)
{
    static const char help[] = "\r\nC-a h    print this help\r\n"
                               "C-a x    exit qlite\r\n"
                               "C-a C-a  sends C-a\r\n";
    if (write(STDOUT_FILENO, help, sizeof(help) - 1) < 0) {
        /* nothing to do about a broken terminal */
    }
}

/* Handles the Ctrl-a escapes of stdio; returns how many bytes of buf remain for the guest. */
static size_t stdio_filter(Chardev *chr, uint8_t *buf, size_t len)
{
    size_t out = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];
        if (chr->escape_pending) {
            chr->escape_pending = false;
            if (c == 'x') {
                static const char msg[] = "qlite: terminating on user request\r\n";
                if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
                    /* ignored */
                }
                if (chr->quit) {
                    chr->quit(chr->quit_opaque);
                }
                continue;
            }
            if (c == 'h' || c == '?') {
                stdio_help();
                continue;
            }
            if (c != CHARDEV_ESCAPE) {
                continue; /* unknown escape: dropped, as QEMU does */
            }
        } else if (c == CHARDEV_ESCAPE) {
            chr->escape_pending = true;
            continue;
        }
        buf[out++] = c;
    }
    return out;
}

static void chardev_stop_input(Chardev *chr)
{
    if (chr->in_source) {
        g_source_destroy(chr->in_source);
        g_source_unref(chr->in_source);
        chr->in_source = NULL;
    }
}

static void chardev_start_input(Chardev *chr);

static void chardev_client_gone(Chardev *chr)
{
    chardev_stop_input(chr);
    if (chr->kind == CHARDEV_UNIX && chr->in_fd >= 0) {
        g_mutex_lock(&chr->out_lock);
        close(chr->in_fd);
        chr->in_fd = chr->out_fd = -1;
        g_mutex_unlock(&chr->out_lock);
    } else {
        chr->in_fd = -1; /* EOF on stdin: keep running without input */
    }
}

static gboolean chardev_input_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    size_t room = chr->fe.can_receive ? chr->fe.can_receive(chr->fe.opaque) : 0;
    if (room == 0) {
        /* The guest has not drained its FIFO: stop polling until it does. */
        g_atomic_int_set(&chr->input_stalled, 1);
        g_source_unref(chr->in_source);
        chr->in_source = NULL;
        return G_SOURCE_REMOVE;
    }
    uint8_t buf[256];
    ssize_t n = read(fd, buf, MIN(room, sizeof(buf)));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        g_source_unref(chr->in_source);
        chr->in_source = NULL;
        chardev_client_gone(chr);
        return G_SOURCE_REMOVE;
    }
    size_t len = (size_t)n;
    if (chr->kind == CHARDEV_STDIO) {
        len = stdio_filter(chr, buf, len);
    }
    chardev_deliver(chr, buf, len);
    return G_SOURCE_CONTINUE;
}

static void chardev_start_input(Chardev *chr)
{
    if (chr->in_fd < 0 || chr->in_source) {
        return;
    }
    g_atomic_int_set(&chr->input_stalled, 0);
    chr->in_source = g_unix_fd_source_new(chr->in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
    g_source_set_callback(chr->in_source, G_SOURCE_FUNC(chardev_input_ready), chr, NULL);
    g_source_attach(chr->in_source, chr->ctx);
}

static gboolean chardev_resume_input(gpointer opaque)
{
    Chardev *chr = opaque;
    if (g_atomic_int_get(&chr->input_stalled)) {
        chardev_start_input(chr);
    }
    return G_SOURCE_REMOVE;
}

void chardev_accept_input(Chardev *chr)
{
    if (chr && g_atomic_int_get(&chr->input_stalled)) {
        g_main_context_invoke(chr->ctx, chardev_resume_input, chr);
    }
}

static gboolean chardev_accept_client(gint fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (client < 0) {
        return G_SOURCE_CONTINUE;
    }
    if (chr->in_fd >= 0) {
        close(client); /* one client at a time, as QEMU's socket chardev */
        return G_SOURCE_CONTINUE;
    }
    g_mutex_lock(&chr->out_lock);
    chr->in_fd = chr->out_fd = client;
    g_mutex_unlock(&chr->out_lock);
    chardev_start_input(chr);
    return G_SOURCE_CONTINUE;
}

static bool chardev_open_unix(Chardev *chr, const char *spec, GError **error)
{
    g_autoptr(Opts) opts = opts_parse(spec, "path", error);
    if (!opts) {
        return false;
    }
    const char *path = opts_get(opts, "path");
    bool server, wait;
    if (!opts_get_bool(opts, "server", false, &server, error) ||
        !opts_get_bool(opts, "wait", true, &wait, error) || !opts_check_unused(opts, error)) {
        return false;
    }
    if (!path || !*path) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "unix: needs a socket path");
        return false;
    }
    if (!server) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "unix:%s: only server=on is supported",
                    path);
        return false;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "unix:%s: path too long", path);
        return false;
    }
    strcpy(sa.sun_path, path);
    chr->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (chr->listen_fd < 0) {
        qlite_error_errno(error, errno, "unix:%s: socket", path);
        return false;
    }
    unlink(path);
    if (bind(chr->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(chr->listen_fd, 1) < 0) {
        qlite_error_errno(error, errno, "unix:%s: cannot listen", path);
        return false;
    }
    chr->path = g_strdup(path);
    if (wait) {
        fprintf(stderr, "qlite: waiting for connection on: disconnected:unix:%s,server=on\n", path);
        int client = accept4(chr->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) {
            qlite_error_errno(error, errno, "unix:%s: accept", path);
            return false;
        }
        chr->in_fd = chr->out_fd = client;
    }
    chr->listen_source = g_unix_fd_source_new(chr->listen_fd, G_IO_IN);
    g_source_set_callback(chr->listen_source, G_SOURCE_FUNC(chardev_accept_client), chr, NULL);
    g_source_attach(chr->listen_source, chr->ctx);
    return true;
}

static bool chardev_open_pty(Chardev *chr, GError **error)
{
    int master, slave;
    char name[256];
    if (openpty(&master, &slave, name, NULL, NULL) < 0) {
        qlite_error_errno(error, errno, "pty: openpty");
        return false;
    }
    struct termios t;
    if (tcgetattr(slave, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(slave, TCSANOW, &t);
    }
    close(slave);
    chr->path = g_strdup(name);
    /* Nobody may be reading the pty: output is dropped rather than stalling the guest. */
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    fcntl(master, F_SETFD, FD_CLOEXEC);
    chr->in_fd = chr->out_fd = master;
    fprintf(stderr, "char device redirected to %s (label %s)\n", name, chr->label);
    return true;
}

Chardev *chardev_new(const char *spec, bool append, const char *label, GMainContext *ctx,
                     GError **error)
{
    g_autoptr(Chardev) chr = g_new0(Chardev, 1);
    chr->label = g_strdup(label);
    chr->ctx = ctx;
    chr->out_fd = chr->in_fd = chr->listen_fd = -1;
    g_mutex_init(&chr->out_lock);

    if (strcmp(spec, "null") == 0) {
        chr->kind = CHARDEV_NULL;
    } else if (strcmp(spec, "stdio") == 0) {
        chr->kind = CHARDEV_STDIO;
        chr->out_fd = STDOUT_FILENO;
        chr->in_fd = STDIN_FILENO;
        stdio_set_raw();
    } else if (g_str_has_prefix(spec, "file:")) {
        chr->kind = CHARDEV_FILE;
        const char *path = spec + 5;
        chr->out_fd = qlite_open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0666);
        if (chr->out_fd < 0) {
            qlite_error_errno(error, errno, "-serial file:%s", path);
            return NULL;
        }
    } else if (strcmp(spec, "pty") == 0) {
        chr->kind = CHARDEV_PTY;
        if (!chardev_open_pty(chr, error)) {
            return NULL;
        }
    } else if (g_str_has_prefix(spec, "unix:")) {
        chr->kind = CHARDEV_UNIX;
        if (!chardev_open_unix(chr, spec + 5, error)) {
            return NULL;
        }
    } else {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "'%s' is not a supported character device (stdio, file:PATH, pty, "
                    "unix:PATH,server=on,wait=off, null, none)",
                    spec);
        return NULL;
    }
    return g_steal_pointer(&chr);
}

void chardev_set_frontend(Chardev *chr, const ChardevFrontend *fe)
{
    chr->fe = *fe;
    chardev_start_input(chr);
}

void chardev_set_quit_handler(Chardev *chr, ChardevQuitFn fn, void *opaque)
{
    chr->quit = fn;
    chr->quit_opaque = opaque;
}

void chardev_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    g_mutex_lock(&chr->out_lock);
    while (len && chr->out_fd >= 0) {
        ssize_t n = chr->kind == CHARDEV_UNIX ? send(chr->out_fd, buf, len, MSG_NOSIGNAL)
                                              : write(chr->out_fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN && chr->kind == CHARDEV_FILE) {
            /*
             * A file may be a pipe handed in non-blocking (libvirt's to
             * virtlogd, through /dev/fdset): wait for its reader, as QEMU
             * does, rather than lose the console's bytes.
             */
            struct pollfd p = {.fd = chr->out_fd, .events = POLLOUT};
            poll(&p, 1, -1);
            continue;
        }
        if (n <= 0) {
            break; /* full pty, gone client: the console output is dropped */
        }
        buf += n;
        len -= (size_t)n;
    }
    g_mutex_unlock(&chr->out_lock);
}

void chardev_free(Chardev *chr)
{
    if (!chr) {
        return;
    }
    chardev_stop_input(chr);
    if (chr->listen_source) {
        g_source_destroy(chr->listen_source);
        g_source_unref(chr->listen_source);
    }
    if (chr->kind == CHARDEV_STDIO) {
        chardev_restore_terminal();
    } else {
        if (chr->in_fd >= 0) {
            close(chr->in_fd);
        }
        if (chr->out_fd >= 0 && chr->out_fd != chr->in_fd) {
            close(chr->out_fd);
        }
    }
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
    }
    if (chr->path && chr->kind == CHARDEV_UNIX) {
        unlink(chr->path);
    }
    g_mutex_clear(&chr->out_lock);
    g_free(chr->path);
    g_free(chr->label);
    g_free(chr);
}

char *chardev_filename(Chardev *chr)
{
    switch (chr->kind) {
    case CHARDEV_NULL:
        return g_strdup("null");
    case CHARDEV_STDIO:
        return g_strdup("stdio");
    case CHARDEV_FILE:
        return g_strdup("file");
    case CHARDEV_PTY:
        return g_strdup_printf("pty:%s", chr->path);
    case CHARDEV_UNIX:
        return g_strdup_printf("unix:%s,server=on", chr->path);
    }
    return g_strdup("");
}
