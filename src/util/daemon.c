/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/daemon.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int daemon_pipe = -1; /* child's end: one byte, 0 = ready */
static int pidfile_fd = -1;

bool daemon_start(GError **error)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        qlite_error_errno(error, errno, "-daemonize: pipe");
        return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
        qlite_error_errno(error, errno, "-daemonize: fork");
        return false;
    }
    if (pid > 0) {
        /* Parent: the child's byte means ready; EOF means it died during set-up. */
        close(fds[1]);
        char status;
        ssize_t n;
        do {
            n = read(fds[0], &status, 1);
        } while (n < 0 && errno == EINTR);
        if (n == 1 && status == 0) {
            _exit(0);
        }
        int ws = 0;
        waitpid(pid, &ws, 0);
        _exit(WIFEXITED(ws) && WEXITSTATUS(ws) ? WEXITSTATUS(ws) : 1);
    }
    close(fds[0]);
    daemon_pipe = fds[1];
    if (setsid() < 0) {
        qlite_error_errno(error, errno, "-daemonize: setsid");
        return false;
    }
    return true;
}

void daemon_ready(void)
{
    if (daemon_pipe < 0) {
        return;
    }
    /* Errors from now on have no terminal to go to, as with QEMU. */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO) {
            close(null);
        }
    }
    char ok = 0;
    if (write(daemon_pipe, &ok, 1) != 1) {
        /* The parent is gone; nothing to tell. */
    }
    close(daemon_pipe);
    daemon_pipe = -1;
}

bool pidfile_create(const char *path, GError **error)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        qlite_error_errno(error, errno, "cannot open pid file %s", path);
        return false;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "cannot lock pid file %s: is another qlite using it?", path);
        close(fd);
        return false;
    }
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)len) != len) {
        qlite_error_errno(error, errno, "cannot write pid file %s", path);
        close(fd);
        return false;
    }
    pidfile_fd = fd; /* kept open: the lock lives as long as we do */
    return true;
}

void pidfile_remove(const char *path)
{
    if (pidfile_fd >= 0) {
        unlink(path);
        close(pidfile_fd);
        pidfile_fd = -1;
    }
}
