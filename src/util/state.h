/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Device state for save/restore and migration: a device appends its fields
 * to a GByteArray (little-endian, fixed widths, no padding) and reads them
 * back through a StateIn cursor. A cursor that runs past the end turns "bad"
 * and returns zeroes from then on, so a load function reads everything and
 * checks once, at the end, with state_in_finish: the data comes from a file
 * or another host and is checked like any untrusted input.
 */
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void state_put_u8(GByteArray *out, uint8_t v);
void state_put_u16(GByteArray *out, uint16_t v);
void state_put_u32(GByteArray *out, uint32_t v);
void state_put_u64(GByteArray *out, uint64_t v);
void state_put_bool(GByteArray *out, bool v);
void state_put_bytes(GByteArray *out, const void *data, size_t len);

typedef struct StateIn {
    const uint8_t *data;
    size_t len;
    size_t off;
    bool bad; /* read past the end, or a value out of range */
} StateIn;

void state_in_init(StateIn *in, const void *data, size_t len);
uint8_t state_get_u8(StateIn *in);
uint16_t state_get_u16(StateIn *in);
uint32_t state_get_u32(StateIn *in);
uint64_t state_get_u64(StateIn *in);
/* 0 or 1; anything else marks the cursor bad. */
bool state_get_bool(StateIn *in);
void state_get_bytes(StateIn *in, void *data, size_t len);
/* A load function's own range checks: a false cond marks the cursor bad. */
void state_in_check(StateIn *in, bool cond);
/* True when every byte was read and nothing was bad; else an error naming the section. */
bool state_in_finish(StateIn *in, const char *section, GError **error);
