/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * QEMU's fd sets: -add-fd set=N,fd=M hands qlite an open descriptor, and a
 * file name /dev/fdset/N anywhere qlite opens a file means "a copy of a
 * descriptor of set N opened with the access mode asked for". A manager
 * (libvirt) passes files so: a log pipe, a disk it opened itself.
 */
#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

/* -add-fd: fd (open, ours from now on) joins set; opaque is a caller's note. */
bool fdset_add(unsigned set, int fd, const char *opaque, GError **error);

/*
 * open(2) for qlite's files: a /dev/fdset/N path gives a duplicate of the
 * set's descriptor whose access mode (O_RDONLY, O_WRONLY, O_RDWR) is the one
 * flags ask for (errno EACCES when none is, ENOENT for an unknown set);
 * any other path is opened as usual.
 */
int qlite_open(const char *path, int flags, mode_t mode);
