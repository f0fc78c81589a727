/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP server: framing of the input stream, negotiation, dispatch, replies and
 * events, as docs/qmp.md describes them. JSON itself is json-glib's.
 */
#include "monitor/qmp.h"
#include "util/error.h"
#include "util/iothread.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define QMP_MAX_TEXT      (64 << 20) /* QEMU's token limit */
#define QMP_MAX_DEPTH     1024
#define QMP_OUT_HIGH      (64 << 10) /* unread replies beyond which a client's input waits */
#define QMP_OUT_MAX       (1 << 20)  /* unread output beyond which a client is dropped */
#define QMP_MAX_CLIENTS   64         /* per monitor; more wait to be accepted */
#define QMP_MAX_MSGFDS    16         /* descriptors read from one message; the rest are dropped */
#define QMP_VERSION_MAJOR 7          /* the QEMU release whose protocol we match */
#define QMP_VERSION_MINOR 2
#define QMP_VERSION_MICRO 0

/* ---- framing: where one top-level JSON text ends ---- */

/*
 * The framer splits the stream into texts by QEMU's lexical rules, and is
 * also what makes a text safe for json-glib, whose lexer differs: it takes
 * '/' to the next '/' for a comment, reads '...' strings without escapes and
 * reads past a string's end after an odd \u escape. Were the two to
 * disagree on where strings end, brackets the framer took for string
 * contents would nest in the parser beyond the depth limit, and its
 * recursion would overflow the stack. So the text handed on holds only what
 * both read alike: strings all double-quoted ('...' rewritten, QEMU's
 * escapes in them kept), escapes as QEMU's lexer accepts them (\u with four
 * hex digits, surrogates in pairs), no '/' outside strings. A text breaking
 * these rules or the limits is refused at once with QEMU's message, and the
 * rest of it is skipped unbuffered: one error per text.
 */
struct QmpFramer {
    GString *buf;
    QmpTextFunc cb; /* during qmp_framer_feed */
    void *opaque;
    size_t depth;
    char quote;      /* 0, or the quote that opened the string: '"' or '\'' */
    unsigned escape; /* 0; 1 after a backslash; 2 + the hex digits read of \uXXXX */
    unsigned code;   /* the \u escape's value so far */
    bool want_low;   /* a high surrogate was read: "\u" and a low one must follow */
    bool scalar;     /* inside a top-level bare token */
    bool refused;    /* the text was refused: the rest of it is skipped */
};

QmpFramer *qmp_framer_new(void)
{
    QmpFramer *f = g_new0(QmpFramer, 1);
    f->buf = g_string_new(NULL);
    return f;
}

void qmp_framer_free(QmpFramer *f)
{
    if (f) {
        g_string_free(f->buf, TRUE);
        g_free(f);
    }
}

/* The text ends here: handed on unless it was refused. */
static void framer_end(QmpFramer *f)
{
    if (!f->refused) {
        f->cb(f->opaque, f->buf->str, f->buf->len, NULL);
    }
    g_string_truncate(f->buf, 0);
    f->depth = 0;
    f->quote = 0;
    f->escape = 0;
    f->want_low = false;
    f->scalar = false;
    f->refused = false;
}

static void framer_refuse(QmpFramer *f, const char *error)
{
    if (!f->refused) {
        f->cb(f->opaque, f->buf->str, f->buf->len, error);
        g_string_truncate(f->buf, 0);
        f->refused = true;
    }
}

static void framer_append(QmpFramer *f, const char *s, size_t len)
{
    if (f->refused) {
        return;
    }
    if (f->buf->len + len > QMP_MAX_TEXT) {
        framer_refuse(f, "JSON token size limit exceeded");
        return;
    }
    g_string_append_len(f->buf, s, (gssize)len);
}

static void framer_append_c(QmpFramer *f, char c)
{
    framer_append(f, &c, 1);
}

static void framer_bad_escape(QmpFramer *f)
{
    framer_refuse(f, "JSON parse error, invalid escape sequence in string");
}

/* One character of a \uXXXX escape's hex digits; false if c is none. */
static bool framer_hex_digit(QmpFramer *f, char c)
{
    if (!g_ascii_isxdigit(c)) {
        framer_refuse(f, "JSON parse error, invalid hex escape sequence in string");
        f->escape = 0;
        f->want_low = false;
        return false;
    }
    framer_append_c(f, c);
    f->code = f->code << 4 | (unsigned)g_ascii_xdigit_value(c);
    if (++f->escape == 6) {
        f->escape = 0;
        bool high = f->code >= 0xd800 && f->code <= 0xdbff;
        bool low = f->code >= 0xdc00 && f->code <= 0xdfff;
        if (f->want_low ? !low : low) {
            framer_bad_escape(f);
        }
        f->want_low = !f->want_low && high;
    }
    return true;
}

/* One character inside a string; true when it closed the string. */
static bool framer_string_char(QmpFramer *f, char c)
{
    if (f->escape >= 2 && framer_hex_digit(f, c)) {
        return false;
    }
    if (f->escape == 1) {
        f->escape = 0;
        if (f->want_low && c != 'u') {
            framer_bad_escape(f);
            f->want_low = false;
        }
        if (c == 'u') {
            framer_append(f, "\\u", 2);
            f->escape = 2;
            f->code = 0;
        } else if (c == '\'') {
            framer_append_c(f, c); /* needs no escape in "..." */
        } else if (c && strchr("\"\\/bfnrt", c)) {
            char esc[2] = {'\\', c};
            framer_append(f, esc, 2);
        } else {
            framer_bad_escape(f);
        }
        return false;
    }
    if (f->want_low && c != '\\') {
        framer_bad_escape(f);
        f->want_low = false;
    }
    if (c == '\\') {
        f->escape = 1;
    } else if (c == f->quote) {
        framer_append_c(f, '"');
        f->quote = 0;
        return true;
    } else if (c == '"') {
        framer_append(f, "\\\"", 2); /* inside '...' */
    } else {
        framer_append_c(f, c);
    }
    return false;
}

