/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qlite guest agent: the guest side of the Linux boot, QMP and migration
 * tests and of bench/run.py. A static userspace program in the test guest
 * (tests/guest/README.md: Debian's stock kernel with a busybox initramfs),
 * whose /init loads the drivers, mounts /proc, /sys and /dev, configures
 * eth0 and runs /agent as root when the kernel command line has a
 * qlite_agent.* parameter.
 *
 * Parameters come from the kernel command line (/proc/cmdline, or the file
 * named by $QLITE_AGENT_CMDLINE) as qlite_agent.NAME=VALUE words. The checks
 * named by qlite_agent.checks run in that order and report on stdout (the
 * serial console): TAP lines, "#" lines with details and measurements, and
 * "qlite-agent:" lines that host tests wait for. The verdict goes to the
 * isa-debug-exit port, so the VMM's exit status carries it (33 pass, 35
 * fail). With heartbeat_ms it then prints a heartbeat forever; else it
 * returns 0 and /init decides what comes next. QLITE_AGENT_NO_VERDICT=1
 * skips the port write, for trying the agent outside a VM.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -std=gnu11 -o agent agent.c hostile.c
 * (tests/guest/build-guest.sh does that).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <asm/kvm_para.h>
#include <cpuid.h>
#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/aio_abi.h>
#include <linux/input.h>
#include <linux/rtc.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

/* ---- Parameters ------------------------------------------------------ */

#define PARAM_PREFIX "qlite_agent."

/* qlite_agent.NAME=VALUE, set to their defaults (the table in tests/guest/README.md). */
static struct {
    const char *checks;
    unsigned int cpus;
    unsigned long now; /* host Unix time at VMM start; 0 = unknown */
    bool fail, reboot;
    const char *blk_disk, *blk_serial, *blk_ro_disk;
    unsigned int blk_seed, blk_hold, blk_ro_seed;
    const char *ext2_disk, *ext2_file, *ext2_expect, *ext2_hash_file, *ext2_hash;
    const char *bench_disk;
    unsigned int bench_ops, bench_qd, bench_ms, io_timeout;
    unsigned int exit_count, exit_port;
    unsigned long exit_mmio;
    const char *net_addr, *net_server;
    unsigned int net_port, net_bytes, net_seed;
    unsigned int mig_rounds, mig_kib, mig_ms;
    const char *mig_disk;
    const char *hostile_disk;
    unsigned int heartbeat_ms;
} param = {.checks = "cpus,kvmclock,rtc",
           .cpus = 1,
           .blk_disk = "vda",
           .blk_seed = 1,
           .blk_ro_disk = "vdc",
           .ext2_disk = "vdb",
           .ext2_file = "/hello.txt",
           .bench_disk = "vda",
           .bench_ops = 1024,
           .bench_qd = 16,
           .bench_ms = 1500,
           .io_timeout = 60,
           .exit_count = 10000,
           .exit_port = 0x1f0,
           .exit_mmio = 0xdff00000,
           .net_bytes = 4 << 20,
           .net_seed = 1,
           .mig_kib = 2048,
           .mig_ms = 200,
           .hostile_disk = "vdb"};

enum param_type { P_STR, P_BOOL, P_UINT, P_ULONG };

/* A parameter's type, from its field's. */
#define PARAM_TYPE(v)                                                                              \
    _Generic((v), const char *: P_STR, bool: P_BOOL, unsigned int: P_UINT, unsigned long: P_ULONG)
#define PARAM(p)                                                                                   \
    {                                                                                              \
        .name = #p, .type = PARAM_TYPE(param.p), .var = &param.p                                   \
    }

static const struct {
    const char *name;
    enum param_type type;
    void *var;
} params[] = {PARAM(checks),      PARAM(cpus),        PARAM(now),
              PARAM(fail),        PARAM(reboot),      PARAM(blk_disk),
              PARAM(blk_serial),  PARAM(blk_ro_disk), PARAM(blk_seed),
              PARAM(blk_hold),    PARAM(blk_ro_seed), PARAM(ext2_disk),
              PARAM(ext2_file),   PARAM(ext2_expect), PARAM(ext2_hash_file),
              PARAM(ext2_hash),   PARAM(bench_disk),  PARAM(bench_ops),
              PARAM(bench_qd),    PARAM(bench_ms),    PARAM(io_timeout),
              PARAM(exit_count),  PARAM(exit_port),   PARAM(exit_mmio),
              PARAM(net_addr),    PARAM(net_server),  PARAM(net_port),
              PARAM(net_bytes),   PARAM(net_seed),    PARAM(mig_rounds),
              PARAM(mig_kib),     PARAM(mig_ms),      PARAM(mig_disk),
              PARAM(hostile_disk), PARAM(heartbeat_ms)};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))

/* QEMU/qlite isa-debug-exit: the VMM exits with status (value << 1) | 1. */
#define DEBUG_EXIT_PORT 0x0f4
#define DEBUG_EXIT_PASS 0x10 /* exit status 33 */
#define DEBUG_EXIT_FAIL 0x11 /* exit status 35 */

/*
 * Reboot marker in the last CMOS NVRAM byte: CMOS survives a VM reset, RAM
 * does not, so finding it set proves we went through a reset and came back.
 */
#define CMOS_INDEX_PORT   0x70
#define CMOS_DATA_PORT    0x71
#define REBOOT_MARK_INDEX 0x7f
#define REBOOT_MARK       0x5a

#define RTC_MAX_SKEW_SECONDS 3600

#define CLOCKSOURCE "/sys/devices/system/clocksource/clocksource0/"

#define NS_PER_US 1000ULL
#define NS_PER_MS 1000000ULL
#define NS_PER_S  1000000000ULL

#define POLL_MS        100  /* how often we look for a device that is not there yet */
#define DEVICE_WAIT_MS 5000 /* how long we look */

#define SECTOR_SIZE      512
#define PAGE_BYTES       4096
#define CHUNK_BYTES      (64 * 1024)
#define CHUNK_SECTORS    (CHUNK_BYTES / SECTOR_SIZE)
#define WORDS_PER_SECTOR (SECTOR_SIZE / sizeof(uint64_t))

static int test_number;
static bool all_ok = true;

void report(bool ok, const char *fmt, ...)
{
    va_list args;

    printf("%sok %d - ", ok ? "" : "not ", ++test_number);
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    putchar('\n');
    if (!ok)
        all_ok = false;
}

/* errno text, except that a timeout reads as one (not "Connection timed out"). */
static const char *err_text(int err)
{
    return err == ETIMEDOUT ? "timed out" : strerror(err);
}

uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

void sleep_ms(unsigned int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * NS_PER_MS};

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/*
 * I/O ports go through /dev/port: the kernel makes the access in kernel
 * mode, where no TSS I/O bitmap is looked at. A user-mode in/out after
 * ioperm() faults whenever the host's KVM runs nested under QEMU 7.2's TCG
 * and the VMM has written the vCPU's segment registers back (QEMU q35 after
 * boot, any VMM after a restore): TCG accepts only an available TSS type in
 * its cached TR, and KVM writes back the busy type a real CPU has there.
 * Returns the descriptor, opened once, or -1 with errno set.
 */
static int port_fd(void)
{
    static int fd = -1;

    if (fd < 0)
        fd = open("/dev/port", O_RDWR | O_CLOEXEC);
    return fd;
}

bool port_write(unsigned short port, uint8_t value)
{
    return pwrite(port_fd(), &value, 1, port) == 1;
}

/* 0xff, as from a port nothing answers, when the read fails. */
uint8_t port_read(unsigned short port)
{
    uint8_t value = 0xff;

    if (pread(port_fd(), &value, 1, port) != 1)
        return 0xff;
    return value;
}

/* Reads up to size - 1 bytes of path into buf, NUL-terminated; the length or -errno. */
static ssize_t read_file(const char *path, char *buf, size_t size)
{
    ssize_t len = 0, n = 0;
    int fd = open(path, O_RDONLY);

    if (fd < 0)
        return -errno;
    while ((size_t)len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
        len += n;
    if (n < 0)
        n = -errno;
    close(fd);
    buf[len] = '\0';
    return n < 0 ? n : len;
}

/* A one-line file such as a sysfs attribute, without its newline; 0 or errno. */
int read_text(const char *path, char *buf, size_t size)
{
    ssize_t n = read_file(path, buf, size);

    if (n < 0)
        return -n;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY), err = 0;

    if (fd < 0)
        return errno;
    if (write(fd, text, strlen(text)) < 0)
        err = errno;
    close(fd);
    return err;
}

