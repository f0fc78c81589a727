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

size_t iov_size(const struct iovec *iov, unsigned n)
{
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        len += iov[i].iov_len;
    }
    return len;
}

unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
                   struct iovec *dst)
{
    unsigned out = 0;
    for (unsigned i = 0; i < n && len > 0; i++) {
        if (skip >= src[i].iov_len) {
            skip -= src[i].iov_len;
            continue;
        }
        size_t chunk = MIN(src[i].iov_len - skip, len);
        dst[out++] =
            (struct iovec){.iov_base = (uint8_t *)src[i].iov_base + skip, .iov_len = chunk};
        len -= chunk;
        skip = 0;
    }
    return out;
}

void iov_copy_iov(const struct iovec *dst, unsigned dn, size_t dst_off, const struct iovec *src,
                  unsigned sn, size_t src_off, size_t len)
{
    for (unsigned i = 0; i < dn && len > 0; i++) {
        if (dst_off >= dst[i].iov_len) {
            dst_off -= dst[i].iov_len;
            continue;
        }
        size_t chunk = MIN(dst[i].iov_len - dst_off, len);
        iov_to_buf(src, sn, src_off, (uint8_t *)dst[i].iov_base + dst_off, chunk);
        src_off += chunk;
        len -= chunk;
        dst_off = 0;
    }
}
