/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * seccomp per thread (libseccomp): each kind of thread gets a filter that
 * allows only the system calls it makes (and, for ioctl, only its request
 * numbers), applied by the thread itself once its set-up is done, with
 * PR_SET_NO_NEW_PRIVS. Any other call kills the process, after a line on
 * stderr naming the thread and the call. A thread started later inherits
 * its creator's filter and may narrow it (the migration thread does).
 *
 * -sandbox on|off as QEMU's option (on by default; off to debug). QEMU's sub-options are
 * taken: spawn=deny refuses exec: migration URIs (spawn=allow, the default,
 * runs them through the command helper, util/spawner.h, forked before any
 * filter); obsolete, elevateprivileges and resourcecontrol name calls no
 * filter here allows whatever they say.
 */
#include <glib.h>
#include <stdbool.h>

typedef enum {
    SANDBOX_MAIN,      /* the control loop: signals, resets, the console, incoming migration */
    SANDBOX_VCPU,      /* KVM_RUN and the device emulation of exits */
    SANDBOX_IOTHREAD,  /* a device's I/O: disk AIO, network backends */
    SANDBOX_MONITOR,   /* QMP clients, and the outgoing migration it starts */
    SANDBOX_MIGRATION, /* sending or receiving a VM */
} SandboxKind;

typedef struct SandboxConfig {
    bool on;
    bool spawn; /* exec: migration URIs allowed */
} SandboxConfig;

#define SANDBOX_CONFIG_DEFAULT ((SandboxConfig){.on = true, .spawn = true})

/* -sandbox's argument: on|off[,spawn=allow|deny][,obsolete=...][,...]. */
bool sandbox_parse(const char *arg, SandboxConfig *cfg, GError **error);
/* Once, before any thread exists: the violation handler and the command helper. */
bool sandbox_init(const SandboxConfig *cfg, GError **error);
/* The calling thread's filter (nothing with -sandbox off). */
bool sandbox_apply(SandboxKind kind, GError **error);