static bool parse_ulong(const char *v, unsigned long max, unsigned long *out)
{
    char *end;

    /* Base 0, as the kernel's parameters: 0x1f0 works. */
    if (!v || !isdigit((unsigned char)*v))
        return false;
    errno = 0;
    *out = strtoul(v, &end, 0);
    return !errno && !*end && *out <= max;
}

/* The kernel's syntax for a bool parameter: a bare name, 1/0, y/n, Y/N. */
static bool parse_bool(const char *v, bool *out)
{
    if (!v || !strcmp(v, "1") || !strcasecmp(v, "y"))
        *out = true;
    else if (!strcmp(v, "0") || !strcasecmp(v, "n"))
        *out = false;
    else
        return false;
    return true;
}

/* Sets one qlite_agent.NAME[=VALUE] parameter; false (printed) if unknown or bad. */
static bool set_param(char *word)
{
    char *name = word + strlen(PARAM_PREFIX), *value = strchr(name, '=');
    unsigned long n;
    size_t i;
    bool ok = false;

    if (value)
        *value++ = '\0';
    for (i = 0; i < ARRAY_SIZE(params) && strcmp(params[i].name, name); i++)
        ;
    if (i == ARRAY_SIZE(params)) {
        printf("# unknown parameter " PARAM_PREFIX "%s\n", name);
        return false;
    }
    switch (params[i].type) {
    case P_STR:
        ok = value != NULL;
        if (ok)
            *(const char **)params[i].var = value;
        break;
    case P_BOOL:
        ok = parse_bool(value, params[i].var);
        break;
    case P_UINT:
        ok = parse_ulong(value, UINT_MAX, &n);
        if (ok)
            *(unsigned int *)params[i].var = n;
        break;
    case P_ULONG:
        ok = parse_ulong(value, ULONG_MAX, params[i].var);
        break;
    }
    if (!ok)
        printf("# bad value for parameter " PARAM_PREFIX "%s: '%s'\n", name, value ? value : "");
    return ok;
}

/*
 * The next word of the command line, split in place as the kernel does: at
 * spaces outside double quotes, the quotes dropped (a="b c" is a=b c).
 */
static char *next_word(char **cursor)
{
    char *p = *cursor, *word, *out;
    bool quoted = false;

    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return NULL;
    word = out = p;
    for (; *p && (quoted || !isspace((unsigned char)*p)); p++) {
        if (*p == '"')
            quoted = !quoted;
        else
            *out++ = *p;
    }
    *cursor = *p ? p + 1 : p;
    *out = '\0';
    return word;
}

/* Loads the parameters; returns how many were unknown or bad (each printed). */
static int load_params(void)
{
    static char cmdline[16384]; /* the parameters point into it */
    const char *path = getenv("QLITE_AGENT_CMDLINE");
    char *cursor = cmdline, *word;
    ssize_t n;
    int bad = 0;

    if (!path)
        path = "/proc/cmdline";
    n = read_file(path, cmdline, sizeof(cmdline));
    if (n < 0) {
        printf("# cannot read %s: %s\n", path, strerror(-n));
        return 1;
    }
    /* As in the kernel, what follows "--" is init's, not parameters. */
    while ((word = next_word(&cursor)) && strcmp(word, "--"))
        if (!strncmp(word, PARAM_PREFIX, strlen(PARAM_PREFIX)) && !set_param(word))
            bad++;
    return bad;
}

/* ---- cpus, kvmclock, rtc ---------------------------------------------- */

static void check_cpus(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);

    if (online == param.cpus)
        report(true, "cpus online: %ld", online);
    else
        report(false, "cpus online: %ld (expected %u)", online, param.cpus);
}

/*
 * The agent reads time through CLOCK_MONOTONIC, which runs on the kernel's
 * clocksource. Linux prefers the TSC to the kvmclock when the CPU reports an
 * invariant TSC (as KVM_GET_SUPPORTED_CPUID does), so make kvm-clock the
 * clocksource if the kernel has it: the kvmclock check, the mig rounds and
 * the heartbeat then read the kvmclock, the clock the VMM stops, saves and
 * restores with the VM (KVM_GET_CLOCK, KVM_SET_CLOCK).
 */
static void use_kvmclock(void)
{
    char current[64], available[256];
    int err;

    if (read_text(CLOCKSOURCE "current_clocksource", current, sizeof(current)) ||
        read_text(CLOCKSOURCE "available_clocksource", available, sizeof(available)) ||
        !strcmp(current, "kvm-clock") || !strstr(available, "kvm-clock"))
        return;
    err = write_text(CLOCKSOURCE "current_clocksource", "kvm-clock");
    printf("# clocksource: %s%s (was %s)\n", err ? "cannot switch to kvm-clock: " : "kvm-clock",
           err ? strerror(err) : "", current);
}

static void check_kvmclock(void)
{
    unsigned int eax, sig[3];
    char source[64];
    uint64_t t0, delta_us;
    int err;

    __cpuid(KVM_CPUID_SIGNATURE, eax, sig[0], sig[1], sig[2]);
    if (memcmp(sig, "KVMKVMKVM\0\0\0", sizeof(sig))) {
        report(false, "kvmclock: no KVM signature in CPUID");
        return;
    }
    __cpuid(KVM_CPUID_FEATURES, eax, sig[0], sig[1], sig[2]);
    if (!(eax & ((1u << KVM_FEATURE_CLOCKSOURCE2) | (1u << KVM_FEATURE_CLOCKSOURCE)))) {
        report(false, "kvmclock: KVM offers no kvmclock feature");
        return;
    }
    err = read_text(CLOCKSOURCE "current_clocksource", source, sizeof(source));
    if (err || strcmp(source, "kvm-clock")) {
        report(false, "kvmclock: not the kernel's clocksource (%s)", err ? strerror(err) : source);
        return;
    }
    /* CLOCK_MONOTONIC runs on the clocksource: the kvmclock. */
    t0 = now_ns();
    sleep_ms(10);
    delta_us = (now_ns() - t0) / NS_PER_US;
    /* Wide bounds, as the guest may run slowly (nested, emulated). */
    report(delta_us >= 1000 && delta_us <= 10 * 1000000,
           "kvmclock advances: %" PRIu64 " us across a 10 ms nanosleep", delta_us);
}

static void check_rtc(void)
{
    struct rtc_time rt = {0};
    struct tm tm = {0};
    long long skew;
    int fd = open("/dev/rtc0", O_RDONLY), err = 0;
    char when[80];

    /* The kernel refuses an invalid date itself (rtc_valid_tm: EINVAL). */
    if (fd < 0 || ioctl(fd, RTC_RD_TIME, &rt))
        err = errno;
    if (fd >= 0)
        close(fd);
    if (err) {
        report(false, "rtc: %s /dev/rtc0: %s", fd < 0 ? "cannot open" : "RTC_RD_TIME on",
               strerror(err));
        return;
    }
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d", rt.tm_year + 1900, rt.tm_mon + 1,
             rt.tm_mday, rt.tm_hour, rt.tm_min, rt.tm_sec);
    if (rt.tm_year + 1900 < 2024 || rt.tm_year + 1900 > 2099) {
        report(false, "rtc: insane date %s", when);
        return;
    }
    if (!param.now) {
        report(true, "rtc: %s (host time not given)", when);
        return;
    }
    memcpy(&tm, &rt, sizeof(rt)); /* struct rtc_time is the start of struct tm */
    skew = (long long)timegm(&tm) - (long long)param.now;
    if (llabs(skew) <= RTC_MAX_SKEW_SECONDS)
        report(true, "rtc: %s, %lld s from host time", when, skew);
    else
        report(false, "rtc: %s, %lld s from host time (max %d)", when, skew, RTC_MAX_SKEW_SECONDS);
}

/* ---- Block devices ---------------------------------------------------- */

/*
 * The disk pattern (README.md, and pattern.py on the host): with seed S,
 * sector s holds 64 little-endian words w[i] = mix(S ^ (s * G)) + i * G.
 * One mix per sector keeps it cheap, and every sector differs from every
 * other, so a misplaced sector is caught too.
 */
#define PATTERN_G 0x9e3779b97f4a7c15ULL

static uint64_t pattern_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void pattern_fill(void *buf, uint64_t seed, uint64_t sector, unsigned int nr)
{
    uint64_t *w = buf;
    unsigned int s, i;

    for (s = 0; s < nr; s++) {
        uint64_t v = pattern_mix(seed ^ ((sector + s) * PATTERN_G));

        for (i = 0; i < WORDS_PER_SECTOR; i++, v += PATTERN_G)
            *w++ = htole64(v);
    }
}

