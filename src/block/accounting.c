/* SPDX-License-Identifier: GPL-2.0-or-later */
/* I/O statistics of a disk (accounting.h). */
#include "block/accounting.h"

#include <string.h>
#include <time.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void block_acct_init(BlockAcctStats *s)
{
    *s = (BlockAcctStats){0};
    g_mutex_init(&s->lock);
}

void block_acct_destroy(BlockAcctStats *s)
{
    g_mutex_clear(&s->lock);
}

void block_acct_start(BlockAcctCookie *ck, BlockAcctType type, uint64_t offset, uint64_t bytes)
{
    *ck = (BlockAcctCookie){.type = type, .offset = offset, .bytes = bytes, .start_ns = now_ns()};
}

void block_acct_done(BlockAcctStats *s, const BlockAcctCookie *ck, bool ok)
{
    int64_t now = now_ns();
    BlockAcctCounters *c = &s->c[ck->type];
    g_mutex_lock(&s->lock);
    c->total_ns += (uint64_t)(now - ck->start_ns);
    if (ok) {
        c->ops++;
        c->bytes += ck->bytes;
        if (ck->type == BLOCK_ACCT_WRITE && ck->offset + ck->bytes > s->wr_highest_offset) {
            s->wr_highest_offset = ck->offset + ck->bytes;
        }
    } else {
        c->failed++;
    }
    s->last_done_ns = now;
    g_mutex_unlock(&s->lock);
}

void block_acct_invalid(BlockAcctStats *s, BlockAcctType type)
{
    g_mutex_lock(&s->lock);
    s->c[type].invalid++;
    s->last_done_ns = now_ns();
    g_mutex_unlock(&s->lock);
}

void block_acct_snapshot(BlockAcctStats *s, BlockAcctSnapshot *out)
{
    int64_t now = now_ns();
    g_mutex_lock(&s->lock);
    memcpy(out->c, s->c, sizeof(out->c));
    out->wr_highest_offset = s->wr_highest_offset;
    out->idle_ns = s->last_done_ns ? now - s->last_done_ns : -1;
    g_mutex_unlock(&s->lock);
}
