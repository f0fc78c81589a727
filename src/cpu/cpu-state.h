/* placeholder until the cpu-state helper lands */
#pragma once
#include "cpu/kvm.h"
#include "cpu/vcpu.h"
#include <glib.h>
bool vcpu_state_save(Vcpu *cpu, GByteArray *out, GError **error);
bool vcpu_state_load(Vcpu *cpu, const uint8_t *data, size_t len, GError **error);
bool vm_state_save(Kvm *kvm, GByteArray *out, GError **error);
bool vm_state_load(Kvm *kvm, const uint8_t *data, size_t len, GError **error);
