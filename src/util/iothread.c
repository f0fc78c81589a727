/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/iothread.h"
#include "util/error.h"

#include <glib-unix.h>

struct IoThread {
    char *name;
    GThread *thread;
    GMainContext *ctx;
    GMainLoop *loop;
    GMutex lock;
    GCond cond;
    bool ready;
};

typedef struct {
    void (*fn)(void *opaque);
    void *opaque;
    GMutex lock;
    GCond cond;
    bool done;
} SyncCall;

typedef struct {
    void (*cb)(void *opaque);
    void *opaque;
} FdWatch;

static gpointer iothread_main(gpointer opaque)
{
    IoThread *t = opaque;
    g_main_context_push_thread_default(t->ctx);
    g_mutex_lock(&t->lock);
    t->ready = true;
    g_cond_signal(&t->cond);
    g_mutex_unlock(&t->lock);
    g_main_loop_run(t->loop);
    g_main_context_pop_thread_default(t->ctx);
    return NULL;
}

IoThread *iothread_new(const char *name, GError **error)
{
    IoThread *t = g_new0(IoThread, 1);
    t->name = g_strdup(name);
    t->ctx = g_main_context_new();
    t->loop = g_main_loop_new(t->ctx, FALSE);
    g_mutex_init(&t->lock);
    g_cond_init(&t->cond);
    t->thread = g_thread_try_new(name, iothread_main, t, error);
    if (!t->thread) {
        g_prefix_error(error, "cannot start I/O thread %s: ", name);
        iothread_free(t);
        return NULL;
    }
    g_mutex_lock(&t->lock);
    while (!t->ready) {
        g_cond_wait(&t->cond, &t->lock);
    }
    g_mutex_unlock(&t->lock);
    return t;
}

static void iothread_stop(void *opaque)
{
    IoThread *t = opaque;
    g_main_loop_quit(t->loop);
}

void iothread_free(IoThread *t)
{
    if (!t) {
        return;
    }
    if (t->thread) {
        iothread_run_sync(t, iothread_stop, t);
        g_thread_join(t->thread);
    }
    g_main_loop_unref(t->loop);
    g_main_context_unref(t->ctx);
    g_mutex_clear(&t->lock);
    g_cond_clear(&t->cond);
    g_free(t->name);
    g_free(t);
}

GMainContext *iothread_context(IoThread *t)
{
    return t->ctx;
}

bool iothread_is_current(IoThread *t)
{
    return t->thread && g_thread_self() == t->thread;
}

static gboolean iothread_sync_dispatch(gpointer opaque)
{
    SyncCall *c = opaque;
    c->fn(c->opaque);
    g_mutex_lock(&c->lock);
    c->done = true;
    g_cond_signal(&c->cond);
    g_mutex_unlock(&c->lock);
    return G_SOURCE_REMOVE;
}

void iothread_run_sync(IoThread *t, void (*fn)(void *opaque), void *opaque)
{
    if (iothread_is_current(t)) {
        fn(opaque);
        return;
    }
    SyncCall c = {.fn = fn, .opaque = opaque};
    g_mutex_init(&c.lock);
    g_cond_init(&c.cond);
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_HIGH);
    g_source_set_callback(src, iothread_sync_dispatch, &c, NULL);
    g_source_attach(src, t->ctx);
    g_source_unref(src);
    g_mutex_lock(&c.lock);
    while (!c.done) {
        g_cond_wait(&c.cond, &c.lock);
    }
    g_mutex_unlock(&c.lock);
    g_mutex_clear(&c.lock);
    g_cond_clear(&c.cond);
}

static gboolean iothread_fd_dispatch(gint fd, GIOCondition cond, gpointer opaque)
{
    FdWatch *w = opaque;
    w->cb(w->opaque);
    return G_SOURCE_CONTINUE;
}

GSource *iothread_add_fd(IoThread *t, int fd, void (*cb)(void *opaque), void *opaque)
{
    FdWatch *w = g_new(FdWatch, 1);
    w->cb = cb;
    w->opaque = opaque;
    GSource *src = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(src, G_SOURCE_FUNC(iothread_fd_dispatch), w, g_free);
    g_source_attach(src, t->ctx);
    return src;
}

void iothread_remove_source(GSource *src)
{
    if (src) {
        g_source_destroy(src);
        g_source_unref(src);
    }
}

typedef struct {
    SandboxKind kind;
    bool ok;
    GError **error;
} SandboxCall;

static void iothread_sandbox_cb(void *opaque)
{
    SandboxCall *c = opaque;
    c->ok = sandbox_apply(c->kind, c->error);
}

bool iothread_sandbox(IoThread *t, SandboxKind kind, GError **error)
{
    SandboxCall c = {.kind = kind, .error = error};
    iothread_run_sync(t, iothread_sandbox_cb, &c);
    return c.ok;
}