/* Returns the index of the first sector in buf that differs, or nr. */
static unsigned int pattern_check(const void *buf, uint64_t seed, uint64_t sector, unsigned int nr)
{
    const uint64_t *w = buf;
    unsigned int s, i;

    for (s = 0; s < nr; s++) {
        uint64_t v = pattern_mix(seed ^ ((sector + s) * PATTERN_G));

        for (i = 0; i < WORDS_PER_SECTOR; i++, v += PATTERN_G)
            if (le64toh(w[s * WORDS_PER_SECTOR + i]) != v)
                return s;
    }
    return nr;
}

/*
 * All block I/O goes through Linux AIO on O_DIRECT file descriptors, so no
 * page cache is involved and every batch is waited for with a timeout
 * (io_timeout): a device that never answers gives a "not ok" line, not a
 * hung agent.
 */
#define IO_MAX_BATCH 128

/* One AIO context for everything, set up on first use. */
static aio_context_t io_ctx;

/*
 * Set once a batch timed out: its requests may still complete later and
 * write into their buffers, so from then on no buffer is freed, and that
 * context is left alone (io_destroy would wait for those requests).
 */
static bool io_abandoned;

static void *buf_alloc(size_t len)
{
    void *p;

    if (posix_memalign(&p, PAGE_BYTES, len))
        return NULL;
    return memset(p, 0, len);
}

static void buf_free(void *p)
{
    if (!io_abandoned)
        free(p);
}

static void io_prep(struct iocb *cb, int fd, int opcode, uint64_t offset, void *buf, size_t len)
{
    memset(cb, 0, sizeof(*cb));
    cb->aio_fildes = fd;
    cb->aio_lio_opcode = opcode;
    cb->aio_offset = offset;
    cb->aio_buf = (uintptr_t)buf;
    cb->aio_nbytes = len;
}

/* Runs n requests together; 0, the errno of the first that failed, or ETIMEDOUT. */
static int io_run(struct iocb *cbs, unsigned int n)
{
    struct iocb *ptrs[IO_MAX_BATCH];
    struct io_event events[IO_MAX_BATCH];
    uint64_t deadline = now_ns() + param.io_timeout * NS_PER_S, left;
    unsigned int submitted = 0, done = 0, i;
    long r;
    int err = 0;

    if (!io_ctx && syscall(SYS_io_setup, IO_MAX_BATCH, &io_ctx))
        return errno;
    for (i = 0; i < n; i++)
        ptrs[i] = &cbs[i];
    while (submitted < n) {
        r = syscall(SYS_io_submit, io_ctx, (long)(n - submitted), ptrs + submitted);
        if (r <= 0) {
            err = r ? errno : EIO;
            break; /* still wait for those already submitted */
        }
        submitted += r;
    }
    while (done < submitted) {
        struct timespec ts;

        left = deadline > now_ns() ? deadline - now_ns() : 0;
        ts.tv_sec = left / NS_PER_S;
        ts.tv_nsec = left % NS_PER_S;
        r = syscall(SYS_io_getevents, io_ctx, 1L, (long)(submitted - done), events, &ts);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            io_ctx = 0;
            io_abandoned = true;
            return r ? errno : ETIMEDOUT;
        }
        for (i = 0; i < r; i++) {
            const struct iocb *cb = (const struct iocb *)(uintptr_t)events[i].obj;

            if (!err && events[i].res < 0)
                err = -events[i].res;
            else if (!err && (uint64_t)events[i].res != cb->aio_nbytes)
                err = EIO; /* short transfer: past the end of the disk */
        }
        done += r;
    }
    return err;
}

/* One request: IOCB_CMD_PREAD, _PWRITE or _FSYNC (the device's cache flush). */
static int io_sync(int fd, int opcode, uint64_t sector, void *buf, size_t len)
{
    struct iocb cb;

    io_prep(&cb, fd, opcode, sector * SECTOR_SIZE, buf, len);
    return io_run(&cb, 1);
}

/* Waits up to 5 s for /dev/NAME to appear (path gets it); false if it did not (reported). */
static bool disk_wait(const char *check, const char *name, char *path, size_t size)
{
    unsigned int waited;

    snprintf(path, size, "/dev/%s", name);
    for (waited = 0; access(path, F_OK) && waited < DEVICE_WAIT_MS; waited += POLL_MS)
        sleep_ms(POLL_MS);
    if (access(path, F_OK)) {
        report(false, "%s: no block device named %s", check, name);
        return false;
    }
    return true;
}

/* The whole-disk device /dev/NAME, opened with flags; -1 (reported) on failure. */
static int disk_open(const char *check, const char *name, int flags)
{
    char path[256];
    int fd;

    if (!disk_wait(check, name, path, sizeof(path)))
        return -1;
    fd = open(path, flags);
    if (fd < 0)
        report(false, "%s: cannot open %s: %s", check, path, strerror(errno));
    return fd;
}

static uint64_t disk_sectors(int fd)
{
    off_t end = lseek(fd, 0, SEEK_END);

    return end > 0 ? (uint64_t)end / SECTOR_SIZE : 0;
}

/*
 * 1 if /sys/class/block/NAME/ATTR (NAME a disk or a partition) reads want, 0
 * if not, -1 if it cannot be read.
 */
static int disk_attr_is(const char *name, const char *attr, const char *want)
{
    char path[256], text[64];

    snprintf(path, sizeof(path), "/sys/class/block/%s/%s", name, attr);
    return read_text(path, text, sizeof(text)) ? -1 : !strcmp(text, want);
}

static const char *yes_no(int v)
{
    return v < 0 ? "unknown" : v ? "yes" : "no";
}

/*
 * Reads the whole disk and compares it with the pattern of seed. Returns 0
 * and sets *bad to the first differing sector (or to nr_sectors if none).
 */
static int disk_verify(int fd, uint64_t nr_sectors, void *buf, uint64_t seed, uint64_t *bad)
{
    uint64_t s;
    int err;

    for (s = 0; s < nr_sectors; s += CHUNK_SECTORS) {
        unsigned int n = MIN(CHUNK_SECTORS, nr_sectors - s), good;

        memset(buf, 0, CHUNK_BYTES);
        err = io_sync(fd, IOCB_CMD_PREAD, s, buf, n * SECTOR_SIZE);
        if (err)
            return err;
        good = pattern_check(buf, seed, s, n);
        if (good < n) {
            *bad = s + good;
            return 0;
        }
    }
    *bad = nr_sectors;
    return 0;
}

/*
 * blk: write the pattern (seed blk_seed) over the whole of blk_disk, flush,
 * print "qlite-agent: blk flushed", optionally hold (durability test), then
 * read everything back and compare.
 */
static void check_blk(void)
{
    const char *name = param.blk_disk;
    uint64_t seed = param.blk_seed, nr_sectors, s, bad;
    char *buf = NULL;
    int fd, err, ro;
    unsigned int i;

    fd = disk_open("blk", name, O_RDWR | O_DIRECT);
    if (fd < 0)
        return;
    nr_sectors = disk_sectors(fd);
    ro = disk_attr_is(name, "ro", "1");
    printf("# blk %s: %" PRIu64 " sectors (%" PRIu64 " KiB), write cache %s, read-only %s\n", name,
           nr_sectors, nr_sectors / 2,
           yes_no(disk_attr_is(name, "queue/write_cache", "write back")), yes_no(ro));
    buf = buf_alloc(CHUNK_BYTES);
    if (!buf || !nr_sectors || ro == 1) {
        report(false, "blk %s: %s", name,
               !buf          ? "out of memory"
               : !nr_sectors ? "disk is empty"
                             : "disk is read-only");
        goto out;
    }

    for (s = 0; s < nr_sectors; s += CHUNK_SECTORS) {
        unsigned int n = MIN(CHUNK_SECTORS, nr_sectors - s);

        pattern_fill(buf, seed, s, n);
        err = io_sync(fd, IOCB_CMD_PWRITE, s, buf, n * SECTOR_SIZE);
        if (err) {
            report(false, "blk %s: write at sector %" PRIu64 " failed: %s", name, s, err_text(err));
            goto out;
        }
    }
    /*
     * Rewrite 3 sectors (same data) at an odd sector from a buffer that is
     * not page aligned, as a guest's odd requests are. O_DIRECT needs the
     * logical block size (512) as alignment, so that is as odd as it gets.
     */
    if (nr_sectors >= 4) {
        pattern_fill(buf + SECTOR_SIZE, seed, 1, 3);
        err = io_sync(fd, IOCB_CMD_PWRITE, 1, buf + SECTOR_SIZE, 3 * SECTOR_SIZE);
        if (err) {
            report(false, "blk %s: 3-sector write at sector 1 failed: %s", name, err_text(err));
            goto out;
        }
    }
    report(true, "blk %s: wrote pattern (seed %" PRIu64 ") over %" PRIu64 " sectors", name, seed,
           nr_sectors);

    /* fsync on a block device sends the device a cache flush. */
    err = io_sync(fd, IOCB_CMD_FSYNC, 0, NULL, 0);
    if (err) {
        report(false, "blk %s: flush failed: %s", name, err_text(err));
        goto out;
    }
    if (param.blk_hold)
        printf("qlite-agent: blk flushed (%s); holding %u s\n", name, param.blk_hold);
    else
        printf("qlite-agent: blk flushed (%s)\n", name);
    report(true, "blk %s: flush completed", name);
    for (i = 0; i < param.blk_hold; i++)
        sleep_ms(1000); /* the host test kills the VMM meanwhile */
    if (param.blk_hold)
        printf("# blk %s: hold of %u s over, nobody stopped us\n", name, param.blk_hold);

    err = disk_verify(fd, nr_sectors, buf, seed, &bad);
    if (err)
        report(false, "blk %s: read-back failed: %s", name, err_text(err));
    else if (bad < nr_sectors)
        report(false, "blk %s: read-back differs at sector %" PRIu64, name, bad);
    else
        report(true, "blk %s: read back %" PRIu64 " sectors, all match", name, nr_sectors);
out:
    buf_free(buf);
    close(fd);
}

