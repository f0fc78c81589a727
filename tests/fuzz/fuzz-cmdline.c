/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The command line: the input is the arguments after "qlite", separated by
 * NUL bytes. Parsing any of them must end in a config or an error, never a
 * crash, and a config must free cleanly.
 */
#include "cmdline.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(args, g_strdup("qlite"));
    for (size_t i = 0; i < size && args->len < 64;) {
        const uint8_t *end = memchr(data + i, 0, size - i);
        size_t len = end ? (size_t)(end - data) - i : size - i;
        g_ptr_array_add(args, g_strndup((const char *)data + i, len));
        i += len + 1;
    }
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    for (guint i = 0; i < args->len; i++) {
        g_ptr_array_add(argv, args->pdata[i]);
    }
    g_ptr_array_add(argv, NULL);
    MachineConfig cfg;
    CmdlineAction action;
    g_autoptr(GError) err = NULL;
    bool ok = cmdline_parse((int)args->len, (char **)argv->pdata, &cfg, &action, &err);
    g_assert(ok == (err == NULL));
    machine_config_clear(&cfg);
    return 0;
}
