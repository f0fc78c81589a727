/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A thread that owns a GMainContext and runs its loop (QEMU's IOThread
 * pattern). A device attaches its event sources (ioeventfds, AIO completion
 * eventfd, tap fd, ...) to iothread_context(); everything those sources do
 * happens on this thread. The loop is stopped by a callback run inside it.
 */
#include "util/sandbox.h"

#include <glib.h>
#include <stdbool.h>

typedef struct IoThread IoThread;

/* Starts the thread; returns once its context is the thread default. */
IoThread *iothread_new(const char *name, GError **error);
/* Stops the loop from inside, joins the thread. Sources still attached are destroyed. */
void iothread_free(IoThread *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IoThread, iothread_free)

GMainContext *iothread_context(IoThread *t);
/* True when called on the thread itself. */
bool iothread_is_current(IoThread *t);
/*
 * Runs fn(opaque) on the thread and waits until it returned. Called on the
 * thread itself, runs fn directly. Used for control operations (device reset,
 * activation) that must not race with the thread's own work.
 */
void iothread_run_sync(IoThread *t, void (*fn)(void *opaque), void *opaque);
/* Attaches a source watching fd for input that calls cb(opaque) on the thread. */
GSource *iothread_add_fd(IoThread *t, int fd, void (*cb)(void *opaque), void *opaque);
/* Detaches and frees a source from iothread_add_fd (NULL is ignored). */
void iothread_remove_source(GSource *src);

/* Applies the seccomp filter of kind (util/sandbox.h) on the thread, waiting for it. */
bool iothread_sandbox(IoThread *t, SandboxKind kind, GError **error);
