/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/error.h"

#include <string.h>

G_DEFINE_QUARK(qlite-error-quark, qlite_error)

void qlite_error_errno(GError **error, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED, "%s: %s", msg, g_strerror(err));
}
