/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/aml.h"

#include <string.h>

#define AML_ZERO_OP    0x00
#define AML_ONE_OP     0x01
#define AML_NAME_OP    0x08
#define AML_BYTE_PFX   0x0a
#define AML_WORD_PFX   0x0b
#define AML_DWORD_PFX  0x0c
#define AML_QWORD_PFX  0x0e
#define AML_SCOPE_OP   0x10
#define AML_BUFFER_OP  0x11
#define AML_PACKAGE_OP 0x12
#define AML_EXT_PFX    0x5b
#define AML_DEVICE_OP  0x82
#define AML_ROOT_CHAR  '\\'

static void aml_byte(GByteArray *out, uint8_t b)
{
    g_byte_array_append(out, &b, 1);
}

static void aml_le(GByteArray *out, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        aml_byte(out, (uint8_t)(v >> (8 * i)));
    }
}

void aml_integer(GByteArray *out, uint64_t v)
{
    if (v == 0) {
        aml_byte(out, AML_ZERO_OP);
    } else if (v == 1) {
        aml_byte(out, AML_ONE_OP);
    } else if (v <= 0xff) {
        aml_byte(out, AML_BYTE_PFX);
        aml_le(out, v, 1);
    } else if (v <= 0xffff) {
        aml_byte(out, AML_WORD_PFX);
        aml_le(out, v, 2);
    } else if (v <= 0xffffffff) {
        aml_byte(out, AML_DWORD_PFX);
        aml_le(out, v, 4);
    } else {
        aml_byte(out, AML_QWORD_PFX);
        aml_le(out, v, 8);
    }
}

/* EISA id: three letters in 5 bits each, then four hex digits, stored big-endian. */
void aml_eisaid(GByteArray *out, const char *id)
{
    uint32_t v = (uint32_t)((id[0] - 0x40) & 0x1f) << 26 | (uint32_t)((id[1] - 0x40) & 0x1f) << 21 |
                 (uint32_t)((id[2] - 0x40) & 0x1f) << 16 |
                 (uint32_t)strtoul(id + 3, NULL, 16);
    aml_byte(out, AML_DWORD_PFX);
    aml_le(out, GUINT32_TO_BE(v), 4);
}

void aml_name_string(GByteArray *out, const char *name)
{
    if (*name == AML_ROOT_CHAR) {
        aml_byte(out, AML_ROOT_CHAR);
        name++;
    }
    /* A NameSeg is four characters, padded with '_'. */
    char seg[4] = {'_', '_', '_', '_'};
    memcpy(seg, name, MIN(strlen(name), sizeof(seg)));
    g_byte_array_append(out, (const uint8_t *)seg, 4);
}

/* PkgLength, §20.2.4: counts itself, so the encoding depends on its own size. */
static void aml_pkg_length(GByteArray *out, size_t body)
{
    if (body + 1 < 0x40) {
        aml_byte(out, (uint8_t)(body + 1));
        return;
    }
    unsigned extra = body + 2 < 0x1000 ? 1 : body + 3 < 0x100000 ? 2 : 3;
    size_t total = body + 1 + extra;
    aml_byte(out, (uint8_t)(extra << 6 | (total & 0xf)));
    for (unsigned i = 0; i < extra; i++) {
        aml_byte(out, (uint8_t)(total >> (4 + 8 * i)));
    }
}

static void aml_append_free(GByteArray *out, GByteArray *in)
{
    g_byte_array_append(out, in->data, in->len);
    g_byte_array_unref(in);
}

void aml_name_decl(GByteArray *out, const char *name, GByteArray *value)
{
    aml_byte(out, AML_NAME_OP);
    aml_name_string(out, name);
    aml_append_free(out, value);
}

GByteArray *aml_package(unsigned n, GByteArray *elements)
{
    GByteArray *out = g_byte_array_new();
    aml_byte(out, AML_PACKAGE_OP);
    aml_pkg_length(out, elements->len + 1);
    aml_byte(out, (uint8_t)n);
    aml_append_free(out, elements);
    return out;
}

GByteArray *aml_buffer(const uint8_t *bytes, unsigned len)
{
    GByteArray *size = g_byte_array_new();
    aml_integer(size, len);
    GByteArray *out = g_byte_array_new();
    aml_byte(out, AML_BUFFER_OP);
    aml_pkg_length(out, size->len + len);
    aml_append_free(out, size);
    g_byte_array_append(out, bytes, len);
    return out;
}

static void aml_named_block(GByteArray *out, const char *name, GByteArray *body)
{
    GByteArray *n = g_byte_array_new();
    aml_name_string(n, name);
    aml_pkg_length(out, n->len + body->len);
    aml_append_free(out, n);
    aml_append_free(out, body);
}

void aml_scope(GByteArray *out, const char *name, GByteArray *body)
{
    aml_byte(out, AML_SCOPE_OP);
    aml_named_block(out, name, body);
}

void aml_device(GByteArray *out, const char *name, GByteArray *body)
{
    aml_byte(out, AML_EXT_PFX);
    aml_byte(out, AML_DEVICE_OP);
    aml_named_block(out, name, body);
}