void qmp_framer_feed(QmpFramer *f, const char *data, size_t len, QmpTextFunc cb, void *opaque)
{
    f->cb = cb;
    f->opaque = opaque;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        bool space = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        if (f->quote) {
            if (framer_string_char(f, c) && f->depth == 0) {
                framer_end(f); /* a top-level string */
            }
            continue;
        }
        if (f->scalar && (space || c == '{' || c == '[')) {
            framer_end(f);
        }
        if (f->depth == 0 && !f->scalar) {
            if (space) {
                continue;
            }
            if (c == '}' || c == ']') {
                /* A stray closer is a text of its own: the parser reports it at once. */
                framer_append_c(f, c);
                framer_end(f);
                continue;
            }
            if (c != '{' && c != '[' && c != '"' && c != '\'') {
                f->scalar = true;
            }
        }
        if (f->scalar) {
            framer_append_c(f, c); /* holds no bracket, so no nesting */
            continue;
        }
        if (c == '"' || c == '\'') {
            f->quote = c;
            framer_append_c(f, '"');
            continue;
        }
        if (c == '/') {
            framer_refuse(f, "JSON parse error, stray '/'");
        }
        framer_append_c(f, c);
        if (c == '{' || c == '[') {
            if (++f->depth > QMP_MAX_DEPTH) {
                framer_refuse(f, "JSON nesting depth limit exceeded");
            }
        } else if ((c == '}' || c == ']') && --f->depth == 0) {
            framer_end(f);
        }
    }
}

/* ---- server and clients ---- */

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

/* A descriptor getfd named; the monitor keeps it until closefd or a migration takes it. */
typedef struct {
    char *name;
    int fd;
} MonitorFd;

struct QmpListener {
    QmpServer *s;
    int fd;
    char *path; /* unix socket to unlink */
    GSource *accept_src;
    GPtrArray *clients; /* QmpClient, served side by side */
    GPtrArray *fds;     /* MonitorFd: per monitor, as QEMU, kept across clients */
};

struct QmpServer {
    const QmpMachineOps *ops;
    void *opaque;
    IoThread *thread;
    GPtrArray *listeners;
    QmpClient *cur; /* whose command runs (monitor thread) */
    /* migrate-set-capabilities / -parameters (monitor thread; read atomically elsewhere) */
    gint mig_events;
    int64_t downtime_limit; /* ms */
    int64_t max_bandwidth;  /* bytes/s */
};

static void client_write(QmpClient *c, JsonNode *node);
static void client_close(QmpClient *c);
static void client_flush(QmpClient *c);
static void client_readable(void *opaque);
static void json_append(GString *out, JsonNode *node);

static gint64 qmp_now_us(void)
{
    return g_get_real_time();
}

static JsonNode *qmp_error(const char *cls, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static JsonNode *qmp_error(const char *cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *desc = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "error");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "class");
    json_builder_add_string_value(b, cls);
    json_builder_set_member_name(b, "desc");
    json_builder_add_string_value(b, desc);
    json_builder_end_object(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

/* Wraps an object in a node; takes o. */
static JsonNode *object_node(JsonObject *o)
{
    JsonNode *n = json_node_alloc();
    json_node_take_object(json_node_init(n, JSON_NODE_OBJECT), o);
    return n;
}

/* {"return": value}, {} when value is NULL; takes value. */
static JsonNode *qmp_return(JsonNode *value)
{
    JsonObject *o = json_object_new();
    json_object_set_member(o, "return", value ? value : object_node(json_object_new()));
    return object_node(o);
}

/* ---- events ---- */

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
    return object_node(o);
}

