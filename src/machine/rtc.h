/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* MC146818 CMOS RTC and NVRAM at ports 0x70/0x71, running on the host's UTC clock. */
#include "mem/bus.h"

#include "util/state.h"

#include <glib.h>
#include <stdint.h>
#include <time.h>

#define RTC_BASE        0x70
#define RTC_CMOS_SIZE   128
#define RTC_REG_CENTURY 0x32
#define RTC_NVRAM_FIRST 0x0e /* after the clock and status registers */

typedef struct RtcRegs {
    uint8_t index;
    uint8_t cmos[RTC_CMOS_SIZE]; /* time registers here are only the guest's writes under SET */
    int64_t offset;              /* guest time minus host time, seconds */
} RtcRegs;

typedef struct Rtc {
    GMutex lock;
    RtcRegs r;
    time_t (*now)(void); /* the host clock; tests substitute a fixed one */
} Rtc;

extern const BusOps rtc_bus_ops;

Rtc *rtc_new(time_t (*now)(void));
void rtc_free(Rtc *rtc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Rtc, rtc_free)
/* Power-on state of the clock registers; the battery-backed NVRAM and time survive. */
void rtc_reset(Rtc *rtc);
/* A byte of CMOS RAM set by the platform for the firmware (the boot order). */
void rtc_set_nvram(Rtc *rtc, uint8_t index, uint8_t value);

/* Save/restore: CMOS contents, index and the guest's offset from host time. */
void rtc_save(Rtc *rtc, GByteArray *out);
void rtc_load(Rtc *rtc, StateIn *in);