/*
 * blk_ro: blk_ro_disk must be read-only: marked so (VIRTIO_BLK_F_RO), a
 * write must fail, and the data must be unchanged afterwards. With
 * blk_ro_seed the whole disk must also hold that pattern, before and after.
 *
 * A write from userspace does not reach the device once the disk is marked
 * read-only: Linux 6.1 refuses it itself (EPERM), denies writable shared
 * mappings of the disk (EINVAL), and BLKROSET cannot clear the driver's
 * read-only flag. So the device's own refusal is only tested here when the
 * disk is not marked read-only (which fails anyway), and a refusal by the
 * kernel is noted as such; tests/unit/test-virtio-blk.c has the device
 * refuse writes to a read-only disk.
 */
static void check_blk_ro(void)
{
    const char *name = param.blk_ro_disk;
    uint64_t nr_sectors, bad;
    unsigned int n, i;
    unsigned char *before = NULL, *buf = NULL;
    int fd, err;

    fd = disk_open("blk_ro", name, O_RDWR | O_DIRECT);
    if (fd < 0)
        return;
    nr_sectors = disk_sectors(fd);
    n = MIN(CHUNK_SECTORS, nr_sectors);
    before = buf_alloc(CHUNK_BYTES);
    buf = buf_alloc(CHUNK_BYTES);
    if (!before || !buf || !n) {
        report(false, "blk_ro %s: %s", name, n ? "out of memory" : "disk is empty");
        goto out;
    }
    report(disk_attr_is(name, "ro", "1") == 1, "blk_ro %s: disk is marked read-only", name);

    if (param.blk_ro_seed) {
        err = disk_verify(fd, nr_sectors, buf, param.blk_ro_seed, &bad);
        if (err) {
            report(false, "blk_ro %s: read failed: %s", name, err_text(err));
            goto out;
        }
        if (bad < nr_sectors) {
            report(false, "blk_ro %s: differs from the pattern of seed %u at sector %" PRIu64, name,
                   param.blk_ro_seed, bad);
            goto out;
        }
        report(true, "blk_ro %s: holds the pattern of seed %u (%" PRIu64 " sectors)", name,
               param.blk_ro_seed, nr_sectors);
    }

    err = io_sync(fd, IOCB_CMD_PREAD, 0, before, n * SECTOR_SIZE);
    if (err) {
        report(false, "blk_ro %s: read failed: %s", name, err_text(err));
        goto out;
    }
    for (i = 0; i < n * SECTOR_SIZE; i++)
        buf[i] = before[i] ^ 0xa5;
    err = io_sync(fd, IOCB_CMD_PWRITE, 0, buf, n * SECTOR_SIZE);
    if (err == EPERM)
        printf("# blk_ro %s: the kernel refused the write itself, the device was not asked\n",
               name);
    if (err == ETIMEDOUT) {
        report(false, "blk_ro %s: write neither failed nor completed (timed out)", name);
        goto out;
    }
    if (!err)
        report(false, "blk_ro %s: a write of %u sectors reported success", name, n);
    else /* go on either way: did it change the data, too? */
        report(true, "blk_ro %s: write refused: %s", name, err_text(err));

    memset(buf, 0, CHUNK_BYTES);
    err = io_sync(fd, IOCB_CMD_PREAD, 0, buf, n * SECTOR_SIZE);
    if (err) {
        report(false, "blk_ro %s: read-back failed: %s", name, err_text(err));
        goto out;
    }
    report(!memcmp(before, buf, n * SECTOR_SIZE),
           "blk_ro %s: first %u sectors unchanged after the write", name, n);
    if (param.blk_ro_seed) {
        err = disk_verify(fd, nr_sectors, buf, param.blk_ro_seed, &bad);
        report(!err && bad == nr_sectors, "blk_ro %s: still holds the pattern of seed %u%s", name,
               param.blk_ro_seed, err ? " (read failed)" : "");
    }
out:
    buf_free(before);
    buf_free(buf);
    close(fd);
}

/*
 * blk_serial: the virtio-blk serial of blk_disk equals blk_serial. Reading
 * /sys/block/NAME/serial makes virtio_blk ask the device (VIRTIO_BLK_T_GET_ID).
 */
static void check_blk_serial(void)
{
    const char *name = param.blk_disk;
    char path[256], serial[64];
    int err;

    if (!param.blk_serial) {
        report(false, "blk_serial: " PARAM_PREFIX "blk_serial= not given");
        return;
    }
    if (!disk_wait("blk_serial", name, path, sizeof(path)))
        return;
    snprintf(path, sizeof(path), "/sys/block/%s/serial", name);
    err = read_text(path, serial, sizeof(serial));
    if (err)
        report(false, "blk_serial %s: cannot read %s: %s", name, path, strerror(err));
    else if (strcmp(serial, param.blk_serial))
        report(false, "blk_serial %s: '%s' (expected '%s')", name, serial, param.blk_serial);
    else
        report(true, "blk_serial %s: '%s'", name, serial);
}

/* ---- blk_bench: measurements only ------------------------------------ */

struct bench_result {
    uint64_t ops, ns;
};

/*
 * Runs 4 KiB requests at queue depth qd (qd requests submitted together,
 * then waited for) until bench_ops requests or bench_ms elapsed. Random
 * blocks come from a fixed-seed xorshift64, so every run asks for the same.
 */
static int bench_run(int fd, uint64_t nr_blocks, int opcode, bool random, unsigned int qd,
                     char *bufs, struct bench_result *r)
{
    struct iocb cbs[IO_MAX_BATCH];
    uint64_t x = 0x2545f4914f6cdd1dULL, next = 0, block;
    uint64_t t0 = now_ns(), deadline = t0 + param.bench_ms * NS_PER_MS;
    unsigned int i;
    int err = 0;

    r->ops = 0;
    while (r->ops < param.bench_ops && now_ns() < deadline) {
        for (i = 0; i < qd && r->ops + i < param.bench_ops; i++) {
            if (random) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                block = x % nr_blocks;
            } else {
                block = next++ % nr_blocks;
            }
            io_prep(&cbs[i], fd, opcode, block * PAGE_BYTES, bufs + i * PAGE_BYTES, PAGE_BYTES);
        }
        err = io_run(cbs, i);
        if (err)
            break;
        r->ops += i;
    }
    r->ns = now_ns() - t0;
    return err;
}

/*
 * blk_bench: sequential and random 4 KiB reads and writes on bench_disk at
 * queue depth 1 and bench_qd, printed as "# blk-bench ..." lines. Its
 * writes overwrite blocks of the disk with whatever its buffers hold (zeros
 * at first, then data read back from the disk): list it before blk on the
 * same disk. Fails only on I/O errors and timeouts, never on speed.
 */
