/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/state.h"
#include "util/error.h"

#include <string.h>

void state_put_bytes(GByteArray *out, const void *data, size_t len)
{
    g_byte_array_append(out, data, (guint)len);
}

void state_put_u8(GByteArray *out, uint8_t v)
{
    state_put_bytes(out, &v, 1);
}

void state_put_u16(GByteArray *out, uint16_t v)
{
    uint16_t le = GUINT16_TO_LE(v);
    state_put_bytes(out, &le, sizeof(le));
}

void state_put_u32(GByteArray *out, uint32_t v)
{
    uint32_t le = GUINT32_TO_LE(v);
    state_put_bytes(out, &le, sizeof(le));
}

void state_put_u64(GByteArray *out, uint64_t v)
{
    uint64_t le = GUINT64_TO_LE(v);
    state_put_bytes(out, &le, sizeof(le));
}

void state_put_bool(GByteArray *out, bool v)
{
    state_put_u8(out, v ? 1 : 0);
}

void state_in_init(StateIn *in, const void *data, size_t len)
{
    *in = (StateIn){.data = data, .len = len};
}

void state_get_bytes(StateIn *in, void *data, size_t len)
{
    if (in->bad || len > in->len - in->off) {
        in->bad = true;
        memset(data, 0, len);
        return;
    }
    memcpy(data, in->data + in->off, len);
    in->off += len;
}

uint8_t state_get_u8(StateIn *in)
{
    uint8_t v;
    state_get_bytes(in, &v, 1);
    return v;
}

uint16_t state_get_u16(StateIn *in)
{
    uint16_t v;
    state_get_bytes(in, &v, sizeof(v));
    return GUINT16_FROM_LE(v);
}

uint32_t state_get_u32(StateIn *in)
{
    uint32_t v;
    state_get_bytes(in, &v, sizeof(v));
    return GUINT32_FROM_LE(v);
}

uint64_t state_get_u64(StateIn *in)
{
    uint64_t v;
    state_get_bytes(in, &v, sizeof(v));
    return GUINT64_FROM_LE(v);
}

bool state_get_bool(StateIn *in)
{
    uint8_t v = state_get_u8(in);
    state_in_check(in, v <= 1);
    return v == 1;
}

void state_in_check(StateIn *in, bool cond)
{
    if (!cond) {
        in->bad = true;
    }
}

bool state_in_finish(StateIn *in, const char *section, GError **error)
{
    if (in->bad || in->off != in->len) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "migration stream: section '%s' is malformed (%zu bytes, %s)", section,
                    in->len, in->bad ? "a field is truncated or out of range" : "bytes left over");
        return false;
    }
    return true;
}
