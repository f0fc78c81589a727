/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Character backends for the serial port, named as QEMU's -serial values:
 * stdio, file:PATH, pty, unix:PATH,server=on[,wait=off], null.
 * Output is written from the caller's thread (a vCPU); input is read on the
 * given GMainContext and handed to the frontend only as fast as it takes it.
 */
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Chardev Chardev;

typedef struct ChardevFrontend {
    /* How many bytes the frontend takes now; 0 stops reading until chardev_accept_input. */
    size_t (*can_receive)(void *opaque);
    void (*receive)(void *opaque, const uint8_t *buf, size_t len);
    void *opaque;
} ChardevFrontend;

/* Called (on the context) when the user types Ctrl-a x on stdio. */
typedef void (*ChardevQuitFn)(void *opaque);

/*
 * spec: stdio, file:PATH (a /dev/fdset/N path too: util/fdset.h), pty,
 * unix:PATH,server=on[,wait=off], null. append: a file is appended to,
 * not truncated (-chardev file,append=on).
 */
Chardev *chardev_new(const char *spec, bool append, const char *label, GMainContext *ctx,
                     GError **error);
void chardev_free(Chardev *chr);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Chardev, chardev_free)

void chardev_set_frontend(Chardev *chr, const ChardevFrontend *fe);
void chardev_set_quit_handler(Chardev *chr, ChardevQuitFn fn, void *opaque);
void chardev_write(Chardev *chr, const uint8_t *buf, size_t len);
/* The frontend has room again (any thread). */
void chardev_accept_input(Chardev *chr);
/* Put the terminal back as it was (idempotent, also registered with atexit). */
void chardev_restore_terminal(void);

/* What it is, as QEMU's query-chardev "filename" says: file, pty:/dev/pts/N, stdio, ... */
char *chardev_filename(Chardev *chr);