static void check_blk_bench(void)
{
    static const struct {
        const char *name;
        int opcode;
        bool random;
    } kinds[] = {
        {"seq-write", IOCB_CMD_PWRITE, false},
        {"seq-read", IOCB_CMD_PREAD, false},
        {"rand-write", IOCB_CMD_PWRITE, true},
        {"rand-read", IOCB_CMD_PREAD, true},
    };
    const char *name = param.bench_disk;
    unsigned int qd_high = param.bench_qd < 1 ? 1 : MIN(param.bench_qd, IO_MAX_BATCH);
    unsigned int qds[2] = {1, qd_high}, k, q;
    char path[256], nomerges[16] = "";
    struct bench_result r;
    uint64_t nr_blocks;
    char *bufs;
    int fd, err = 0;

    fd = disk_open("blk_bench", name, O_RDWR | O_DIRECT);
    if (fd < 0)
        return;
    nr_blocks = disk_sectors(fd) / (PAGE_BYTES / SECTOR_SIZE);
    bufs = buf_alloc(qd_high * PAGE_BYTES);
    if (!bufs || !nr_blocks) {
        report(false, "blk_bench %s: %s", name, bufs ? "disk smaller than 4 KiB" : "out of memory");
        goto out;
    }
    /*
     * Each 4 KiB request should reach the device as one request: turn the
     * queue's merging off (nomerges=2) for the run, restored afterwards.
     */
    snprintf(path, sizeof(path), "/sys/block/%s/queue/nomerges", name);
    if ((err = read_text(path, nomerges, sizeof(nomerges))) || (err = write_text(path, "2"))) {
        printf("# blk-bench: cannot turn merging off (%s): sequential requests may merge\n",
               strerror(err));
        nomerges[0] = '\0';
        err = 0;
    }
    for (k = 0; k < ARRAY_SIZE(kinds) && !err; k++) {
        for (q = 0; q < ARRAY_SIZE(qds) && !err; q++) {
            uint64_t us, iops, kib_s;

            err = bench_run(fd, nr_blocks, kinds[k].opcode, kinds[k].random, qds[q], bufs, &r);
            if (err) {
                report(false, "blk_bench %s: %s qd%u: %s", name, kinds[k].name, qds[q],
                       err_text(err));
                break;
            }
            us = r.ns / NS_PER_US ? r.ns / NS_PER_US : 1;
            iops = r.ops * 1000000 / us;
            kib_s = r.ops * (PAGE_BYTES / 1024) * 1000000 / us;
            printf("# blk-bench %s 4k qd%u: %" PRIu64 " IOPS, %" PRIu64 ".%02" PRIu64
                   " MiB/s (%" PRIu64 " requests in %" PRIu64 " ms)\n",
                   kinds[k].name, qds[q], iops, kib_s / 1024, (kib_s % 1024) * 100 / 1024, r.ops,
                   us / 1000);
        }
    }
    if (!err)
        report(true, "blk_bench %s: %zu measurements done", name,
               ARRAY_SIZE(kinds) * ARRAY_SIZE(qds));
    if (nomerges[0] && (err = write_text(path, nomerges)))
        printf("# blk-bench: cannot restore %s: %s\n", path, strerror(err));
out:
    buf_free(bufs);
    close(fd);
}

/* ---- exits: VM-exit cost ---------------------------------------------- */

/*
 * Exits are timed in batches of this many, and only the batches are
 * counted. Userspace cannot turn interrupts off, so a timer tick or console
 * interrupt landing in a batch is counted as exit cost: a little noise (one
 * tick per few ms of exits), alike under every VMM.
 */
#define EXIT_BATCH 256

/*
 * ns for count exits: byte writes of 0 to port when addr is NULL (through
 * /dev/port, see port_fd), else 32-bit reads of addr (the last value read
 * goes to *value). One loop per kind.
 */
static uint64_t time_exits(unsigned int count, unsigned short port, volatile uint32_t *addr,
                           uint32_t *value)
{
    uint64_t total = 0, t0;
    unsigned int done = 0, n, i;
    uint32_t v = 0;

    /* Warm up, untimed: the VMM may log the first access or set it up. */
    if (addr)
        v = *addr;
    else
        port_write(port, 0);
    while (done < count) {
        n = MIN(count - done, EXIT_BATCH);
        t0 = now_ns();
        if (addr) {
            for (i = 0; i < n; i++)
                v = *addr;
        } else {
            for (i = 0; i < n; i++)
                port_write(port, 0);
        }
        total += now_ns() - t0;
        done += n;
    }
    if (value)
        *value = v;
    return total;
}

static void print_exit_cost(const char *kind, unsigned int count, uint64_t ns)
{
    printf("# exit-cost %s: %u exits in %" PRIu64 " ns, %" PRIu64 " ns/exit\n", kind, count, ns,
           (ns + count / 2) / count);
}

/*
 * The 4 bytes at physical address phys, through /dev/mem. O_SYNC maps them
 * uncached, so every read is a real access (an exit), not a cache hit.
 */
static volatile uint32_t *map_phys(unsigned long phys, void **page)
{
    int fd = open("/dev/mem", O_RDONLY | O_SYNC), err;

    if (fd < 0)
        return NULL;
    *page = mmap(NULL, PAGE_BYTES, PROT_READ, MAP_SHARED, fd, phys & ~(PAGE_BYTES - 1UL));
    err = errno;
    close(fd);
    errno = err;
    if (*page == MAP_FAILED)
        return NULL;
    return (volatile uint32_t *)((char *)*page + (phys & (PAGE_BYTES - 1)));
}

/*
 * exits: exit_count byte writes to exit_port (each a write(2) to
 * /dev/port: the system call is part of the figure, alike under every VMM)
 * and exit_count 32-bit reads of exit_mmio, both unclaimed, so every access
 * is a full exit to the VMM, which finds no device and resumes the guest.
 * Prints the time per exit; fails only on bad parameters, no access to the
 * port or the address, or a clock that did not advance.
 */
static void check_exits(void)
{
    unsigned int count = param.exit_count;
    volatile uint32_t *addr;
    uint64_t pio_ns, mmio_ns;
    uint32_t value = 0;
    void *page;

    if (!count || param.exit_port > 0xffff) {
        report(false, "exits: bad parameters (exit_count %u, exit_port 0x%x)", count,
               param.exit_port);
        return;
    }
    if (param.exit_port == DEBUG_EXIT_PORT) {
        report(false, "exits: exit_port 0x%x is the verdict port", param.exit_port);
        return;
    }
    if (param.exit_mmio & 3) {
        report(false, "exits: exit_mmio 0x%lx is not 4-byte aligned", param.exit_mmio);
        return;
    }
    if (port_fd() < 0) {
        report(false, "exits: cannot open /dev/port: %s", strerror(errno));
        return;
    }
    addr = map_phys(param.exit_mmio, &page);
    if (!addr) {
        report(false, "exits: cannot map 0x%lx through /dev/mem: %s", param.exit_mmio,
               strerror(errno));
        return;
    }

    pio_ns = time_exits(count, param.exit_port, NULL, NULL);
    mmio_ns = time_exits(count, 0, addr, &value);
    munmap(page, PAGE_BYTES);

    print_exit_cost("pio-write", count, pio_ns);
    print_exit_cost("mmio-read", count, mmio_ns);
    if (!pio_ns || !mmio_ns)
        report(false, "exits: clock did not advance (pio %" PRIu64 " ns, mmio %" PRIu64 " ns)",
               pio_ns, mmio_ns);
    else
        report(true,
               "exits: %u each, pio-write 0x%x %" PRIu64 " ns/exit, mmio-read 0x%lx %" PRIu64
               " ns/exit (reads 0x%08x)",
               count, param.exit_port, (pio_ns + count / 2) / count, param.exit_mmio,
               (mmio_ns + count / 2) / count, value);
}

/* ---- ext2 ------------------------------------------------------------- */

#define EXT2_DIR      "/mnt/qlite-ext2"
#define EXT2_MAX_FILE (1024 * 1024)

/* FNV-1a, 64 bits: offset basis 0xcbf29ce484222325, prime 0x100000001b3. */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

static uint64_t fnv1a64(const unsigned char *p, size_t len)
{
    uint64_t h = FNV_OFFSET;

    while (len--)
        h = (h ^ *p++) * FNV_PRIME;
    return h;
}

/* Reads up to EXT2_MAX_FILE bytes of a file below the mount point; length or -errno. */
static ssize_t ext2_read(const char *file, char *data)
{
    char path[4096];

    snprintf(path, sizeof(path), EXT2_DIR "%s%s", file[0] == '/' ? "" : "/", file);
    return read_file(path, data, EXT2_MAX_FILE + 1);
}

