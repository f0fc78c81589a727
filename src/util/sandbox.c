/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/sandbox.h"
#include "util/error.h"
#include "util/opts.h"
#include "util/spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define SANDBOX_SYSCALLS_MAX 512 /* x86-64 numbers named in the violation message */

static bool sandbox_on;
static const char *syscall_names[SANDBOX_SYSCALLS_MAX];
static __thread const char *thread_kind; /* for the violation message */

static const char *const kind_names[] = {
    [SANDBOX_MAIN] = "main",           [SANDBOX_VCPU] = "vCPU",
    [SANDBOX_IOTHREAD] = "device I/O", [SANDBOX_MONITOR] = "monitor",
    [SANDBOX_MIGRATION] = "migration",
};

bool sandbox_parse(const char *arg, SandboxConfig *cfg, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "enable", error);
    if (!o) {
        return false;
    }
    bool on;
    if (!opts_get(o, "enable")) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "'on' or 'off' expected");
        return false;
    }
    if (!opts_get_bool(o, "enable", false, &on, error)) {
        return false;
    }
    static const char *const suboptions[] = {"obsolete", "elevateprivileges", "resourcecontrol"};
    for (size_t i = 0; i < G_N_ELEMENTS(suboptions); i++) {
        const char *v = opts_get(o, suboptions[i]);
        bool children = i == 1 && g_strcmp0(v, "children") == 0;
        if (v && !children && strcmp(v, "allow") != 0 && strcmp(v, "deny") != 0) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "invalid value '%s' for %s (allow or deny)", v, suboptions[i]);
            return false;
        }
    }
    const char *spawn = opts_get(o, "spawn");
    if (spawn && strcmp(spawn, "allow") != 0 && strcmp(spawn, "deny") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "invalid value '%s' for spawn (allow or deny)", spawn);
        return false;
    }
    if (!opts_check_unused(o, error)) {
        return false;
    }
    cfg->on = on;
    cfg->spawn = !spawn || strcmp(spawn, "allow") == 0;
    return true;
}

/* Appends s at *p, up to end (async-signal-safe). */
static void put(char **p, const char *end, const char *s)
{
    while (*s && *p < end) {
        *(*p)++ = *s++;
    }
}

