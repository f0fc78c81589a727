/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <glib.h>

#define QLITE_ERROR (qlite_error_quark())
GQuark qlite_error_quark(void);

typedef enum {
    QLITE_ERROR_FAILED,  /* a host call failed; the message carries errno's text */
    QLITE_ERROR_INVALID, /* bad user input: option, file contents */
    QLITE_ERROR_MISSING, /* the host lacks something qlite needs */
} QliteError;

/* Set *error from errno with a message prefix ("open /dev/kvm: No such file..."). */
void qlite_error_errno(GError **error, int err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