static void ext2_check_content(const char *name, char *data)
{
    ssize_t n = ext2_read(param.ext2_file, data);
    size_t len;

    if (n < 0) {
        report(false, "ext2 %s: cannot read %s: %s", name, param.ext2_file, strerror(-n));
        return;
    }
    if (!param.ext2_expect) {
        report(true, "ext2 %s: read %s, %zd bytes (no ext2_expect given)", name, param.ext2_file,
               n);
        return;
    }
    len = strlen(param.ext2_expect);
    if (((size_t)n == len || ((size_t)n == len + 1 && data[len] == '\n')) &&
        !memcmp(data, param.ext2_expect, len))
        report(true, "ext2 %s: %s holds '%s'", name, param.ext2_file, param.ext2_expect);
    else
        report(false, "ext2 %s: %s holds '%.*s' (%zd bytes), expected '%s'", name, param.ext2_file,
               (int)MIN(n, 64), data, n, param.ext2_expect);
}

static void ext2_check_hash(const char *name, char *data)
{
    ssize_t n = ext2_read(param.ext2_hash_file, data);
    char hex[17];
    bool same;

    if (n < 0) {
        report(false, "ext2 %s: cannot read %s: %s", name, param.ext2_hash_file, strerror(-n));
        return;
    }
    snprintf(hex, sizeof(hex), "%016" PRIx64, fnv1a64((unsigned char *)data, n));
    same = !param.ext2_hash || !strcasecmp(hex, param.ext2_hash);
    report(same, "ext2 %s: %s: %zd bytes, fnv1a64 %s%s%s", name, param.ext2_hash_file, n, hex,
           same ? "" : ", expected ", same ? "" : param.ext2_hash);
}

/*
 * ext2: mount ext2_disk read-only (ext2) and check ext2_file against
 * ext2_expect (exact bytes, or with one trailing newline) and/or
 * ext2_hash_file against ext2_hash (FNV-1a 64, hex).
 */
static void check_ext2(void)
{
    const char *name = param.ext2_disk;
    char dev[256], *data;

    if (!disk_wait("ext2", name, dev, sizeof(dev)))
        return;
    if (mkdir(EXT2_DIR, 0755) && errno != EEXIST) {
        report(false, "ext2: cannot create " EXT2_DIR ": %s", strerror(errno));
        return;
    }
    data = malloc(EXT2_MAX_FILE + 1);
    if (!data) {
        report(false, "ext2 %s: out of memory", name);
        return;
    }
    if (mount(dev, EXT2_DIR, "ext2", MS_RDONLY, NULL)) {
        report(false, "ext2 %s: mounted read-only at " EXT2_DIR " failed: %s", name,
               strerror(errno));
        free(data);
        return;
    }
    report(true, "ext2 %s: mounted read-only at " EXT2_DIR, name);
    if (param.ext2_expect || !param.ext2_hash_file)
        ext2_check_content(name, data);
    if (param.ext2_hash_file)
        ext2_check_hash(name, data);
    free(data);
    if (umount(EXT2_DIR))
        report(false, "ext2 %s: unmounted failed: %s", name, strerror(errno));
    else
        report(true, "ext2 %s: unmounted", name);
}

/* ---- Network ---------------------------------------------------------- */

/*
 * Streams carry the disk pattern (512-byte blocks numbered from 0 across
 * the stream) and are summarised by a word-wise FNV-1a digest over the
 * little-endian u64 words; pattern.py's stream_digest() on the host.
 *
 * net_tx: connect to net_server, send net_bytes of pattern(net_seed), shut
 *   down our side, read the server's digest line ("%016x\n"), compare.
 * net_rx: listen on net_port, accept one connection, receive net_bytes of
 *   pattern(net_seed + 1) and check every block, send back its digest line
 *   and then net_bytes of pattern(net_seed + 2), shut down our side and wait
 *   for the peer to close (it has read everything then).
 *
 * Every socket gets io_timeout as receive and send timeout (connect and
 * accept obey those too), so a dead peer ends the check.
 */
#define NET_IF "eth0"

static uint64_t digest_words(uint64_t h, const void *buf, size_t len)
{
    const uint64_t *w = buf;
    size_t i;

    for (i = 0; i < len / sizeof(uint64_t); i++)
        h = (h ^ le64toh(w[i])) * FNV_PRIME;
    return h;
}

/* errno of a failed socket call; a socket timeout reads as ETIMEDOUT. */
static int net_errno(void)
{
    return errno == EAGAIN || errno == EINPROGRESS ? ETIMEDOUT : errno;
}

static int net_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = param.io_timeout};

    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
        return errno;
    return 0;
}

/* A TCP socket with our timeouts in *fd; 0 or errno. */
static int net_socket(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    if (*fd < 0)
        return errno;
    return net_timeouts(*fd);
}

static int net_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    ssize_t n;

    while (len) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0)
            return net_errno();
        p += n;
        len -= n;
    }
    return 0;
}

/* Fills buf unless the stream ends first; returns the bytes read or -errno. */
static ssize_t net_recv_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    ssize_t n;

    while (got < len) {
        n = recv(fd, (char *)buf + got, len - got, 0);
        if (n < 0)
            return -net_errno();
        if (n == 0)
            break;
        got += n;
    }
    return got;
}

/* Sends net_bytes of pattern(seed); returns 0 or errno, and the digest. */
static int net_send_pattern(int fd, void *buf, uint64_t seed, uint64_t *digest)
{
    unsigned int off, len;
    int err;

    *digest = FNV_OFFSET;
    for (off = 0; off < param.net_bytes; off += len) {
        len = MIN(CHUNK_BYTES, param.net_bytes - off);
        pattern_fill(buf, seed, off / SECTOR_SIZE, len / SECTOR_SIZE);
        *digest = digest_words(*digest, buf, len);
        err = net_send_all(fd, buf, len);
        if (err)
            return err;
    }
    return 0;
}

static void print_rate(const char *check, const char *what, unsigned long long ns)
{
    printf("# %s: %u KiB %s in %llu ms, %llu KiB/s (guest clock)\n", check, param.net_bytes >> 10,
           what, ns / NS_PER_MS, ns ? (param.net_bytes >> 10) * NS_PER_S / ns : 0);
}

static void check_net_addr(void)
{
    struct ifaddrs *ifs, *ifa;
    struct in_addr want, have = {0};
    char text[INET_ADDRSTRLEN] = "no IPv4 address";

    if (!param.net_addr || inet_pton(AF_INET, param.net_addr, &want) != 1) {
        report(false, "net_addr: " PARAM_PREFIX "net_addr=A.B.C.D is required");
        return;
    }
    if (getifaddrs(&ifs)) {
        report(false, "net_addr: getifaddrs: %s", strerror(errno));
        return;
    }
    for (ifa = ifs; ifa && have.s_addr != want.s_addr; ifa = ifa->ifa_next)
        if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET && !strcmp(ifa->ifa_name, NET_IF))
            have = ((struct sockaddr_in *)ifa->ifa_addr)->sin_addr;
    freeifaddrs(ifs);
    if (have.s_addr)
        inet_ntop(AF_INET, &have, text, sizeof(text));
    report(have.s_addr == want.s_addr, "net_addr: " NET_IF " has %s (want %s)", text,
           param.net_addr);
}

/* "A.B.C.D:PORT" into addr; false if it is not that. */
static bool parse_server(const char *s, struct sockaddr_in *addr)
{
    char host[INET_ADDRSTRLEN];
    unsigned int port;
    int end = 0;

    if (!s || sscanf(s, "%15[0-9.]:%u%n", host, &port, &end) != 2 || s[end] || !port ||
        port > 65535)
        return false;
    addr->sin_family = AF_INET;
    addr->sin_port = htons(port);
    return inet_pton(AF_INET, host, &addr->sin_addr) == 1;
}

