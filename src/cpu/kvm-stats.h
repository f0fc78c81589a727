/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * KVM's binary statistics (KVM_GET_STATS_FD) of the VM or of one vCPU: the
 * kernel's own counters (exits, halts, interrupt windows, ...), described
 * once by the file's header and descriptors and read again on each query
 * (query-stats). The descriptor is opened when the VM or vCPU is created,
 * before any seccomp filter; a read is one pread.
 */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct KvmStatsDesc {
    char *name;
    uint32_t flags; /* KVM_STATS_TYPE_*, KVM_STATS_UNIT_*, KVM_STATS_BASE_* */
    int16_t exponent;
    uint16_t size; /* values: 1, or a histogram's buckets */
    uint32_t offset;
    uint32_t bucket_size; /* a linear histogram's */
} KvmStatsDesc;

typedef struct KvmStats {
    int fd;
    uint64_t data_offset;
    size_t words; /* of the data block */
    unsigned n;
    KvmStatsDesc *desc;
} KvmStats;

/*
 * The statistics of a VM or vCPU descriptor; NULL without an error where the
 * kernel has none (before Linux 5.14), NULL with one on a malformed file.
 */
KvmStats *kvm_stats_open(int kvm_fd, GError **error);
void kvm_stats_free(KvmStats *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KvmStats, kvm_stats_free)
/* The data block now: desc[i]'s values start at word desc[i].offset / 8. */
uint64_t *kvm_stats_read(const KvmStats *s, GError **error);
