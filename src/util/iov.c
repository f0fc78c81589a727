/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/iov.h"

#include <glib.h>
#include <stdint.h>
#include <string.h>

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = MIN(iov[i].iov_len - offset, len - done);
        memcpy((uint8_t *)buf + done, (const uint8_t *)iov[i].iov_base + offset, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = MIN(iov[i].iov_len - offset, len - done);
        memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}
