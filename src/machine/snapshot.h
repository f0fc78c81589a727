/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Save and restore of the whole VM as a migration stream (docs/migration.md). */
#include "machine/pc.h"
#include "migration/stream.h"

#include <glib.h>
#include <stdbool.h>

/* The VM must be stopped: vCPUs parked, devices quiesced. stats may be NULL. */
bool machine_snapshot_save(Machine *m, int fd, MigStats *stats, GError **error);
/*
 * Into a machine made from the same command line whose vCPUs have not run.
 * On failure the machine holds partial state and must not run.
 */
bool machine_snapshot_load(Machine *m, int fd, MigStats *stats, GError **error);