static void check_net_tx(void)
{
    struct sockaddr_in addr;
    char line[17] = "", want[17];
    uint64_t digest = 0, t0;
    void *buf;
    ssize_t n;
    int fd = -1, err;

    if (!parse_server(param.net_server, &addr) || param.net_bytes % SECTOR_SIZE) {
        report(false, "net_tx: " PARAM_PREFIX "net_server=A.B.C.D:PORT is required");
        return;
    }
    buf = malloc(CHUNK_BYTES);
    err = buf ? net_socket(&fd) : ENOMEM;
    t0 = now_ns();
    if (!err && connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
        err = net_errno();
    if (!err)
        err = net_send_pattern(fd, buf, param.net_seed, &digest);
    if (!err) {
        print_rate("net_tx", "sent", now_ns() - t0);
        if (shutdown(fd, SHUT_WR))
            err = errno;
    }
    if (!err && (n = net_recv_full(fd, line, 16)) < 0)
        err = -n;
    if (err) {
        report(false, "net_tx: to %s: %s", param.net_server, err_text(err));
    } else {
        snprintf(want, sizeof(want), "%016" PRIx64, digest);
        report(!strcmp(line, want), "net_tx: %u bytes to %s, the server's digest %s (want %s)",
               param.net_bytes, param.net_server, line, want);
    }
    if (fd >= 0)
        close(fd);
    free(buf);
}

static void check_net_rx(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    unsigned int off = 0, bad = 0;
    uint64_t digest = FNV_OFFSET, sent, t0;
    char line[18];
    void *buf, *want;
    int lfd = -1, fd = -1, one = 1, err;
    ssize_t n = 0;

    if (!param.net_port || param.net_port > 65535 || param.net_bytes % SECTOR_SIZE) {
        report(false, "net_rx: " PARAM_PREFIX "net_port=PORT is required");
        return;
    }
    addr.sin_port = htons(param.net_port);
    buf = malloc(CHUNK_BYTES);
    want = malloc(CHUNK_BYTES);
    err = buf && want ? net_socket(&lfd) : ENOMEM;
    if (!err && (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
                 bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 1)))
        err = errno;
    if (err)
        goto out;
    printf("qlite-agent: net_rx: listening on port %u\n", param.net_port);
    fd = accept(lfd, NULL, NULL);
    err = fd < 0 ? net_errno() : net_timeouts(fd);
    if (err)
        goto out;
    t0 = now_ns();
    while (off < param.net_bytes) {
        n = net_recv_full(fd, buf, MIN(CHUNK_BYTES, param.net_bytes - off));
        if (n <= 0)
            break;
        digest = digest_words(digest, buf, n);
        if (!(n % SECTOR_SIZE)) {
            pattern_fill(want, param.net_seed + 1, off / SECTOR_SIZE, n / SECTOR_SIZE);
            bad += memcmp(buf, want, n) != 0;
        }
        off += n;
    }
    if (n < 0) {
        err = -n;
        goto out;
    }
    print_rate("net_rx", "received", now_ns() - t0);
    report(off == param.net_bytes && !bad, "net_rx: received %u bytes (want %u), %u bad chunks",
           off, param.net_bytes, bad);
    snprintf(line, sizeof(line), "%016" PRIx64 "\n", digest);
    err = net_send_all(fd, line, 17);
    if (!err)
        err = net_send_pattern(fd, buf, param.net_seed + 2, &sent);
    if (!err && shutdown(fd, SHUT_WR))
        err = errno;
    /*
     * The peer closes once it has read everything: until then our last
     * bytes may still be in the send queue, and ending the VM (the
     * verdict) would lose them.
     */
    if (!err && (n = net_recv_full(fd, buf, 1)) < 0)
        err = -n;
out:
    report(!err, "net_rx: exchange on port %u: %s", param.net_port, err ? err_text(err) : "done");
    if (fd >= 0)
        close(fd);
    if (lfd >= 0)
        close(lfd);
    free(want);
    free(buf);
}

/* ---- mig_workload ----------------------------------------------------- */

/*
 * One round of mig_workload's disk I/O: a chunk of pattern r written to
 * sector 0 (the disk is open with O_DSYNC: a FUA write, or write + flush),
 * then read back into dma, a buffer only the device ever writes (so a
 * migration that misses the device's writes to guest memory leaves it
 * stale). Returns how many checks failed.
 */
static unsigned int mig_disk_round(int fd, void *wbuf, void *dma, unsigned int r, int *err)
{
    unsigned int bad = 0;

    /* What the previous round read must still be there, wherever we run now. */
    if (r > 1 && pattern_check(dma, r - 1, 0, CHUNK_SECTORS) != CHUNK_SECTORS)
        bad++;
    pattern_fill(wbuf, r, 0, CHUNK_SECTORS);
    *err = io_sync(fd, IOCB_CMD_PWRITE, 0, wbuf, CHUNK_BYTES);
    if (!*err)
        *err = io_sync(fd, IOCB_CMD_PREAD, 0, dma, CHUNK_BYTES);
    if (!*err && pattern_check(dma, r, 0, CHUNK_SECTORS) != CHUNK_SECTORS)
        bad++;
    return bad;
}

/*
 * The kernel writes its messages straight to the serial port, in the middle
 * of whatever line of ours the tty driver is still sending: a round line cut
 * in two is a round the host cannot read. While the workload runs only
 * emergencies reach the console; the errors the kernel logged meanwhile (what
 * "quiet" shows) are printed after it as comments.
 */
#define KLOG_CONSOLE_LEVEL 8 /* SYSLOG_ACTION_CONSOLE_LEVEL */
#define KLOG_QUIET_SHOWS 3   /* KERN_ERR and worse */

static int kmsg_hold(int *level)
{
    char text[64] = "";
    int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

    if (fd >= 0)
        lseek(fd, 0, SEEK_END);
    *level = read_file("/proc/sys/kernel/printk", text, sizeof(text)) > 0 ? atoi(text) : 0;
    if (*level > 1)
        klogctl(KLOG_CONSOLE_LEVEL, NULL, 1);
    return fd;
}

static void kmsg_release(int fd, int level)
{
    char rec[1024];
    ssize_t n;

    fflush(stdout);
    tcdrain(STDOUT_FILENO);
    if (level > 1)
        klogctl(KLOG_CONSOLE_LEVEL, NULL, level);
    if (fd < 0)
        return;
    /* One record per read: "prio,seq,usec,flags;text\n"; EPIPE for one overwritten. */
    while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
        char *msg;
        if (n <= 0)
            continue;
        rec[n] = 0;
        msg = strchr(rec, ';');
        if (msg && (atoi(rec) & 7) <= KLOG_QUIET_SHOWS)
            printf("# kernel: %.*s\n", (int)strcspn(msg + 1, "\n"), msg + 1);
    }
    close(fd);
}

/*
 * mig_workload: round r first checks that the memory still holds round
 * r-1's pattern (seed r-1, blocks numbered from 0), then writes round r's,
 * does the round's disk I/O when mig_disk names a disk, prints
 * "qlite-agent: mig round R monotonic NS" and sleeps. A VM saved and
 * restored (or migrated) in the middle must carry on with the next round,
 * its memory intact, its disk too, and its clock never going backwards.
 */
static void check_mig_workload(void)
{
    size_t bytes = (size_t)param.mig_kib << 10;
    unsigned int sectors = bytes / SECTOR_SIZE, r, bad = 0, disk_bad = 0;
    uint64_t now, last = 0, backwards = 0;
    void *mem, *wbuf = NULL, *dma = NULL;
    int fd = -1, err = 0, kmsg, level;

    if (!param.mig_rounds || !sectors) {
        report(false, "mig_workload: " PARAM_PREFIX "mig_rounds=N is required");
        return;
    }
    /* Populated up front: real guest RAM, rewritten every round. */
    mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1,
               0);
    if (mem == MAP_FAILED) {
        report(false, "mig_workload: cannot map %u KiB: %s", param.mig_kib, strerror(errno));
        return;
    }
    if (param.mig_disk) {
        fd = disk_open("mig_workload", param.mig_disk, O_RDWR | O_DIRECT | O_DSYNC);
        wbuf = buf_alloc(CHUNK_BYTES);
        dma = buf_alloc(CHUNK_BYTES);
        if (fd < 0 || !wbuf || !dma) {
            report(false, "mig_workload: cannot set up disk I/O on %s", param.mig_disk);
            goto out;
        }
    }
    kmsg = kmsg_hold(&level);
    for (r = 1; r <= param.mig_rounds && !err; r++) {
        if (r > 1 && pattern_check(mem, r - 1, 0, sectors) != sectors)
            bad++;
        pattern_fill(mem, r, 0, sectors);
        if (fd >= 0)
            disk_bad += mig_disk_round(fd, wbuf, dma, r, &err);
        now = now_ns();
        if (now < last)
            backwards++;
        last = now;
        printf("qlite-agent: mig round %u monotonic %" PRIu64 "\n", r, now);
        sleep_ms(param.mig_ms);
    }
    kmsg_release(kmsg, level);
    report(!bad && !backwards && !disk_bad && !err,
           "mig_workload: %u rounds over %u KiB, %u with memory changed under us, clock went "
           "back %" PRIu64 " times, disk %s: %u bad, error %s",
           param.mig_rounds, param.mig_kib, bad, backwards, fd >= 0 ? param.mig_disk : "none",
           disk_bad, err ? err_text(err) : "none");
out:
    if (fd >= 0)
        close(fd);
    buf_free(wbuf);
    buf_free(dma);
    munmap(mem, bytes);
}

/*
 * Waits until the console has sent what we printed: the serial driver sends
 * from a buffer, and a verdict, reboot or power-off would cut it short.
 * (On stdout that is no terminal there is nothing to wait for.)
 */
static void console_drain(void)
{
    fflush(stdout);
    tcdrain(STDOUT_FILENO);
}

