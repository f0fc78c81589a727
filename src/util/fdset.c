/* SPDX-License-Identifier: GPL-2.0-or-later */
/* -add-fd's descriptor sets and the /dev/fdset/N names that open them (fdset.h). */
#include "util/fdset.h"

#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define FDSET_PREFIX "/dev/fdset/"

typedef struct {
    unsigned set;
    int fd;
} SetFd;

/* Filled while the command line is read (one thread), read-only after. */
static GArray *fdsets; /* SetFd */

bool fdset_add(unsigned set, int fd, const char *opaque, GError **error)
{
    int fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
    if (fd <= STDERR_FILENO || fl < 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "fd=%d is not an open descriptor above stderr", fd);
        return false;
    }
    if (!fdsets) {
        fdsets = g_array_new(FALSE, FALSE, sizeof(SetFd));
    }
    for (guint i = 0; i < fdsets->len; i++) {
        if (g_array_index(fdsets, SetFd, i).fd == fd) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "fd=%d is already in a set", fd);
            return false;
        }
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    SetFd s = {.set = set, .fd = fd};
    g_array_append_val(fdsets, s);
    return true;
}

int qlite_open(const char *path, int flags, mode_t mode)
{
    if (!g_str_has_prefix(path, FDSET_PREFIX)) {
        return open(path, flags | O_CLOEXEC, mode);
    }
    guint64 set;
    if (!g_ascii_string_to_unsigned(path + strlen(FDSET_PREFIX), 10, 0, G_MAXUINT, &set, NULL)) {
        errno = ENOENT;
        return -1;
    }
    bool known = false;
    for (guint i = 0; fdsets && i < fdsets->len; i++) {
        const SetFd *s = &g_array_index(fdsets, SetFd, i);
        if (s->set != set) {
            continue;
        }
        known = true;
        int fl = fcntl(s->fd, F_GETFL);
        if (fl >= 0 && (fl & O_ACCMODE) == (flags & O_ACCMODE)) {
            return fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
        }
    }
    errno = known ? EACCES : ENOENT;
    return -1;
}