/* Async-signal-safe: one line on stderr, then death by SIGSYS. */
static void sandbox_violation(int sig, siginfo_t *info, void *uctx)
{
    char line[200], num[12], *p = line;
    const char *end = line + sizeof(line) - 1;
    int nr = info->si_syscall;
    unsigned v = nr < 0 ? 0 : (unsigned)nr;
    char *q = num + sizeof(num) - 1;
    *q = 0;
    do {
        *--q = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    const char *name = nr >= 0 && nr < SANDBOX_SYSCALLS_MAX ? syscall_names[nr] : NULL;
    put(&p, end, "qlite: sandbox: the ");
    put(&p, end, thread_kind ? thread_kind : "unknown");
    put(&p, end, " thread made system call ");
    put(&p, end, name ? name : "?");
    put(&p, end, " (");
    put(&p, end, q);
    put(&p, end, "), which its filter does not allow: killed\n");
    if (write(STDERR_FILENO, line, (size_t)(p - line)) < 0) {
        /* nothing more to say */
    }
    signal(SIGSYS, SIG_DFL);
    raise(SIGSYS);
}

bool sandbox_init(const SandboxConfig *cfg, GError **error)
{
    sandbox_on = cfg->on;
    if (!sandbox_on) {
        return true;
    }
    for (int nr = 0; nr < SANDBOX_SYSCALLS_MAX; nr++) {
        syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    }
    struct sigaction sa = {.sa_sigaction = sandbox_violation, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0) {
        qlite_error_errno(error, errno, "-sandbox: SIGSYS handler");
        return false;
    }
    return spawner_start(cfg->spawn, error);
}

/*
 * What each kind of thread calls once set up, as traced (strace -f) across the
 * boot, QMP and migration tests. Common to all: memory, locks, time, signals,
 * the event loop's poll and wake-ups, logging to stderr, the violation handler.
 */
static const char *const common_calls[] = {
    "brk",
    "madvise",
    "mmap",
    "mprotect",
    "munmap",
    "mremap",
    "futex",
    "set_robust_list",
    "rseq",
    "clock_gettime",
    "clock_nanosleep",
    "gettimeofday",
    "nanosleep",
    "sched_yield",
    "getpid",
    "gettid",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigaction",
    "tgkill",
    "restart_syscall",
    "poll",
    "ppoll",
    "read",
    "write",
    "exit",
    "exit_group",
    "getrandom",
    "sigaltstack" /* thread exit under AddressSanitizer */,
    "sched_getaffinity" /* thread start under AddressSanitizer, glibc's get_nprocs */,
    "getpeername" /* glib's first log message: is stderr the journal? */,
    NULL,
};

/* The main thread: signals, resets (vCPU and irqchip state), the console, exit;
 * with migration_calls, for -incoming. */
static const char *const main_calls[] = {
    "bind",      "listen",     "unlink", "clone3", "clone",    "pread64",
    "fallocate", "io_destroy", "wait4",  "kill",   "unlinkat", NULL,
};

static const char *const vcpu_calls[] = {
    "close", "newfstatat", "fstat", "lseek", "eventfd2", NULL,
};

static const char *const iothread_calls[] = {
    /* virtio-blk: Linux AIO, flushes, discards */
    "io_submit",
    "io_getevents",
    "fdatasync",
    "fsync",
    "fallocate",
    "preadv",
    "pwritev",
    "pread64",
    "pwrite64",
    /* virtio-net: tap, libslirp's sockets */
    "readv",
    "writev",
    "socket",
    "connect",
    "accept",
    "accept4",
    "bind",
    "listen",
    "getsockopt",
    "setsockopt",
    "getsockname",
    "getpeername",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
    "fcntl",
    "close",
    "prctl",
    "newfstatat",
    "fstat",
    "lseek",
    NULL,
};

/*
 * QMP clients and getfd; with migration_calls, for the migrations it starts
 * (and their pread64 for KVM's statistics, query-stats).
 */
static const char *const monitor_calls[] = {
    "bind", "listen", "clone3", "clone", "unlink", NULL,
};

static const char *const migration_calls[] = {
    "accept4",    "accept",     "recvmsg", "sendmsg",    "sendto",      "recvfrom",
    "shutdown",   "close",      "fcntl",   "socket",     "connect",     "getsockname",
    "setsockopt", "getsockopt", "openat",  "newfstatat", "fstat",       "lseek",
    "pipe2",      "writev",     "readv",   "ftruncate",  "fsync",       "fdatasync",
    "pwrite64",   "eventfd2",   "prctl",   "seccomp",    "getpeername", "pread64",
    NULL /* pread64: a qcow2 image's metadata, flushed and read again at a hand-over */,
};

static const char *const *const kind_calls[] = {
    [SANDBOX_MAIN] = main_calls,           [SANDBOX_VCPU] = vcpu_calls,
    [SANDBOX_IOTHREAD] = iothread_calls,   [SANDBOX_MONITOR] = monitor_calls,
    [SANDBOX_MIGRATION] = migration_calls,
};

/*
 * ioctl, for every kind, with the requests qlite makes once set up: the vCPU's
 * run and state (a reset, a save, a load), the VM's interrupts, clock, memory
 * slots and dirty log, a tap's offloads (as the guest's driver negotiates
 * them) and a terminal's modes. Creating VMs or vCPUs, a
 * terminal's TIOCSTI and any other device's requests are refused.
 */
static const unsigned long ioctl_requests[] = {
    KVM_RUN,
    KVM_GET_REGS,
    KVM_SET_REGS,
    KVM_GET_SREGS,
    KVM_SET_SREGS,
    KVM_GET_FPU,
    KVM_SET_FPU,
    KVM_GET_MSRS,
    KVM_SET_MSRS,
    KVM_GET_LAPIC,
    KVM_SET_LAPIC,
    KVM_GET_VCPU_EVENTS,
    KVM_SET_VCPU_EVENTS,
    KVM_GET_MP_STATE,
    KVM_SET_MP_STATE,
    KVM_GET_XSAVE,
    KVM_SET_XSAVE,
    KVM_GET_XCRS,
    KVM_SET_XCRS,
    KVM_GET_DEBUGREGS,
    KVM_SET_DEBUGREGS,
    KVM_KVMCLOCK_CTRL,
    KVM_GET_CLOCK,
    KVM_SET_CLOCK,
    KVM_GET_IRQCHIP,
    KVM_SET_IRQCHIP,
    KVM_GET_PIT2,
    KVM_SET_PIT2,
    KVM_IRQ_LINE_STATUS,
    KVM_SET_GSI_ROUTING,
    KVM_IRQFD,
    KVM_IOEVENTFD,
    KVM_SET_USER_MEMORY_REGION,
    KVM_GET_DIRTY_LOG,
    KVM_CHECK_EXTENSION,
    TUNSETOFFLOAD,
    TCGETS,
    TCSETS,
    TCSETSW,
    TCSETSF,
    TIOCGWINSZ,
    FIONREAD,
    FIONBIO,
};

static bool sandbox_allow_ioctls(scmp_filter_ctx ctx, GError **error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(ioctl_requests); i++) {
        /* The kernel reads the request as 32 bits; callers may sign-extend it. */
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                  SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, ioctl_requests[i]));
        if (rc < 0) {
            qlite_error_errno(error, -rc, "-sandbox: ioctl %#lx", ioctl_requests[i]);
            return false;
        }
    }
    return true;
}

