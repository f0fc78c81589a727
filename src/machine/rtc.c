/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * MC146818A real-time clock. The time is computed from the host clock at each
 * read, so there is no update cycle (UIP always reads 0) and no timer thread.
 * Periodic, alarm and update interrupts (IRQ 8) are not generated.
 */
#include "machine/rtc.h"

#include <string.h>

enum {
    RTC_SECONDS = 0x00,
    RTC_MINUTES = 0x02,
    RTC_HOURS = 0x04,
    RTC_DAY_OF_WEEK = 0x06,
    RTC_DAY_OF_MONTH = 0x07,
    RTC_MONTH = 0x08,
    RTC_YEAR = 0x09,
    RTC_REG_A = 0x0a,
    RTC_REG_B = 0x0b,
    RTC_REG_C = 0x0c,
    RTC_REG_D = 0x0d,
};

#define REG_B_SET 0x80
#define REG_B_DM  0x04 /* binary, not BCD */
#define REG_B_24H 0x02
#define REG_D_VRT 0x80 /* valid RAM and time */
#define HOUR_PM   0x80

/*
 * How far the guest's clock may be from the host's: any time a guest can
 * set (years 0 to 25599 in binary mode) is well inside, and now() + offset
 * cannot overflow. A loaded offset beyond it is refused.
 */
#define RTC_MAX_OFFSET (1000000LL * 366 * 86400)

/* v from 0 to 99 (the callers keep it there). */
static uint8_t to_bcd(const RtcRegs *r, int v)
{
    return (r->cmos[RTC_REG_B] & REG_B_DM) ? (uint8_t)v : (uint8_t)(((v / 10) << 4) | (v % 10));
}

static int from_bcd(const RtcRegs *r, uint8_t v)
{
    return (r->cmos[RTC_REG_B] & REG_B_DM) ? v : ((v >> 4) * 10 + (v & 0x0f));
}

static uint8_t rtc_encode_hour(const RtcRegs *r, int hour)
{
    if (r->cmos[RTC_REG_B] & REG_B_24H) {
        return to_bcd(r, hour);
    }
    int h12 = hour % 12 ? hour % 12 : 12;
    return to_bcd(r, h12) | (hour >= 12 ? HOUR_PM : 0);
}

static int rtc_decode_hour(const RtcRegs *r, uint8_t v)
{
    if (r->cmos[RTC_REG_B] & REG_B_24H) {
        return from_bcd(r, v);
    }
    int h = from_bcd(r, v & 0x7f) % 12;
    return (v & HOUR_PM) ? h + 12 : h;
}

static uint8_t rtc_read_time_reg(Rtc *rtc, uint8_t reg)
{
    RtcRegs *r = &rtc->r;
    time_t t = (time_t)((int64_t)rtc->now() + r->offset);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        return 0;
    }
    /* The registers hold years 0000-9999; before year 0 or after 9999, the date wraps. */
    int year = (int)(((int64_t)tm.tm_year + 1900) % 10000);
    year += year < 0 ? 10000 : 0;
    switch (reg) {
    case RTC_SECONDS:
        return to_bcd(r, tm.tm_sec);
    case RTC_MINUTES:
        return to_bcd(r, tm.tm_min);
    case RTC_HOURS:
        return rtc_encode_hour(r, tm.tm_hour);
    case RTC_DAY_OF_WEEK:
        return to_bcd(r, tm.tm_wday + 1);
    case RTC_DAY_OF_MONTH:
        return to_bcd(r, tm.tm_mday);
    case RTC_MONTH:
        return to_bcd(r, tm.tm_mon + 1);
    case RTC_YEAR:
        return to_bcd(r, year % 100);
    case RTC_REG_CENTURY:
        return to_bcd(r, year / 100);
    }
    return r->cmos[reg];
}

static bool rtc_is_time_reg(uint8_t reg)
{
    return reg <= RTC_YEAR || reg == RTC_REG_CENTURY;
}

/* The guest ended a SET cycle: its time registers define the new offset. */
static void rtc_commit_time(Rtc *rtc)
{
    RtcRegs *r = &rtc->r;
    struct tm tm = {
        .tm_sec = from_bcd(r, r->cmos[RTC_SECONDS]),
        .tm_min = from_bcd(r, r->cmos[RTC_MINUTES]),
        .tm_hour = rtc_decode_hour(r, r->cmos[RTC_HOURS]),
        .tm_mday = from_bcd(r, r->cmos[RTC_DAY_OF_MONTH]),
        .tm_mon = from_bcd(r, r->cmos[RTC_MONTH]) - 1,
        .tm_year =
            from_bcd(r, r->cmos[RTC_REG_CENTURY]) * 100 + from_bcd(r, r->cmos[RTC_YEAR]) - 1900,
    };
    time_t t = timegm(&tm);
    if (t != (time_t)-1) {
        r->offset = (int64_t)t - (int64_t)rtc->now();
    }
}

