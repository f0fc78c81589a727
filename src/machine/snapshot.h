/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Save and restore of the whole VM as a migration stream (docs/migration.md). */
#include "machine/pc.h"
#include "migration/stream.h"

#include <glib.h>
#include <stdbool.h>

/* A stream's start: the header and this machine's configuration. RAM pages follow. */
bool machine_save_begin(Machine *m, MigWriter *w, GError **error);
/*
 * With the VM stopped (vCPUs parked, devices quiesced): every state section,
 * then the end marker. running says whether the VM ran before the migration
 * stopped it; the receiving side runs it only then. answer asks the
 * receiving side to answer on the connection once it has loaded the stream
 * (the return path, migration/transport.h): an empty section "answer".
 */
bool machine_save_finish(Machine *m, MigWriter *w, bool running, bool answer, GError **error);
/*
 * Into a machine made from the same command line whose vCPUs have not run.
 * On failure the machine holds partial state and must not run. stats may be NULL.
 */
bool machine_snapshot_load(Machine *m, int fd, MigStats *stats, bool *running, bool *answer,
                           GError **error);
