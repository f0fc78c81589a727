/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The backends behind net_backend_new; private to src/net. Each embeds
 * NetBackend as its first member.
 */
#include "net/net.h"

NetBackend *net_slirp_new(const NetdevConfig *cfg, GError **error);
NetBackend *net_tap_new(const NetdevConfig *cfg, GError **error);