static void broadcast(QmpServer *s, JsonNode *event)
{
    /* Events before negotiation are dropped, not queued (as QEMU). */
    for (guint i = 0; i < s->listeners->len; i++) {
        QmpListener *l = g_ptr_array_index(s->listeners, i);
        for (guint j = 0; j < l->clients->len; j++) {
            QmpClient *c = g_ptr_array_index(l->clients, j);
            if (c->negotiated && !c->closing) {
                client_write(c, event);
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

/* ---- commands ---- */

typedef JsonNode *(*QmpHandler)(QmpServer *s, JsonObject *args);

typedef struct {
    const char *name;
    QmpHandler fn;
    const char *const *params;   /* accepted argument names, NULL-terminated */
    const char *const *required; /* those that must be there, of type string */
} QmpCommand;

static JsonNode *cmd_query_version(QmpServer *s, JsonObject *args)
{
    JsonObject *q = json_object_new();
    json_object_set_int_member(q, "micro", QMP_VERSION_MICRO);
    json_object_set_int_member(q, "minor", QMP_VERSION_MINOR);
    json_object_set_int_member(q, "major", QMP_VERSION_MAJOR);
    JsonObject *v = json_object_new();
    json_object_set_object_member(v, "qemu", q);
    json_object_set_string_member(v, "package", "qlite " QLITE_VERSION);
    return qmp_return(object_node(v));
}

static JsonNode *cmd_query_status(QmpServer *s, JsonObject *args)
{
    const char *st = s->ops->status(s->opaque);
    /* QEMU's member order. */
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "status", st);
    json_object_set_boolean_member(o, "singlestep", FALSE);
    json_object_set_boolean_member(o, "running", strcmp(st, "running") == 0);
    return qmp_return(object_node(o));
}

static JsonNode *cmd_query_name(QmpServer *s, JsonObject *args)
{
    JsonObject *o = json_object_new();
    const char *name = s->ops->name(s->opaque);
    if (name) {
        json_object_set_string_member(o, "name", name);
    }
    return qmp_return(object_node(o));
}

static JsonNode *cmd_query_kvm(QmpServer *s, JsonObject *args)
{
    JsonObject *o = json_object_new();
    json_object_set_boolean_member(o, "enabled", TRUE);
    json_object_set_boolean_member(o, "present", TRUE);
    return qmp_return(object_node(o));
}

static JsonNode *cmd_query_cpus_fast(QmpServer *s, JsonObject *args)
{
    QmpCpuInfo cpus[256];
    unsigned n = MIN(s->ops->cpus(s->opaque, cpus, G_N_ELEMENTS(cpus)), G_N_ELEMENTS(cpus));
    JsonArray *a = json_array_new();
    for (unsigned i = 0; i < n; i++) {
        JsonObject *props = json_object_new();
        json_object_set_int_member(props, "core-id", cpus[i].index);
        json_object_set_int_member(props, "thread-id", 0);
        json_object_set_int_member(props, "socket-id", 0);
        JsonObject *o = json_object_new(); /* QEMU's member order */
        json_object_set_int_member(o, "thread-id", cpus[i].thread_id);
        json_object_set_object_member(o, "props", props);
        g_autofree char *path = g_strdup_printf("/machine/unattached/device[%u]", cpus[i].index);
        json_object_set_string_member(o, "qom-path", path);
        json_object_set_int_member(o, "cpu-index", cpus[i].index);
        json_object_set_string_member(o, "target", "x86_64");
        json_array_add_object_element(a, o);
    }
    JsonNode *node = json_node_alloc();
    json_node_take_array(json_node_init(node, JSON_NODE_ARRAY), a);
    return qmp_return(node);
}

/* The fields a manager reads from query-block; throttling and the like are all off. */
static JsonNode *cmd_query_block(QmpServer *s, JsonObject *args)
{
    QmpBlockInfo blk[64];
    unsigned n = MIN(s->ops->blocks(s->opaque, blk, G_N_ELEMENTS(blk)), G_N_ELEMENTS(blk));
    JsonArray *a = json_array_new();
    for (unsigned i = 0; i < n; i++) {
        JsonObject *image = json_object_new();
        json_object_set_int_member(image, "virtual-size", (gint64)blk[i].size);
        json_object_set_string_member(image, "filename", blk[i].file);
        const char *format = blk[i].format ? blk[i].format : "raw";
        json_object_set_string_member(image, "format", format);
        JsonObject *cache = json_object_new();
        json_object_set_boolean_member(cache, "no-flush", blk[i].cache.no_flush);
        json_object_set_boolean_member(cache, "direct", blk[i].cache.direct);
        json_object_set_boolean_member(cache, "writeback", blk[i].cache.writeback);
        JsonObject *ins = json_object_new();
        json_object_set_string_member(ins, "detect_zeroes", "off");
        json_object_set_object_member(ins, "image", image);
        json_object_set_boolean_member(ins, "ro", blk[i].readonly);
        json_object_set_int_member(ins, "backing_file_depth", blk[i].backing_depth);
        json_object_set_string_member(ins, "drv", format);
        json_object_set_boolean_member(ins, "encrypted", FALSE);
        static const char *const limits[] = {"iops_rd", "iops_wr", "iops",           "bps_wr",
                                             "bps",     "bps_rd",  "write_threshold"};
        for (size_t k = 0; k < G_N_ELEMENTS(limits); k++) {
            json_object_set_int_member(ins, limits[k], 0);
        }
        json_object_set_object_member(ins, "cache", cache);
        json_object_set_string_member(ins, "file", blk[i].file);
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "io-status", "ok");
        json_object_set_string_member(o, "device", blk[i].device);
        json_object_set_boolean_member(o, "locked", FALSE);
        json_object_set_boolean_member(o, "removable", FALSE);
        json_object_set_object_member(o, "inserted", ins);
        json_object_set_string_member(o, "type", "unknown");
        json_array_add_object_element(a, o);
    }
    JsonNode *node = json_node_alloc();
    json_node_take_array(json_node_init(node, JSON_NODE_ARRAY), a);
    return qmp_return(node);
}

/* No device has an id qlite could unplug by (no hotplug): every id is unknown. */
static JsonNode *cmd_device_del(QmpServer *s, JsonObject *args)
{
    return qmp_error("DeviceNotFound", "Device '%s' not found",
                     json_object_get_string_member(args, "id"));
}

static JsonNode *cmd_stop(QmpServer *s, JsonObject *args)
{
    s->ops->stop(s->opaque);
    return qmp_return(NULL);
}

static JsonNode *cmd_cont(QmpServer *s, JsonObject *args)
{
    g_autoptr(GError) err = NULL;
    if (!s->ops->cont(s->opaque, &err)) {
        return qmp_error("GenericError", "%s", err->message);
    }
    return qmp_return(NULL);
}

static JsonNode *cmd_system_reset(QmpServer *s, JsonObject *args)
{
    s->ops->system_reset(s->opaque);
    return qmp_return(NULL);
}

static JsonNode *cmd_system_powerdown(QmpServer *s, JsonObject *args)
{
    s->ops->system_powerdown(s->opaque);
    return qmp_return(NULL);
}

static JsonNode *cmd_quit(QmpServer *s, JsonObject *args)
{
    s->ops->quit(s->opaque);
    return qmp_return(NULL);
}

static JsonNode *string_return(const char *text)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(n, text);
    return qmp_return(n);
}

/*
 * The human monitor, the few commands managers send through QMP; output as
 * QEMU's, CRLF line ends. Anything else gets QEMU's "unknown command" text.
 */
static JsonNode *cmd_hmp(QmpServer *s, JsonObject *args)
{
    g_autofree char *line =
        g_strstrip(g_strdup(json_object_get_string_member(args, "command-line")));
    if (!*line) {
        return string_return("");
    }
    if (strcmp(line, "info status") == 0) {
        const char *st = s->ops->status(s->opaque);
        g_autofree char *text = g_strdup_printf(
            "VM status: %s%s%s%s\r\n", strcmp(st, "running") == 0 ? "running" : "paused",
            strcmp(st, "running") && strcmp(st, "paused") ? " (" : "",
            strcmp(st, "running") && strcmp(st, "paused") ? st : "",
            strcmp(st, "running") && strcmp(st, "paused") ? ")" : "");
        return string_return(text);
    }
    if (strcmp(line, "info version") == 0) {
        g_autofree char *text =
            g_strdup_printf("%d.%d.%d%s\r\n", QMP_VERSION_MAJOR, QMP_VERSION_MINOR,
                            QMP_VERSION_MICRO, "qlite " QLITE_VERSION);
        return string_return(text);
    }
    if (strcmp(line, "stop") == 0) {
        s->ops->stop(s->opaque);
    } else if (strcmp(line, "cont") == 0 || strcmp(line, "c") == 0) {
        g_autoptr(GError) err = NULL;
        if (!s->ops->cont(s->opaque, &err)) {
            g_autofree char *text = g_strdup_printf("Error: %s\r\n", err->message);
            return string_return(text);
        }
    } else if (strcmp(line, "system_reset") == 0) {
        s->ops->system_reset(s->opaque);
    } else if (strcmp(line, "system_powerdown") == 0) {
        s->ops->system_powerdown(s->opaque);
    } else if (strcmp(line, "quit") == 0 || strcmp(line, "q") == 0) {
        s->ops->quit(s->opaque);
    } else {
        g_autofree char *text = g_strdup_printf("unknown command: '%s'\r\n", line);
        return string_return(text);
    }
    return string_return("");
}

/* ---- descriptors passed over the socket: getfd, closefd, fd:NAME ---- */

static void monitor_fd_free(gpointer p)
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
static int monitor_fd_take(QmpServer *s, const char *name)
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

static JsonNode *cmd_getfd(QmpServer *s, JsonObject *args)
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

static JsonNode *cmd_closefd(QmpServer *s, JsonObject *args)
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
    *fd = monitor_fd_take(s, uri + 3);
    if (*fd < 0) {
        *error =
            qmp_error("GenericError", "File descriptor named '%s' has not been found", uri + 3);
        return false;
    }
    return true;
}

