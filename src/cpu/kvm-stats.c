/* SPDX-License-Identifier: GPL-2.0-or-later */
/* KVM's binary statistics (kvm-stats.h; Linux's Documentation/virt/kvm/api.rst, 4.133). */
#include "cpu/kvm-stats.h"

#include "util/error.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* A file larger than this is not KVM's. */
#define KVM_STATS_MAX_DESC 4096
#define KVM_STATS_MAX_NAME 256

static bool read_at(int fd, void *buf, size_t len, uint64_t offset, GError **error)
{
    ssize_t n = pread(fd, buf, len, (off_t)offset);
    if (n != (ssize_t)len) {
        qlite_error_errno(error, n < 0 ? errno : EIO, "KVM statistics: reading %zu bytes at %#llx",
                          len, (unsigned long long)offset);
        return false;
    }
    return true;
}

void kvm_stats_free(KvmStats *s)
{
    if (!s) {
        return;
    }
    for (unsigned i = 0; i < s->n; i++) {
        g_free(s->desc[i].name);
    }
    g_free(s->desc);
    close(s->fd);
    g_free(s);
}

static bool read_descriptors(KvmStats *s, const struct kvm_stats_header *h, GError **error)
{
    size_t one = sizeof(struct kvm_stats_desc) + h->name_size;
    g_autofree uint8_t *buf = g_malloc((size_t)h->num_desc * one);
    if (!read_at(s->fd, buf, (size_t)h->num_desc * one, h->desc_offset, error)) {
        return false;
    }
    s->desc = g_new0(KvmStatsDesc, h->num_desc);
    for (uint32_t i = 0; i < h->num_desc; i++) {
        const struct kvm_stats_desc *d = (const void *)(buf + i * one);
        KvmStatsDesc *out = &s->desc[s->n++];
        out->name = g_strndup(d->name, h->name_size);
        out->flags = d->flags;
        out->exponent = d->exponent;
        out->size = d->size;
        out->offset = d->offset;
        out->bucket_size = d->bucket_size;
        if (d->size == 0 || d->offset % sizeof(uint64_t)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                        "KVM statistics: descriptor %s has size %u at offset %u", out->name,
                        d->size, d->offset);
            return false;
        }
        s->words = MAX(s->words, d->offset / sizeof(uint64_t) + d->size);
    }
    return true;
}

KvmStats *kvm_stats_open(int kvm_fd, GError **error)
{
    int fd = ioctl(kvm_fd, KVM_GET_STATS_FD, NULL);
    if (fd < 0) {
        if (errno == ENOTTY || errno == EINVAL) {
            return NULL; /* a kernel without binary statistics */
        }
        qlite_error_errno(error, errno, "KVM_GET_STATS_FD");
        return NULL;
    }
    g_autoptr(KvmStats) s = g_new0(KvmStats, 1);
    s->fd = fd;
    struct kvm_stats_header h;
    if (!read_at(fd, &h, sizeof(h), 0, error)) {
        return NULL;
    }
    if (h.num_desc > KVM_STATS_MAX_DESC || h.name_size == 0 || h.name_size > KVM_STATS_MAX_NAME) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                    "KVM statistics: %u descriptors with names of %u bytes", h.num_desc,
                    h.name_size);
        return NULL;
    }
    s->data_offset = h.data_offset;
    if (!read_descriptors(s, &h, error)) {
        return NULL;
    }
    return g_steal_pointer(&s);
}

uint64_t *kvm_stats_read(const KvmStats *s, GError **error)
{
    g_autofree uint64_t *data = g_new0(uint64_t, MAX(s->words, 1));
    if (!read_at(s->fd, data, s->words * sizeof(uint64_t), s->data_offset, error)) {
        return NULL;
    }
    return g_steal_pointer(&data);
}
