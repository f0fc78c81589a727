/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The sandbox's option and its filters, in child processes: a thread under
 * its kind's filter makes the calls that kind makes and dies of SIGSYS, with
 * one line naming the thread and the call, at any other.
 */
#include "util/sandbox.h"

#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void check_parse(const char *arg, bool on, bool spawn)
{
    SandboxConfig cfg = SANDBOX_CONFIG_DEFAULT;
    g_autoptr(GError) err = NULL;
    g_assert_true(sandbox_parse(arg, &cfg, &err));
    g_assert_no_error(err);
    g_assert_cmpint(cfg.on, ==, on);
    g_assert_cmpint(cfg.spawn, ==, spawn);
}

static void check_refused(const char *arg, const char *message)
{
    SandboxConfig cfg = SANDBOX_CONFIG_DEFAULT;
    g_autoptr(GError) err = NULL;
    g_assert_false(sandbox_parse(arg, &cfg, &err));
    g_assert_cmpstr(err->message, ==, message);
}

static void test_parse(void)
{
    check_parse("on", true, true);
    check_parse("off", false, true);
    check_parse("on,spawn=deny", true, false);
    /* libvirt's line for QEMU */
    check_parse("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", true,
                false);
    check_parse("on,elevateprivileges=children", true, true);
    check_refused("on,spawn=maybe", "invalid value 'maybe' for spawn (allow or deny)");
    check_refused("spawn=deny", "'on' or 'off' expected");
    check_refused("on,obsolete=yes", "invalid value 'yes' for obsolete (allow or deny)");
}

static bool open_socket(void)
{
    return socket(AF_INET, SOCK_STREAM, 0) >= 0;
}

/* FIONREAD, which sockets and terminals take, then TIOCSTI, which types into a terminal. */
static bool ioctls(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0), n = 0;
    char c = 'x';
    if (s < 0 || ioctl(s, FIONREAD, &n) < 0 || write(STDERR_FILENO, "FIONREAD\n", 9) != 9) {
        return false;
    }
    return ioctl(s, TIOCSTI, &c) == 0;
}

/*
 * Forks; the child sets the sandbox up, takes kind's filter, makes an
 * allowed call, then call. Returns the child's wait status and stderr.
 */
static int run_child(SandboxKind kind, bool (*call)(void), char *out, size_t len)
{
    int p[2];
    g_assert_cmpint(pipe(p), ==, 0);
    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        SandboxConfig cfg = {.on = true, .spawn = false};
        if (!sandbox_init(&cfg, NULL) || !sandbox_apply(kind, NULL)) {
            _exit(3);
        }
        if (write(STDERR_FILENO, "allowed\n", 8) != 8) {
            _exit(4);
        }
        _exit(call() ? 0 : 5);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while (got < len - 1 && (n = read(p[0], out + got, len - 1 - got)) > 0) {
        got += (size_t)n;
    }
    out[got] = 0;
    close(p[0]);
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    return status;
}

/* The child dies of SIGSYS, having written want. */
static void check_killed(SandboxKind kind, bool (*call)(void), const char *want)
{
    char out[512];
    int status = run_child(kind, call, out, sizeof(out));
    g_assert_true(WIFSIGNALED(status));
    g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);
    g_assert_cmpstr(out, ==, want);
}

static void test_violation(void)
{
    check_killed(SANDBOX_VCPU, open_socket,
                 "allowed\nqlite: sandbox: the vCPU thread made system call socket (41), "
                 "which its filter does not allow: killed\n");
}

/* A kind that does make the call lives on. */
static void test_allowed(void)
{
    char out[512];
    int status = run_child(SANDBOX_IOTHREAD, open_socket, out, sizeof(out));
    g_assert_cmpstr(out, ==, "allowed\n");
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

/* ioctl is allowed request by request. */
static void test_ioctl(void)
{
    check_killed(SANDBOX_IOTHREAD, ioctls,
                 "allowed\nFIONREAD\nqlite: sandbox: the device I/O thread made system call "
                 "ioctl (16), which its filter does not allow: killed\n");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/sandbox/parse", test_parse);
    g_test_add_func("/sandbox/violation", test_violation);
    g_test_add_func("/sandbox/allowed", test_allowed);
    g_test_add_func("/sandbox/ioctl", test_ioctl);
    return g_test_run();
}