/* An optional boolean argument; false when absent. */
static bool bool_arg(JsonObject *args, const char *name, bool *out, JsonNode **error)
{
    JsonNode *v = json_object_get_member(args, name);
    *out = false;
    if (!v) {
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_BOOLEAN) {
        *error =
            qmp_error("GenericError", "Invalid parameter type for '%s', expected: boolean", name);
        return false;
    }
    *out = json_node_get_boolean(v);
    return true;
}

static JsonNode *cmd_migrate(QmpServer *s, JsonObject *args)
{
    static const char *const flags[] = {"blk", "inc", "detach", "resume"};
    bool on[G_N_ELEMENTS(flags)];
    JsonNode *reply = NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
        if (!bool_arg(args, flags[i], &on[i], &reply)) {
            return reply;
        }
    }
    if (on[3]) { /* there is no postcopy, so never a paused one */
        return qmp_error("GenericError", "Cannot resume if there is no paused migration");
    }
    if (on[0] || on[1]) {
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

static JsonNode *cmd_migrate_incoming(QmpServer *s, JsonObject *args)
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

static JsonNode *cmd_migrate_cancel(QmpServer *s, JsonObject *args)
{
    s->ops->migrate_cancel(s->opaque);
    return qmp_return(NULL);
}

static JsonNode *cmd_query_migrate(QmpServer *s, JsonObject *args)
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
    }
    return qmp_return(object_node(o));
}

void qmp_server_migration_event(QmpServer *s, const char *status)
{
    if (s && g_atomic_int_get(&s->mig_events)) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "status", status);
        qmp_server_event(s, "MIGRATION", object_node(o));
    }
}

void qmp_server_migration_pass_event(QmpServer *s, uint64_t pass)
{
    if (s && g_atomic_int_get(&s->mig_events)) {
        JsonObject *o = json_object_new();
        json_object_set_int_member(o, "pass", (gint64)pass);
        qmp_server_event(s, "MIGRATION_PASS", object_node(o));
    }
}

void qmp_server_migration_params(QmpServer *s, int64_t *downtime_limit, int64_t *max_bandwidth)
{
    *downtime_limit =
        s ? __atomic_load_n(&s->downtime_limit, __ATOMIC_RELAXED) : QMP_DEFAULT_DOWNTIME_LIMIT;
    *max_bandwidth =
        s ? __atomic_load_n(&s->max_bandwidth, __ATOMIC_RELAXED) : QMP_DEFAULT_MAX_BANDWIDTH;
}

