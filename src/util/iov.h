/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Copying between a flat buffer and an iovec array, from offset into the iovecs. */
#include <stddef.h>
#include <sys/uio.h>

/* Both return the bytes copied: less than len when the iovecs end first. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf,
                    size_t len);
