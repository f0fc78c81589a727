/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rng: the kernel's hardware RNG core has picked the virtio-rng device, and
 * /dev/hwrng, which reads straight from it, gives bytes that look random
 * (each of the 256 byte values occurs, no long run of one value).
 */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RNG_CURRENT "/sys/class/misc/hw_random/rng_current"
#define RNG_BYTES   65536
#define RNG_WAIT_MS 10000

void check_rng(void)
{
    static unsigned char buf[RNG_BYTES];
    char current[64] = "";
    unsigned int waited;

    for (waited = 0; waited < RNG_WAIT_MS; waited += 100) {
        if (!read_text(RNG_CURRENT, current, sizeof(current)) &&
            !strncmp(current, "virtio_rng", 10))
            break;
        sleep_ms(100);
    }
    if (strncmp(current, "virtio_rng", 10)) {
        report(false, "rng: the hwrng in use is '%s', not virtio_rng", current);
        return;
    }
    report(true, "rng: the hwrng in use is %s", current);

    int fd = open("/dev/hwrng", O_RDONLY);
    if (fd < 0) {
        report(false, "rng: cannot open /dev/hwrng: %s", strerror(errno));
        return;
    }
    size_t got = 0;
    uint64_t t0 = now_ns();
    while (got < sizeof(buf)) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            report(false, "rng: /dev/hwrng read after %zu bytes: %s", got,
                   n < 0 ? strerror(errno) : "end of file");
            close(fd);
            return;
        }
        got += (size_t)n;
    }
    close(fd);
    uint64_t us = (now_ns() - t0) / 1000;

    unsigned int seen[256] = {0}, values = 0, run = 1, longest = 1;
    for (size_t i = 0; i < got; i++) {
        values += !seen[buf[i]]++;
        run = i && buf[i] == buf[i - 1] ? run + 1 : 1;
        longest = run > longest ? run : longest;
    }
    /* 64 KiB of random bytes: every value ~256 times; a run of 6 equal bytes is ~1e-7 likely. */
    report(values == 256 && longest < 6,
           "rng: %zu bytes from /dev/hwrng in %llu us: %u byte values, longest run %u", got,
           (unsigned long long)us, values, longest);
}