/* migrate-set-capabilities: "events" is the one qlite has; others are refused. */
static JsonNode *cmd_migrate_set_capabilities(QmpServer *s, JsonObject *args)
{
    JsonNode *list = json_object_get_member(args, "capabilities");
    if (!list) {
        return qmp_error("GenericError", "Parameter 'capabilities' is missing");
    }
    if (!JSON_NODE_HOLDS_ARRAY(list)) {
        return qmp_error("GenericError",
                         "Invalid parameter type for 'capabilities', expected: array");
    }
    JsonArray *a = json_node_get_array(list);
    guint n = json_array_get_length(a);
    /* Every element checked (as QEMU names them, capabilities[i].member) before any applies. */
    for (guint i = 0; i < n; i++) {
        JsonNode *e = json_array_get_element(a, i);
        if (!JSON_NODE_HOLDS_OBJECT(e)) {
            return qmp_error("GenericError",
                             "Invalid parameter type for 'capabilities[%u]', expected: object", i);
        }
        JsonObject *c = json_node_get_object(e);
        JsonNode *name = json_object_get_member(c, "capability");
        JsonNode *state = json_object_get_member(c, "state");
        if (!name) {
            return qmp_error("GenericError", "Parameter 'capabilities[%u].capability' is missing",
                             i);
        }
        if (!JSON_NODE_HOLDS_VALUE(name) || json_node_get_value_type(name) != G_TYPE_STRING) {
            return qmp_error("GenericError",
                             "Invalid parameter type for 'capabilities[%u].capability', "
                             "expected: string",
                             i);
        }
        if (!state) {
            return qmp_error("GenericError", "Parameter 'capabilities[%u].state' is missing", i);
        }
        if (!JSON_NODE_HOLDS_VALUE(state) || json_node_get_value_type(state) != G_TYPE_BOOLEAN) {
            return qmp_error("GenericError",
                             "Invalid parameter type for 'capabilities[%u].state', expected: "
                             "boolean",
                             i);
        }
        if (strcmp(json_node_get_string(name), "events") != 0) {
            return qmp_error("GenericError", "Capability '%s' is not supported by qlite",
                             json_node_get_string(name));
        }
    }
    for (guint i = 0; i < n; i++) {
        JsonObject *c = json_array_get_object_element(a, i);
        g_atomic_int_set(&s->mig_events, json_object_get_boolean_member(c, "state"));
    }
    return qmp_return(NULL);
}

static JsonNode *cmd_query_migrate_capabilities(QmpServer *s, JsonObject *args)
{
    JsonObject *c = json_object_new();
    json_object_set_string_member(c, "capability", "events");
    json_object_set_boolean_member(c, "state", g_atomic_int_get(&s->mig_events));
    JsonArray *a = json_array_new();
    json_array_add_object_element(a, c);
    JsonNode *n = json_node_alloc();
    json_node_take_array(json_node_init(n, JSON_NODE_ARRAY), a);
    return qmp_return(n);
}

/* downtime-limit (ms) and max-bandwidth (bytes/s), kept for query-migrate-parameters. */
static JsonNode *cmd_migrate_set_parameters(QmpServer *s, JsonObject *args)
{
    static const char *const names[] = {"downtime-limit", "max-bandwidth"};
    int64_t *fields[] = {&s->downtime_limit, &s->max_bandwidth};
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        JsonNode *v = json_object_get_member(args, names[i]);
        if (!v) {
            continue;
        }
        if (json_node_get_value_type(v) != G_TYPE_INT64 || json_node_get_int(v) < 0) {
            return qmp_error("GenericError", "Parameter '%s' expects a non-negative integer",
                             names[i]);
        }
        __atomic_store_n(fields[i], json_node_get_int(v), __ATOMIC_RELAXED);
    }
    return qmp_return(NULL);
}

static JsonNode *cmd_query_migrate_parameters(QmpServer *s, JsonObject *args)
{
    JsonObject *o = json_object_new();
    json_object_set_int_member(o, "downtime-limit", s->downtime_limit);
    json_object_set_int_member(o, "max-bandwidth", s->max_bandwidth);
    return qmp_return(object_node(o));
}

static JsonNode *cmd_query_commands(QmpServer *s, JsonObject *args);

static const char *const no_params[] = {NULL};
static const char *const hmp_params[] = {"command-line", "cpu-index", NULL};
static const char *const hmp_required[] = {"command-line", NULL};
static const char *const id_param[] = {"id", NULL};
static const char *const uri_param[] = {"uri", NULL};
static const char *const migrate_params[] = {"uri", "blk", "inc", "detach", "resume", NULL};
static const char *const caps_param[] = {"capabilities", NULL};
static const char *const fdname_param[] = {"fdname", NULL};
static const char *const mig_parameters[] = {"downtime-limit", "max-bandwidth", NULL};

