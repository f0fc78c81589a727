/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/iov.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Walks the iovecs from offset, copying into them (to_iov) or out of them. */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t offset, uint8_t *buf,
                       size_t len, bool to_iov)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = MIN(iov[i].iov_len - offset, len - done);
        uint8_t *base = (uint8_t *)iov[i].iov_base + offset;
        if (to_iov) {
            memcpy(base, buf + done, chunk);
        } else {
            memcpy(buf + done, base, chunk);
        }
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len)
{
    return iov_copy(iov, n, offset, buf, len, false);
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf, size_t len)
{
    /* buf is only read on this path. */
    return iov_copy(iov, n, offset, (uint8_t *)(uintptr_t)buf, len, true);
}
