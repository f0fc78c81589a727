/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What agent.c shares with the checks kept in files of their own (hostile.c, rng.c). */
#ifndef QLITE_AGENT_H
#define QLITE_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One TAP line, "ok N - ..." or "not ok N - ...". */
void report(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sleep_ms(unsigned int ms);
uint64_t now_ns(void);
/* A one-line file such as a sysfs attribute, without its newline; 0 or errno. */
int read_text(const char *path, char *buf, size_t size);
int write_text(const char *path, const char *text);
/* I/O ports through /dev/port; a failed read gives 0xff. */
bool port_write(unsigned short port, uint8_t value);
uint8_t port_read(unsigned short port);

/* hostile.c: attacks the virtio-blk disk named (e.g. "vdb") from inside. */
void check_hostile(const char *disk);
/* hostile.c: resets that disk's device, gives it back to its driver, reads it. */
void check_hostile_recover(const char *disk);

/* rng.c: virtio-rng serves /dev/hwrng. */
void check_rng(void);

#endif