static const QmpCommand qmp_commands[] = {
    {"qmp_capabilities", NULL, (const char *const[]){"enable", NULL}, no_params},
    {"query-version", cmd_query_version, no_params, no_params},
    {"query-commands", cmd_query_commands, no_params, no_params},
    {"query-status", cmd_query_status, no_params, no_params},
    {"query-name", cmd_query_name, no_params, no_params},
    {"query-kvm", cmd_query_kvm, no_params, no_params},
    {"query-cpus-fast", cmd_query_cpus_fast, no_params, no_params},
    {"query-block", cmd_query_block, no_params, no_params},
    {"device_del", cmd_device_del, id_param, id_param},
    {"stop", cmd_stop, no_params, no_params},
    {"cont", cmd_cont, no_params, no_params},
    {"system_reset", cmd_system_reset, no_params, no_params},
    {"system_powerdown", cmd_system_powerdown, no_params, no_params},
    {"quit", cmd_quit, no_params, no_params},
    {"human-monitor-command", cmd_hmp, hmp_params, hmp_required},
    {"getfd", cmd_getfd, fdname_param, fdname_param},
    {"closefd", cmd_closefd, fdname_param, fdname_param},
    {"migrate", cmd_migrate, migrate_params, uri_param},
    {"migrate-incoming", cmd_migrate_incoming, uri_param, uri_param},
    {"migrate_cancel", cmd_migrate_cancel, no_params, no_params},
    {"query-migrate", cmd_query_migrate, no_params, no_params},
    {"migrate-set-capabilities", cmd_migrate_set_capabilities, caps_param, no_params},
    {"query-migrate-capabilities", cmd_query_migrate_capabilities, no_params, no_params},
    {"migrate-set-parameters", cmd_migrate_set_parameters, mig_parameters, no_params},
    {"query-migrate-parameters", cmd_query_migrate_parameters, no_params, no_params},
};

static JsonNode *cmd_query_commands(QmpServer *s, JsonObject *args)
{
    JsonArray *a = json_array_new();
    for (size_t i = 0; i < G_N_ELEMENTS(qmp_commands); i++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", qmp_commands[i].name);
        json_array_add_object_element(a, o);
    }
    JsonNode *n = json_node_alloc();
    json_node_take_array(json_node_init(n, JSON_NODE_ARRAY), a);
    return qmp_return(n);
}

static const QmpCommand *find_command(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(qmp_commands); i++) {
        if (strcmp(qmp_commands[i].name, name) == 0) {
            return &qmp_commands[i];
        }
    }
    return NULL;
}

static bool param_known(const QmpCommand *c, const char *name)
{
    for (const char *const *p = c->params; *p; p++) {
        if (strcmp(*p, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Checks the request's shape and runs it; returns the reply without the id. */
static JsonNode *dispatch(QmpClient *c, JsonObject *req)
{
    static const char *const members[] = {"execute", "arguments", "id", "exec-oob"};
    g_autoptr(GList) names = json_object_get_members(req);
    for (GList *m = names; m; m = m->next) {
        bool known = false;
        for (size_t i = 0; i < G_N_ELEMENTS(members); i++) {
            known |= strcmp(m->data, members[i]) == 0;
        }
        if (!known) {
            return qmp_error("GenericError", "QMP input member '%s' is unexpected",
                             (const char *)m->data);
        }
    }
    JsonNode *exec = json_object_get_member(req, "execute");
    JsonNode *oob = json_object_get_member(req, "exec-oob");
    if (!exec && oob && c->oob && JSON_NODE_HOLDS_VALUE(oob) &&
        json_node_get_value_type(oob) == G_TYPE_STRING) {
        /* No command of ours runs out of band. */
        return qmp_error("GenericError", "The command %s does not support OOB",
                         json_node_get_string(oob));
    }
    if (!exec) {
        return qmp_error("GenericError", "QMP input lacks member 'execute'");
    }
    if (!JSON_NODE_HOLDS_VALUE(exec) || json_node_get_value_type(exec) != G_TYPE_STRING) {
        return qmp_error("GenericError", "QMP input member 'execute' must be a string");
    }
    JsonNode *argn = json_object_get_member(req, "arguments");
    if (argn && !JSON_NODE_HOLDS_OBJECT(argn)) {
        return qmp_error("GenericError", "QMP input member 'arguments' must be an object");
    }
    const char *name = json_node_get_string(exec);
    const QmpCommand *cmd = find_command(name);
    if (!c->negotiated && (!cmd || cmd->fn)) {
        return qmp_error("CommandNotFound",
                         "Expecting capabilities negotiation with 'qmp_capabilities'");
    }
    if (!cmd) {
        return qmp_error("CommandNotFound", "The command %s has not been found", name);
    }
    /* No arguments reads as none given: every handler gets an object. */
    g_autoptr(JsonObject) none = argn ? NULL : json_object_new();
    JsonObject *args = argn ? json_node_get_object(argn) : none;
    /* As QEMU: a missing argument is reported before an unexpected one. */
    for (const char *const *r = cmd->required; *r; r++) {
        JsonNode *v = args ? json_object_get_member(args, *r) : NULL;
        if (!v) {
            return qmp_error("GenericError", "Parameter '%s' is missing", *r);
        }
        if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING) {
            return qmp_error("GenericError", "Invalid parameter type for '%s', expected: string",
                             *r);
        }
    }
    if (args) {
        g_autoptr(GList) keys = json_object_get_members(args);
        for (GList *k = keys; k; k = k->next) {
            if (!param_known(cmd, k->data)) {
                return qmp_error("GenericError", "Parameter '%s' is unexpected",
                                 (const char *)k->data);
            }
        }
    }
    if (!cmd->fn) { /* qmp_capabilities */
        JsonNode *enable = args ? json_object_get_member(args, "enable") : NULL;
        if (enable && !JSON_NODE_HOLDS_ARRAY(enable)) {
            return qmp_error("GenericError",
                             "Invalid parameter type for 'enable', expected: array");
        }
        for (guint i = 0; enable && i < json_array_get_length(json_node_get_array(enable)); i++) {
            JsonNode *cap = json_array_get_element(json_node_get_array(enable), i);
            if (!JSON_NODE_HOLDS_VALUE(cap) || json_node_get_value_type(cap) != G_TYPE_STRING ||
                strcmp(json_node_get_string(cap), "oob") != 0) {
                /* QEMU's message names 'null', not 'enable'. */
                return qmp_error("GenericError", "Parameter 'null' does not accept value '%s'",
                                 JSON_NODE_HOLDS_VALUE(cap) &&
                                         json_node_get_value_type(cap) == G_TYPE_STRING
                                     ? json_node_get_string(cap)
                                     : "");
            }
        }
        if (c->negotiated) {
            return qmp_error("CommandNotFound",
                             "Capabilities negotiation is already complete, command ignored");
        }
        c->negotiated = true;
        c->oob = enable && json_array_get_length(json_node_get_array(enable)) > 0;
        return qmp_return(NULL);
    }
    c->l->s->cur = c;
    JsonNode *reply = cmd->fn(c->l->s, args);
    c->l->s->cur = NULL;
    return reply;
}

/*
 * json-glib keeps integers as int64; QEMU echoes ids up to 2^64 as sent. For
 * an unsigned integer id above INT64_MAX, find its digits in the request text
 * (the top-level "id" member) so the reply can carry them unchanged.
 */
static char *big_integer_id(const char *text, size_t len)
{
    unsigned depth = 0;
    char quote = 0;
    bool escape = false;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (quote) {
            if (escape) {
                escape = false;
            } else if (ch == '\\') {
                escape = true;
            } else if (ch == quote) {
                quote = 0;
            }
            continue;
        }
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            depth--;
        } else if (ch == '"' || ch == '\'') {
            bool key = depth == 1 && i + 4 <= len && text[i + 1] == 'i' && text[i + 2] == 'd' &&
                       text[i + 3] == ch;
            if (!key) {
                quote = ch;
                continue;
            }
            size_t j = i + 4;
            while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' ||
                               text[j] == '\n' || text[j] == ':')) {
                j++;
            }
            size_t k = j;
            while (k < len && g_ascii_isdigit(text[k])) {
                k++;
            }
            g_autofree char *digits = g_strndup(text + j, k - j);
            guint64 v;
            if (k > j && g_ascii_string_to_unsigned(digits, 10, 0, G_MAXUINT64, &v, NULL) &&
                v > G_MAXINT64) {
                return g_steal_pointer(&digits);
            }
            return NULL;
        }
    }
    return NULL;
}

