/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The description of what the QMP monitor implements (qmp-schema.json, in
 * QEMU's QAPI terms): request arguments are checked against it, and
 * query-commands and query-qmp-schema are made from it.
 */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>

/* qmp-schema.json as one string (generated at build time). */
extern const char qmp_schema_json[];

/* Whether the description has this command. */
bool qmp_schema_has_command(const char *name);

/* The command names, in the description's order (free the list, not the names). */
GList *qmp_schema_commands(void);

/*
 * Checks a command's arguments as QEMU's input visitor would; NULL when they
 * fit, else the error reply (GenericError with QEMU's wording).
 */
JsonNode *qmp_schema_check_args(const char *command, JsonObject *args);

/* query-qmp-schema's array, type names masked as QEMU does. */
JsonNode *qmp_schema_introspect(void);

/* A QOM type of the description's "qom-types" (parent, abstract, props), or NULL. */
JsonObject *qmp_schema_qom_type(const char *name);

/* The QOM type names, in the description's order (free the list, not the names). */
GList *qmp_schema_qom_types(void);

/* Whether type is name or descends from it. */
bool qmp_schema_qom_is_a(const char *type, const char *name);

/* The "command-line-options" description: option -> {parameter: type}. */
JsonObject *qmp_schema_cmdline_options(void);
