/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/spawner.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPAWN_COMMAND_MAX 4096
#define SPAWN_FDS         3 /* with a command: its pipe end, qlite's stdout and stderr */

typedef struct {
    uint32_t op; /* SPAWN_RUN or SPAWN_WAIT */
    uint32_t as_stdin;
    int32_t pid; /* SPAWN_WAIT */
    char command[SPAWN_COMMAND_MAX];
} SpawnRequest;

typedef struct {
    int32_t err;   /* 0 or an errno */
    int32_t value; /* the child's pid, or its wait status */
} SpawnReply;

enum { SPAWN_RUN = 1, SPAWN_WAIT = 2 };

static int spawner_fd = -1; /* qlite's end; -1 without the helper */
static bool spawner_denied; /* -sandbox spawn=deny */
static GMutex spawner_lock; /* one request and its reply at a time */

/* fds: the command's pipe end, then qlite's stdout and stderr as they are now. */
static pid_t helper_run(const SpawnRequest *req, const int *fds)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(fds[1], STDOUT_FILENO) < 0 || dup2(fds[2], STDERR_FILENO) < 0 ||
            dup2(fds[0], req->as_stdin ? STDIN_FILENO : STDOUT_FILENO) < 0) {
            _exit(127);
        }
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", req->command, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The helper's loop: one request, one reply, until qlite's end closes. */
static void G_GNUC_NORETURN helper_main(int sock, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(0);
    }
    /*
     * Nothing of qlite's: not its stdio (a -daemonize caller waits for it to
     * close), not its other descriptors (-daemonize's pipe, a lock). A
     * command gets qlite's stdout and stderr of the moment with its request.
     */
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
        dup2(null, STDERR_FILENO) < 0) {
        _exit(0);
    }
    if (sock > 3) {
        close_range(3, (unsigned)sock - 1, 0);
    }
    close_range((unsigned)sock + 1, ~0U, 0);
    sigset_t none; /* not qlite's held signals: its commands start with none blocked */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (;;) {
        SpawnRequest req;
        union {
            char space[CMSG_SPACE(SPAWN_FDS * sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = &req, .iov_len = sizeof(req)};
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n == 0 || (n < 0 && errno != EINTR)) {
            _exit(0);
        }
        if (n < 0) {
            continue;
        }
        int fds[SPAWN_FDS] = {-1, -1, -1};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(fds))) {
            memcpy(fds, CMSG_DATA(cm), sizeof(fds));
        }
        SpawnReply reply = {0};
        if (n != sizeof(req) || memchr(req.command, 0, sizeof(req.command)) == NULL) {
            reply.err = EINVAL;
        } else if (req.op == SPAWN_RUN && fds[0] >= 0) {
            pid_t pid = helper_run(&req, fds);
            reply.err = pid < 0 ? errno : 0;
            reply.value = pid;
        } else if (req.op == SPAWN_WAIT) {
            int status = 0;
            while (waitpid(req.pid, &status, 0) < 0 && errno == EINTR) {
            }
            reply.value = status;
        } else {
            reply.err = EINVAL;
        }
        for (unsigned i = 0; i < SPAWN_FDS; i++) {
            if (fds[i] >= 0) {
                close(fds[i]);
            }
        }
        if (send(sock, &reply, sizeof(reply), MSG_NOSIGNAL) != sizeof(reply)) {
            _exit(0);
        }
    }
}

bool spawner_start(bool allowed, GError **error)
{
    if (!allowed) {
        spawner_denied = true;
        return true;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        qlite_error_errno(error, errno, "cannot start the command helper: socketpair");
        return false;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        qlite_error_errno(error, errno, "cannot start the command helper: fork");
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    if (pid == 0) {
        close(sv[0]);
        helper_main(sv[1], parent);
    }
    close(sv[1]);
    spawner_fd = sv[0];
    return true;
}

/* One request and its reply; false with error when the helper is gone. */
static bool spawner_call(const SpawnRequest *req, int fd, SpawnReply *reply, GError **error)
{
    union {
        char space[CMSG_SPACE(SPAWN_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = (void *)req, .iov_len = sizeof(*req)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        const int fds[SPAWN_FDS] = {fd, STDOUT_FILENO, STDERR_FILENO};
        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = &ctl;
        msg.msg_controllen = sizeof(ctl);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(cm), fds, sizeof(fds));
    }
    g_mutex_lock(&spawner_lock);
    bool ok = sendmsg(spawner_fd, &msg, MSG_NOSIGNAL) == sizeof(*req) &&
              recv(spawner_fd, reply, sizeof(*reply), 0) == sizeof(*reply);
    g_mutex_unlock(&spawner_lock);
    if (!ok) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED, "the command helper is gone");
    }
    return ok;
}

bool spawner_run(const char *command, int fd, bool as_stdin, GPid *child, GError **error)
{
    if (spawner_denied) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "running commands is denied (-sandbox spawn=deny)");
        return false;
    }
    if (spawner_fd < 0) {
        const char *argv[] = {"/bin/sh", "-c", command, NULL};
        GSpawnFlags flags = G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_CHILD_INHERITS_STDIN;
        return g_spawn_async_with_fds(NULL, (char **)argv, NULL, flags, NULL, NULL, child,
                                      as_stdin ? fd : -1, as_stdin ? -1 : fd, -1, error);
    }
    SpawnRequest req = {.op = SPAWN_RUN, .as_stdin = as_stdin};
    if (strlen(command) >= sizeof(req.command)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "command longer than %d bytes",
                    SPAWN_COMMAND_MAX - 1);
        return false;
    }
    strcpy(req.command, command);
    SpawnReply reply;
    if (!spawner_call(&req, fd, &reply, error)) {
        return false;
    }
    if (reply.err) {
        qlite_error_errno(error, reply.err, "cannot run the command");
        return false;
    }
    *child = reply.value;
    return true;
}

bool spawner_wait(GPid child, GError **error)
{
    int status = 0;
    if (spawner_fd < 0) {
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        g_spawn_close_pid(child);
    } else {
        SpawnRequest req = {.op = SPAWN_WAIT, .pid = child};
        SpawnReply reply;
        if (!spawner_call(&req, -1, &reply, error)) {
            return false;
        }
        status = reply.value;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                    "the migration command failed (status %d)",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return false;
    }
    return true;
}