/* ---- power_button ----------------------------------------------------- */

/*
 * power_button: what a distribution's acpid or logind does. The ACPI button
 * driver turns a power button press (QMP system_powerdown) into a KEY_POWER
 * event on its input device, "Power Button"; a child process of ours waits
 * for it there and powers the machine off (ACPI S5). The child outlives the
 * agent's verdict and heartbeat.
 */
#define INPUT_CLASS "/sys/class/input"

/* Finds the input device called name: its eventN goes to event. */
static bool input_find(const char *name, char event[NAME_MAX + 1])
{
    char path[300], text[64];
    struct dirent *de;
    DIR *dir = opendir(INPUT_CLASS);
    bool found = false;

    while (dir && !found && (de = readdir(dir))) {
        snprintf(path, sizeof(path), INPUT_CLASS "/%s/device/name", de->d_name);
        found = !strncmp(de->d_name, "event", 5) && !read_text(path, text, sizeof(text)) &&
                !strcmp(text, name);
        if (found)
            snprintf(event, NAME_MAX + 1, "%s", de->d_name);
    }
    if (dir)
        closedir(dir);
    return found;
}

/* Opens /dev/input/EVENT, made from sysfs if devtmpfs has not made it; fd or -errno. */
static int input_open(const char *event, char *node, size_t size)
{
    char path[300], dev[32];
    unsigned int major, minor;
    int fd, err;

    snprintf(node, size, "/dev/input/%s", event);
    if (access(node, F_OK)) {
        snprintf(path, sizeof(path), INPUT_CLASS "/%s/dev", event);
        err = read_text(path, dev, sizeof(dev));
        if (err)
            return -err;
        if (sscanf(dev, "%u:%u", &major, &minor) != 2)
            return -EINVAL;
        if ((mkdir("/dev/input", 0755) && errno != EEXIST) ||
            mknod(node, S_IFCHR | 0600, makedev(major, minor)))
            return -errno;
    }
    fd = open(node, O_RDONLY);
    return fd < 0 ? -errno : fd;
}

static void __attribute__((noreturn)) power_button_handler(int fd)
{
    struct input_event ev[16];
    ssize_t len, i;

    while ((len = read(fd, ev, sizeof(ev))) > 0 || (len < 0 && errno == EINTR)) {
        for (i = 0; i < len / (ssize_t)sizeof(ev[0]); i++) {
            if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1) {
                printf("qlite-agent: power button pressed, powering off\n");
                console_drain();
                sync();
                reboot(RB_POWER_OFF);
                printf("qlite-agent: power-off failed: %s\n", strerror(errno));
            }
        }
    }
    printf("qlite-agent: power button handler stopped: %s\n", len ? strerror(errno) : "EOF");
    _exit(1);
}

static void check_power_button(void)
{
    char event[NAME_MAX + 1], node[300];
    unsigned int waited;
    pid_t pid;
    int fd;

    /* The button driver may still be probing. */
    for (waited = 0; !input_find("Power Button", event); waited += POLL_MS) {
        if (waited >= DEVICE_WAIT_MS) {
            report(false, "power_button: no input device named 'Power Button'");
            return;
        }
        sleep_ms(POLL_MS);
    }
    fd = input_open(event, node, sizeof(node));
    if (fd < 0) {
        report(false, "power_button: cannot open %s: %s", node, strerror(-fd));
        return;
    }
    /* Listening from here on: evdev queues the events from the open. */
    pid = fork();
    if (pid == 0)
        power_button_handler(fd);
    close(fd);
    if (pid < 0)
        report(false, "power_button: cannot start the handler: %s", strerror(errno));
    else
        report(true, "power_button: handler on %s", node);
}

/* ---- Running the checks ------------------------------------------------ */

static void check_hostile_disk(void)
{
    check_hostile(param.hostile_disk);
}

static void check_hostile_disk_recover(void)
{
    check_hostile_recover(param.hostile_disk);
}

static const struct {
    const char *name;
    void (*run)(void);
} known_checks[] = {
    {"cpus", check_cpus},
    {"kvmclock", check_kvmclock},
    {"rtc", check_rtc},
    {"blk_bench", check_blk_bench},
    {"blk", check_blk},
    {"blk_serial", check_blk_serial},
    {"blk_ro", check_blk_ro},
    {"ext2", check_ext2},
    {"exits", check_exits},
    {"power_button", check_power_button},
    {"mig_workload", check_mig_workload},
    {"net_addr", check_net_addr},
    {"net_tx", check_net_tx},
    {"net_rx", check_net_rx},
    {"hostile", check_hostile_disk},
    {"hostile_recover", check_hostile_disk_recover},
    {"rng", check_rng},
};

/* Runs each check named in param.checks, in order. */
static void run_listed_checks(void)
{
    char *list = strdup(param.checks), *cursor = list, *name;
    size_t i;

    if (!list) {
        report(false, "out of memory");
        return;
    }
    while ((name = strsep(&cursor, ","))) {
        if (!*name)
            continue;
        for (i = 0; i < ARRAY_SIZE(known_checks) && strcmp(name, known_checks[i].name); i++)
            ;
        if (i < ARRAY_SIZE(known_checks))
            known_checks[i].run();
        else
            report(false, "unknown check '%s'", name);
    }
    free(list);
}

/*
 * No lock keeps the kernel off CMOS meanwhile (it has rtc_lock); nothing
 * there touches it while we run, though: no RTC interrupts are enabled and
 * no one sets the hardware clock.
 */
static uint8_t cmos_get(uint8_t index)
{
    port_write(CMOS_INDEX_PORT, index);
    return port_read(CMOS_DATA_PORT);
}

static void cmos_set(uint8_t index, uint8_t val)
{
    port_write(CMOS_INDEX_PORT, index);
    port_write(CMOS_DATA_PORT, val);
}

/*
 * reboot=1: on the first boot, set the marker and reboot (not returning);
 * on the second, clear it. Returns 0 when we came back, else an errno.
 */
static int reboot_once(void)
{
    int err;

    if (port_fd() < 0)
        return errno;
    if (cmos_get(REBOOT_MARK_INDEX) == REBOOT_MARK) {
        cmos_set(REBOOT_MARK_INDEX, 0);
        return 0;
    }
    cmos_set(REBOOT_MARK_INDEX, REBOOT_MARK);
    printf("qlite-agent: rebooting\n");
    console_drain();
    sync();
    reboot(RB_AUTOBOOT);
    err = errno;
    cmos_set(REBOOT_MARK_INDEX, 0);
    return err;
}

/*
 * One write to isa-debug-exit. QLITE_AGENT_NO_VERDICT=1 skips it, for
 * trying the agent outside a VM, where that port may belong to real
 * hardware.
 */
static void verdict(bool ok)
{
    const char *skip = getenv("QLITE_AGENT_NO_VERDICT");

    if (skip && !strcmp(skip, "1"))
        return;
    console_drain();
    if (port_fd() < 0 || !port_write(DEBUG_EXIT_PORT, ok ? DEBUG_EXIT_PASS : DEBUG_EXIT_FAIL))
        printf("# verdict: /dev/port: %s\n", strerror(errno));
}

/*
 * After the verdict, with heartbeat_ms set: a numbered line with the
 * guest's clock, forever, so the host sees the guest run, stop and continue.
 */
static void __attribute__((noreturn)) heartbeat(void)
{
    unsigned int n;

    for (n = 1;; n++) {
        sleep_ms(param.heartbeat_ms);
        printf("qlite-agent: heartbeat %u monotonic %" PRIu64 "\n", n, now_ns());
    }
}

int main(void)
{
    int bad, reboot_err = 0;

    /* Line by line to the console, as it happens: a host test may act on a line. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    bad = load_params();
    use_kvmclock();
    if (!bad && param.reboot)
        reboot_err = reboot_once();

    printf("TAP version 13\n");
    if (bad) {
        /* Never run checks with a misspelt parameter: blk_dsk= would write vda. */
        report(false, "%d unknown or bad " PARAM_PREFIX " parameter(s), no checks run", bad);
    } else {
        if (param.reboot && reboot_err)
            report(false, "reboot failed: %s", strerror(reboot_err));
        else if (param.reboot)
            report(true, "came back after reboot");
        run_listed_checks();
        if (param.fail)
            report(false, "forced failure (" PARAM_PREFIX "fail=1)");
    }
    /* The plan comes last: a check may report more than one line. */
    printf("1..%d\n", test_number);

    printf("qlite-agent: %s\n", all_ok ? "PASS" : "FAIL");
    verdict(all_ok);
    if (param.heartbeat_ms)
        heartbeat();
    return 0;
}