static bool sandbox_allow(scmp_filter_ctx ctx, const char *const *calls, GError **error)
{
    for (; *calls; calls++) {
        int nr = seccomp_syscall_resolve_name(*calls);
        int rc = nr == __NR_SCMP_ERROR ? -EINVAL : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc < 0) {
            qlite_error_errno(error, -rc, "-sandbox: system call %s", *calls);
            return false;
        }
    }
    return true;
}

/*
 * Filters stack: a migration thread keeps the filter of the thread that
 * started it (the monitor's, or main's for -incoming) under its own, so
 * those two allow what it calls too.
 */
static bool sandbox_starts_migrations(SandboxKind kind)
{
    return kind == SANDBOX_MONITOR || kind == SANDBOX_MAIN;
}

/*
 * Device and vCPU threads open files for reading only: libslirp reads
 * /etc/resolv.conf when the guest first asks its DNS.
 */
static bool sandbox_allow_reading(scmp_filter_ctx ctx, GError **error)
{
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE, O_RDONLY));
    if (rc < 0) {
        qlite_error_errno(error, -rc, "-sandbox: system call openat");
        return false;
    }
    return true;
}

bool sandbox_apply(SandboxKind kind, GError **error)
{
    if (!sandbox_on) {
        return true;
    }
    thread_kind = kind_names[kind];
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED, "-sandbox: seccomp_init failed");
        return false;
    }
    bool ok =
        sandbox_allow(ctx, common_calls, error) && sandbox_allow(ctx, kind_calls[kind], error) &&
        sandbox_allow_ioctls(ctx, error) &&
        (!sandbox_starts_migrations(kind) || sandbox_allow(ctx, migration_calls, error)) &&
        ((kind != SANDBOX_IOTHREAD && kind != SANDBOX_VCPU) || sandbox_allow_reading(ctx, error));
    int rc = ok ? seccomp_load(ctx) : 0; /* sets PR_SET_NO_NEW_PRIVS first */
    seccomp_release(ctx);
    if (rc < 0) {
        qlite_error_errno(error, -rc, "-sandbox: loading the %s thread's filter", thread_kind);
        return false;
    }
    return ok;
}
