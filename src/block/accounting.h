/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A disk's I/O statistics as QEMU keeps them for query-blockstats: per kind
 * of request (read, write, flush, unmap) the bytes, the operations that
 * completed, failed or were invalid (refused before any I/O: out of range,
 * misaligned, a write to a read-only disk), and the time they took from
 * submission to completion. Written by the device's I/O thread, read by the
 * monitor: a mutex keeps each snapshot whole.
 */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    BLOCK_ACCT_READ,
    BLOCK_ACCT_WRITE,
    BLOCK_ACCT_FLUSH,
    BLOCK_ACCT_UNMAP,
    BLOCK_ACCT_NR,
} BlockAcctType;

typedef struct {
    uint64_t bytes, ops, failed, invalid, total_ns;
} BlockAcctCounters;

/* What query-blockstats reports. */
typedef struct {
    BlockAcctCounters c[BLOCK_ACCT_NR];
    uint64_t wr_highest_offset; /* the end of the furthest write, bytes */
    int64_t idle_ns;            /* since the last completion; -1 before the first */
} BlockAcctSnapshot;

typedef struct BlockAcctStats {
    GMutex lock;
    BlockAcctCounters c[BLOCK_ACCT_NR];
    uint64_t wr_highest_offset;
    int64_t last_done_ns; /* 0: nothing completed yet */
} BlockAcctStats;

/* One request, from its submission. */
typedef struct {
    BlockAcctType type;
    uint64_t offset, bytes;
    int64_t start_ns;
} BlockAcctCookie;

void block_acct_init(BlockAcctStats *s);
void block_acct_destroy(BlockAcctStats *s);
void block_acct_start(BlockAcctCookie *ck, BlockAcctType type, uint64_t offset, uint64_t bytes);
/*
 * The request completed (ok) or failed; as QEMU's (account_failed), a failed
 * one counts its time but no bytes and no operation. An invalid one counts
 * as an access for the idle time (account_invalid).
 */
void block_acct_done(BlockAcctStats *s, const BlockAcctCookie *ck, bool ok);
void block_acct_invalid(BlockAcctStats *s, BlockAcctType type);
void block_acct_snapshot(BlockAcctStats *s, BlockAcctSnapshot *out);