/*
 * Whether text has a \u0000 escape (a backslash that is not itself escaped,
 * then u0000). json-glib turns it into a NUL that cuts the C string short:
 * "query-name\u0000-x" would run query-name. QEMU refuses it; so do we.
 */
static bool has_nul_escape(const char *text, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++) {
        if (text[i] != '\\') {
            continue;
        }
        if (text[i + 1] == 'u' && memcmp(text + i + 2, "0000", 4) == 0) {
            return true;
        }
        i++; /* the escaped character, a backslash included */
    }
    return false;
}

static void client_handle_text(void *opaque, const char *text, size_t len, const char *refusal)
{
    QmpClient *c = opaque;
    if (c->closing) {
        return;
    }
    g_autoptr(JsonParser) p = json_parser_new_immutable();
    g_autoptr(GError) err = NULL;
    if (refusal) {
        g_autoptr(JsonNode) e = qmp_error("GenericError", "%s", refusal);
        client_write(c, e);
        return;
    }
    if (has_nul_escape(text, len)) {
        g_autoptr(JsonNode) e =
            qmp_error("GenericError", "JSON parse error, %s", "\\u0000 is not supported");
        client_write(c, e);
        return;
    }
    if (!json_parser_load_from_data(p, text, (gssize)len, &err)) {
        g_autoptr(JsonNode) e = qmp_error("GenericError", "JSON parse error, %s", err->message);
        client_write(c, e);
        return;
    }
    JsonNode *root = json_parser_get_root(p);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_autoptr(JsonNode) e = qmp_error("GenericError", "QMP input must be a JSON object");
        client_write(c, e);
        return;
    }
    JsonObject *req = json_node_get_object(root);
    g_autoptr(JsonNode) reply = dispatch(c, req);
    JsonNode *id = json_object_get_member(req, "id");
    JsonObject *r = json_node_get_object(reply);
    g_autofree char *big =
        id && JSON_NODE_HOLDS_VALUE(id) && json_node_get_value_type(id) == G_TYPE_INT64
            ? big_integer_id(text, len)
            : NULL;
    if (big) {
        /* Spliced as text: {"id": N, "error": ...} or {"return": ..., "id": N}. */
        bool error = json_object_has_member(r, "error");
        GString *out = g_string_new(NULL);
        json_append(out, reply);
        g_string_truncate(out, out->len - 1);
        g_autofree char *line = error ? g_strdup_printf("{\"id\": %s, %s}", big, out->str + 1)
                                      : g_strdup_printf("%s, \"id\": %s}", out->str, big);
        g_string_free(out, TRUE);
        g_string_append(c->out, line);
        g_string_append(c->out, "\r\n");
        client_flush(c);
        return;
    }
    if (id && json_object_has_member(r, "error")) {
        /* QEMU's member order: {"id": ..., "error": ...} but {"return": ..., "id": ...}. */
        JsonObject *o = json_object_new();
        json_object_set_member(o, "id", json_node_copy(id));
        json_object_set_member(o, "error", json_node_copy(json_object_get_member(r, "error")));
        g_autoptr(JsonNode) ordered = object_node(o);
        client_write(c, ordered);
        return;
    }
    if (id) {
        json_object_set_member(r, "id", json_node_copy(id));
    }
    client_write(c, reply);
}

/* ---- socket I/O on the monitor thread ---- */

