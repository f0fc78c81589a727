/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * QEMU-style option values: "value" or "key=value,key=value", where ",," stands
 * for a literal comma. An optional implied key names the first bare value
 * ("-device isa-debug-exit,iobase=0xf4" has the implied key "driver").
 * A text starting with '{' is QEMU's JSON form of the same: -device
 * '{"driver": "virtio-blk-pci", "drive": "d0"}'; nested objects give
 * dotted keys (file.driver), booleans on/off.
 */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct Opts Opts;

Opts *opts_parse(const char *text, const char *implied_key, GError **error);
void opts_free(Opts *opts);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Opts, opts_free)

/* The value of key, or NULL; marks the key as used. */
const char *opts_get(Opts *opts, const char *key);
/*
 * Every value of a key that may repeat ("hostfwd=...,hostfwd=..."), in the
 * order given; empty when absent. The strings belong to opts. Marks the key
 * as used.
 */
GPtrArray *opts_get_all(Opts *opts, const char *key);
bool opts_get_bool(Opts *opts, const char *key, bool def, bool *out, GError **error);
bool opts_get_u64(Opts *opts, const char *key, uint64_t def, uint64_t *out, GError **error);
bool opts_get_size(Opts *opts, const char *key, uint64_t def, uint64_t *out, GError **error);
/* Fails naming the first key no opts_get* call asked for. */
bool opts_check_unused(Opts *opts, GError **error);

/* "512", "512M", "2G", "64k" (QEMU's suffixes, binary); default_unit multiplies a bare number. */
bool parse_size(const char *text, uint64_t default_unit, uint64_t *out);
/* Decimal, 0x hex or 0 octal, the whole string, no sign. */
bool parse_u64(const char *text, uint64_t *out);
bool parse_bool(const char *text, bool *out);
