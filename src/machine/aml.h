/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Just enough of an AML encoder (ACPI 6.4 §20.2) for qlite's DSDT: names,
 * integers, EISA ids, buffers, packages, scopes and devices. A term is built
 * into its own GByteArray, then wrapped by its parent so package lengths are
 * known when they are written.
 */
#include <glib.h>
#include <stdint.h>

/* Appends an Integer with the shortest encoding (ZeroOp, OneOp, Byte/Word/DWord/QWordPrefix). */
void aml_integer(GByteArray *out, uint64_t v);
/* Appends an EISA id ("PNP0A08") as its compressed DWord. */
void aml_eisaid(GByteArray *out, const char *id);
/* Appends a NameString: a 1-4 character segment, optionally "\\"-rooted ("\\_SB"). */
void aml_name_string(GByteArray *out, const char *name);
/* Name (name, value): value is consumed. */
void aml_name_decl(GByteArray *out, const char *name, GByteArray *value);
/* Package (n) { elements }: elements holds n encoded data objects, consumed. */
GByteArray *aml_package(unsigned n, GByteArray *elements);
/* Buffer () { bytes } */
GByteArray *aml_buffer(const uint8_t *bytes, unsigned len);
/* Scope (name) { body } and Device (name) { body }: body consumed. */
void aml_scope(GByteArray *out, const char *name, GByteArray *body);
void aml_device(GByteArray *out, const char *name, GByteArray *body);
