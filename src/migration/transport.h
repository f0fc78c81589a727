/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Migration URIs as QEMU takes them: file:PATH, exec:COMMAND, unix:PATH,
 * tcp:HOST:PORT, fd:NAME|NUMBER. The descriptors are blocking, for
 * migration/stream.h. fd is the descriptor of an fd:NAME the monitor
 * resolved (taken over, even on failure), or -1: an fd:NUMBER is parsed here.
 */
#include <glib.h>
#include <stdbool.h>

/* The source side: the descriptor to write the stream to; child is 0 unless exec:. */
int mig_transport_connect(const char *uri, int fd, GPid *child, GError **error);

/* The destination side: set up by listen (a socket listens, a file or command opens). */
typedef struct MigIncoming {
    int fd;        /* the stream, once there */
    int listen_fd; /* unix:, tcp: until accepted */
    GPid child;    /* exec: */
} MigIncoming;

bool mig_transport_listen(const char *uri, int fd, MigIncoming *inc, GError **error);
/* Blocks until the stream is there (a socket's sender connected); returns its descriptor. */
int mig_transport_accept(MigIncoming *inc, GError **error);
/* Reaps an exec: command; fails when it did not exit with status 0. */
bool mig_transport_finish(GPid child, GError **error);

/*
 * The return path (QEMU's return-path capability, on both sides): once the
 * destination has read and checked the whole stream it answers the source on
 * the same socket, and the source completes only on a "loaded"; otherwise
 * (a refusal, the destination gone) the migration fails and the source runs
 * on. Not for files, pipes or commands: open fails on anything but a socket.
 */
#define MIG_RP_LOADED 0x01
#define MIG_RP_FAILED 0x00
bool mig_return_path_open(int fd, GError **error);
/* The destination's answer; a failure to send is only logged (the source then fails). */
void mig_return_path_send(int fd, bool loaded);
/* The source waits for the answer. */
bool mig_return_path_wait(int fd, GError **error);