static void rtc_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    Rtc *rtc = opaque;
    uint8_t v = 0xff;
    g_mutex_lock(&rtc->lock);
    if (offset == 1) {
        uint8_t reg = rtc->r.index;
        if (rtc_is_time_reg(reg) && !(rtc->r.cmos[RTC_REG_B] & REG_B_SET)) {
            v = rtc_read_time_reg(rtc, reg);
        } else if (reg == RTC_REG_C) {
            v = rtc->r.cmos[reg];
            rtc->r.cmos[reg] = 0; /* read clears the interrupt flags */
        } else {
            v = rtc->r.cmos[reg];
        }
    }
    g_mutex_unlock(&rtc->lock);
    memset(data, 0, len);
    data[0] = v;
}

static void rtc_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    Rtc *rtc = opaque;
    RtcRegs *r = &rtc->r;
    uint8_t v = data[0];
    g_mutex_lock(&rtc->lock);
    if (offset == 0) {
        r->index = v & 0x7f; /* bit 7 is the NMI mask, not part of the index */
    } else {
        uint8_t reg = r->index;
        switch (reg) {
        case RTC_REG_A:
            r->cmos[reg] = v & 0x7f; /* UIP is read-only */
            break;
        case RTC_REG_B:
            if (!(v & REG_B_SET) && (r->cmos[reg] & REG_B_SET)) {
                r->cmos[reg] = v | REG_B_SET; /* decode with the new format, still frozen */
                rtc_commit_time(rtc);
            } else if ((v & REG_B_SET) && !(r->cmos[reg] & REG_B_SET)) {
                /* Freeze the current time so partial writes start from it. */
                for (uint8_t t = 0; t <= RTC_YEAR; t++) {
                    r->cmos[t] = rtc_read_time_reg(rtc, t);
                }
                r->cmos[RTC_REG_CENTURY] = rtc_read_time_reg(rtc, RTC_REG_CENTURY);
            }
            r->cmos[reg] = v;
            break;
        case RTC_REG_C:
        case RTC_REG_D:
            break; /* read-only */
        default:
            r->cmos[reg] = v;
            break;
        }
    }
    g_mutex_unlock(&rtc->lock);
}

const BusOps rtc_bus_ops = {
    .read = rtc_read,
    .write = rtc_write,
};

void rtc_reset(Rtc *rtc)
{
    g_mutex_lock(&rtc->lock);
    rtc->r.index = 0;
    rtc->r.cmos[RTC_REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
    rtc->r.cmos[RTC_REG_B] = REG_B_24H;
    rtc->r.cmos[RTC_REG_C] = 0;
    rtc->r.cmos[RTC_REG_D] = REG_D_VRT;
    g_mutex_unlock(&rtc->lock);
}

void rtc_set_nvram(Rtc *rtc, uint8_t index, uint8_t value)
{
    g_assert(index >= RTC_NVRAM_FIRST && index < RTC_CMOS_SIZE);
    g_mutex_lock(&rtc->lock);
    rtc->r.cmos[index] = value;
    g_mutex_unlock(&rtc->lock);
}

Rtc *rtc_new(time_t (*now)(void))
{
    Rtc *rtc = g_new0(Rtc, 1);
    g_mutex_init(&rtc->lock);
    rtc->now = now;
    rtc_reset(rtc);
    return rtc;
}

void rtc_free(Rtc *rtc)
{
    if (!rtc) {
        return;
    }
    g_mutex_clear(&rtc->lock);
    g_free(rtc);
}

void rtc_save(Rtc *rtc, GByteArray *out)
{
    g_mutex_lock(&rtc->lock);
    state_put_u8(out, rtc->r.index);
    state_put_bytes(out, rtc->r.cmos, sizeof(rtc->r.cmos));
    state_put_u64(out, (uint64_t)rtc->r.offset);
    g_mutex_unlock(&rtc->lock);
}

void rtc_load(Rtc *rtc, StateIn *in)
{
    RtcRegs r;
    r.index = state_get_u8(in);
    state_get_bytes(in, r.cmos, sizeof(r.cmos));
    r.offset = (int64_t)state_get_u64(in);
    state_in_check(in, r.index < RTC_CMOS_SIZE);
    state_in_check(in, r.offset >= -RTC_MAX_OFFSET && r.offset <= RTC_MAX_OFFSET);
    if (in->bad) {
        return;
    }
    g_mutex_lock(&rtc->lock);
    rtc->r = r;
    g_mutex_unlock(&rtc->lock);
}
