/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The save/restore/migration stream (format in docs/migration.md): a header,
 * then records, each checksummed: the machine configuration first, device
 * state sections keyed by id, batches of RAM pages (a page sent again
 * replaces the earlier copy), and an end marker.
 *
 * Writer and reader work on a plain file descriptor in blocking mode (a file,
 * a socket, a pipe), never seek, and do not own or close it. The reader reads
 * exactly up to the end of the end marker, so whatever follows stays in the
 * fd for the caller. A writer whose peer went away gets EPIPE only if the
 * process ignores SIGPIPE. After an error a writer or reader can only be
 * freed.
 *
 * A restore must not run the guest on partial state: apply STATE sections
 * only once mig_read_next has returned the END record (mig_read_all does
 * that collecting). RAM pages may be written to guest memory as they arrive,
 * since a failed restore never runs the guest.
 */
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_VERSION   1
#define MIG_PAGE_SIZE 4096
#define MIG_ID_MAX    255                /* bytes of a section id */
#define MIG_DATA_MAX  (64 * 1024 * 1024) /* bytes of a machine or state payload */
#define MIG_BATCH_MAX 256                /* pages in one RAM record */

typedef enum {
    MIG_RECORD_MACHINE = 0x01,
    MIG_RECORD_STATE = 0x02,
    MIG_RECORD_RAM = 0x03,
    MIG_RECORD_END = 0x04,
} MigRecordType;

typedef struct MigStats {
    uint64_t bytes;        /* written to or read from the fd */
    uint64_t normal_pages; /* pages sent with their data */
    uint64_t zero_pages;   /* pages sent as a zero marker */
} MigStats;

/* ---- writing ---- */

typedef struct MigWriter MigWriter;

MigWriter *mig_writer_new(int fd);
/* Frees without flushing. */
void mig_writer_free(MigWriter *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigWriter, mig_writer_free)

/* The calls go in this order: header, machine, then any pages and states, end. */
bool mig_write_header(MigWriter *w, GError **error);
/* The machine configuration, which the receiving side compares with its own. */
bool mig_write_machine(MigWriter *w, const void *cfg, size_t len, GError **error);
/* id: 1 to MIG_ID_MAX bytes of printable ASCII without spaces; len at most MIG_DATA_MAX. */
bool mig_write_state(MigWriter *w, const char *id, const void *data, size_t len, GError **error);
/*
 * Adds the page at guest physical address gpa (page aligned) to the current
 * RAM batch, as a zero marker when all its bytes are zero. A batch goes out
 * when it is full, before the next state or end record, and on flush.
 */
bool mig_write_page(MigWriter *w, uint64_t gpa, const void *page, GError **error);
/* Writes the end marker and flushes. */
bool mig_write_end(MigWriter *w, GError **error);
/* Writes everything given so far to the fd, the pending RAM batch included. */
bool mig_writer_flush(MigWriter *w, GError **error);
MigStats mig_writer_get_stats(const MigWriter *w);

/* ---- reading ---- */

/* Stores a page (data is NULL for a zero page); may refuse an address outside guest RAM. */
typedef bool MigPageFunc(void *opaque, uint64_t gpa, const void *data, GError **error);
/* Compares the sender's machine configuration with the receiver's. */
typedef bool MigMachineFunc(void *opaque, const void *cfg, size_t len, GError **error);

typedef struct MigRecord {
    MigRecordType type;
    const char *id;   /* STATE: the section id */
    const void *data; /* MACHINE, STATE: the payload, valid until the next read */
    size_t len;
    unsigned pages; /* RAM: how many pages were passed to the page function */
} MigRecord;

typedef struct MigReader MigReader;

MigReader *mig_reader_new(int fd, MigPageFunc *page, void *opaque);
void mig_reader_free(MigReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigReader, mig_reader_free)

bool mig_read_header(MigReader *r, GError **error);
/*
 * Reads the next record, the first one being MACHINE. The pages of a RAM
 * record go to the page function in stream order once the record's checksum
 * is verified. After END, nothing more is read.
 */
bool mig_read_next(MigReader *r, MigRecord *rec, GError **error);
/*
 * Vets a state section before it is kept: an id the receiving side has no
 * section for, or a size beyond what that section can need, is an error. So
 * what a stream can make the reader hold is bounded by the receiver's own
 * configuration.
 */
typedef bool MigSectionFunc(void *opaque, const char *id, size_t len, GError **error);
/*
 * Reads a whole stream, header to end marker: the machine record goes to
 * machine(opaque, ...), each state section to section(opaque, ...) before it
 * is kept (a second section of an id is an error in any case), pages to the
 * page function. Returns the STATE sections (section id -> GBytes) only once the
 * end marker is verified.
 */
GHashTable *mig_read_all(MigReader *r, MigMachineFunc *machine, MigSectionFunc *section,
                         void *opaque, GError **error);
MigStats mig_reader_get_stats(const MigReader *r);