static gboolean client_out_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpClient *c = opaque;
    client_flush(c);
    if (c->closing && c->out->len == 0) {
        client_close(c); /* also destroys this source: glib allows that from its callback */
    }
    return G_SOURCE_CONTINUE;
}

/* Sends what it can without blocking; the rest waits for POLLOUT. Never frees c. */
static void client_flush(QmpClient *c)
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
 * QEMU's JSON formatting, which clients may compare byte for byte: ", " and
 * ": " separators, members in insertion order, non-ASCII and control
 * characters as \u escapes.
 */
static void json_append_string(GString *out, const char *str)
{
    g_string_append_c(out, '"');
    for (const char *p = str; *p; p = g_utf8_next_char(p)) {
        gunichar ch = g_utf8_get_char_validated(p, -1);
        /* JSON's two-character escapes; ch is never 0 here (the loop ends there). */
        static const char plain[] = "\"\\\b\f\n\r\t", escaped[] = "\"\\bfnrt";
        const char *hit = ch < 0x80 ? strchr(plain, (int)ch) : NULL;
        if (hit) {
            g_string_append_c(out, '\\');
            g_string_append_c(out, escaped[hit - plain]);
            continue;
        }
        if (ch == (gunichar)-1 || ch == (gunichar)-2) {
            g_string_append(out, "\\ufffd"); /* invalid UTF-8 */
            g_string_append_c(out, '"');
            return;
        }
        if (ch >= 0x20 && ch < 0x7f) {
            g_string_append_c(out, (char)ch);
        } else if (ch < 0x10000) {
            g_string_append_printf(out, "\\u%04x", ch);
        } else {
            ch -= 0x10000;
            g_string_append_printf(out, "\\u%04x\\u%04x", 0xd800 | (ch >> 10),
                                   0xdc00 | (ch & 0x3ff));
        }
    }
    g_string_append_c(out, '"');
}

static void json_append(GString *out, JsonNode *node)
{
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT: {
        JsonObject *o = json_node_get_object(node);
        g_autoptr(GList) members = json_object_get_members(o);
        g_string_append_c(out, '{');
        for (GList *m = members; m; m = m->next) {
            json_append_string(out, m->data);
            g_string_append(out, ": ");
            json_append(out, json_object_get_member(o, m->data));
            if (m->next) {
                g_string_append(out, ", ");
            }
        }
        g_string_append_c(out, '}');
        break;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *a = json_node_get_array(node);
        g_string_append_c(out, '[');
        for (guint i = 0; i < json_array_get_length(a); i++) {
            if (i) {
                g_string_append(out, ", ");
            }
            json_append(out, json_array_get_element(a, i));
        }
        g_string_append_c(out, ']');
        break;
    }
    case JSON_NODE_NULL:
        g_string_append(out, "null");
        break;
    case JSON_NODE_VALUE:
        switch (json_node_get_value_type(node)) {
        case G_TYPE_INT64:
            g_string_append_printf(out, "%" G_GINT64_FORMAT, json_node_get_int(node));
            break;
        case G_TYPE_DOUBLE: {
            char buf[G_ASCII_DTOSTR_BUF_SIZE];
            g_string_append(out, g_ascii_dtostr(buf, sizeof(buf), json_node_get_double(node)));
            break;
        }
        case G_TYPE_BOOLEAN:
            g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
            break;
        default:
            json_append_string(out, json_node_get_string(node));
            break;
        }
        break;
    }
}

/*
 * A client that leaves more than QMP_OUT_MAX unread (events keep coming
 * while it reads nothing) is disconnected, its output dropped: memory stays
 * bounded. Its socket is shut down, so reading it ends in client_close.
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

static void client_write(QmpClient *c, JsonNode *node)
{
    if (c->closing) {
        return;
    }
    json_append(c->out, node);
    g_string_append(c->out, "\r\n");
    client_flush(c);
    if (c->out->len > QMP_OUT_MAX) {
        client_drop(c);
    }
}

static void listener_watch(QmpListener *l);

static void client_close(QmpClient *c)
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
    listener_watch(l); /* below the limit again: the next client may come in */
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
        client_close(c);
        return;
    }
    client_keep_fds(c, &msg);
    qmp_framer_feed(c->framer, buf, (size_t)n, client_handle_text, c);
    if (c->closing && c->out->len == 0) {
        client_close(c);
    }
}

static JsonNode *greeting(void)
{
    g_autoptr(JsonNode) v = cmd_query_version(NULL, NULL);
    JsonNode *version = json_node_copy(json_object_get_member(json_node_get_object(v), "return"));
    JsonObject *qmp = json_object_new();
    json_object_set_member(qmp, "version", version);
    JsonArray *caps = json_array_new();
    json_array_add_string_element(caps, "oob");
    json_object_set_array_member(qmp, "capabilities", caps);
    JsonObject *o = json_object_new();
    json_object_set_object_member(o, "QMP", qmp);
    return object_node(o);
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
    client_write(c, g);
}

static void listener_watch(QmpListener *l)
{
    if (!l->accept_src && l->clients->len < QMP_MAX_CLIENTS) {
        l->accept_src = iothread_add_fd(l->s->thread, l->fd, listener_accept, l);
    }
}

/* ---- set-up ---- */

QmpServer *qmp_server_new(const QmpMachineOps *ops, void *opaque, GError **error)
{
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
    l->fds = g_ptr_array_new_with_free_func(monitor_fd_free);
    l->clients = g_ptr_array_new();
    g_ptr_array_add(a->s->listeners, l);
    listener_watch(l);
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
            client_flush(c);
            client_close(c);
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
