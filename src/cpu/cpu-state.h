/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The KVM state of a vCPU and of the VM (in-kernel PIC, IOAPIC, PIT,
 * kvmclock) as bytes, for save/restore and migration. The encoding is in
 * docs/migration.md ("CPU and VM state"): a magic, a version, then tagged,
 * sized blocks.
 *
 * Call these only while the vCPUs are parked (cpus_pause): no vCPU may be
 * inside KVM_RUN. A vCPU that left KVM_RUN on a port I/O or MMIO exit must
 * have re-entered it once with immediate_exit set (the park loop does) so the
 * instruction is complete before its registers are read.
 *
 * Loading takes untrusted input: it checks the whole encoding first and
 * refuses malformed data with a QLITE_ERROR_INVALID error before it touches
 * the vCPU or VM. A load that KVM itself refuses half-way leaves the vCPU or
 * VM partly written; the caller must not run the guest then. A vCPU must have
 * its CPUID table set (cpus_new does) before its state is loaded: KVM checks
 * some MSRs against it. Load the VM state before the vCPU states.
 */
#include "cpu/kvm.h"
#include "cpu/vcpu.h"

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VCPU_STATE_VERSION 1
#define VM_STATE_VERSION   1

/*
 * Appends the vCPU's registers, FPU/XSAVE state, XCRs, the MSRs in the
 * Kvm's MSR index list that this vCPU can read, LAPIC, pending events, debug
 * registers and MP state to out.
 */
bool vcpu_state_save(Vcpu *cpu, GByteArray *out, GError **error);
/* Writes the state back in the order KVM needs (sregs before MSRs and LAPIC, MP state last). */
bool vcpu_state_load(Vcpu *cpu, const uint8_t *data, size_t len, GError **error);

/* Appends the PIC master and slave, IOAPIC, PIT and kvmclock state to out. */
bool vm_state_save(Kvm *kvm, GByteArray *out, GError **error);
/* Restores them; guest time continues from the saved kvmclock value. */
bool vm_state_load(Kvm *kvm, const uint8_t *data, size_t len, GError **error);
