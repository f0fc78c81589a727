/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Copying between a flat buffer and an iovec array, from offset into the iovecs. */
#include <stddef.h>
#include <sys/uio.h>

/* Both return the bytes copied: less than len when the iovecs end first. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf,
                    size_t len);

/* The total length of the iovecs. */
size_t iov_size(const struct iovec *iov, unsigned n);
/*
 * The part [skip, skip + len) of src as entries of dst, which has room for n
 * (a slice never has more entries than its source); returns how many.
 * len SIZE_MAX: everything from skip on.
 */
unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
                   struct iovec *dst);
/* Copies len bytes of src from src_off into dst from dst_off; never past the end of dst. */
void iov_copy_iov(const struct iovec *dst, unsigned dn, size_t dst_off, const struct iovec *src,
                  unsigned sn, size_t src_off, size_t len);
