/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * CPUID for each vCPU, from KVM_GET_SUPPORTED_CPUID. The topology is one
 * socket of n cores with one thread each, APIC ID = vCPU index; leaves 0x1,
 * 0x4, 0xB and 0x1F (Intel SDM vol. 2A, CPUID) must agree on it.
 */
#include "cpu/vcpu.h"
#include "util/error.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_1_ECX_HYPERVISOR (1U << 31)
#define CPUID_1_EDX_HTT        (1U << 28)
#define CPUID_TOPO_SMT         1
#define CPUID_TOPO_CORE        2

static unsigned bits_for(unsigned n)
{
    unsigned b = 0;
    while ((1U << b) < n) {
        b++;
    }
    return b;
}

static void add_topology_leaf(struct kvm_cpuid2 *c, uint32_t leaf, unsigned apic_id, unsigned n)
{
    unsigned core_shift = bits_for(n);
    for (uint32_t sub = 0; sub < 3; sub++) {
        struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
        memset(e, 0, sizeof(*e));
        e->function = leaf;
        e->index = sub;
        e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
        e->edx = apic_id;
        if (sub == 0) { /* SMT level: one thread per core */
            e->eax = 0;
            e->ebx = 1;
            e->ecx = (CPUID_TOPO_SMT << 8) | sub;
        } else if (sub == 1) { /* core level: the whole package */
            e->eax = core_shift;
            e->ebx = n;
            e->ecx = (CPUID_TOPO_CORE << 8) | sub;
        } else { /* terminating invalid level */
            e->ecx = sub;
        }
    }
}

struct kvm_cpuid2 *cpuid_build(const struct kvm_cpuid2 *supported, unsigned index, unsigned n)
{
    /* Room for the topology leaves we add on top of what KVM reports. */
    size_t max = supported->nent + 8;
    struct kvm_cpuid2 *c =
        g_malloc0(sizeof(*c) + max * sizeof(struct kvm_cpuid_entry2));
    unsigned pkg_ids = 1U << bits_for(n);
    bool has_1f = false;

    for (uint32_t i = 0; i < supported->nent; i++) {
        struct kvm_cpuid_entry2 e = supported->entries[i];
        switch (e.function) {
        case 0x1:
            e.ebx = (e.ebx & 0xffff) | (pkg_ids << 16) | (index << 24);
            e.ecx |= CPUID_1_ECX_HYPERVISOR;
            if (n > 1) {
                e.edx |= CPUID_1_EDX_HTT;
            }
            break;
        case 0x4: {
            unsigned level = (e.eax >> 5) & 7;
            unsigned sharing = level >= 3 ? pkg_ids - 1 : 0;
            e.eax = (e.eax & 0x3fff) | (sharing << 14) | ((pkg_ids - 1) << 26);
            break;
        }
        case 0xb:
            continue; /* replaced below */
        case 0x1f:
            has_1f = true;
            continue;
        default:
            break;
        }
        c->entries[c->nent++] = e;
    }
    add_topology_leaf(c, 0xb, index, n);
    if (has_1f) {
        add_topology_leaf(c, 0x1f, index, n);
    }
    return c;
}

bool vcpu_setup_cpuid(Vcpu *cpu, const struct kvm_cpuid2 *supported, unsigned n,
                      GError **error)
{
    g_autofree struct kvm_cpuid2 *c = cpuid_build(supported, cpu->index, n);
    if (ioctl(cpu->fd, KVM_SET_CPUID2, c) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_CPUID2 on vCPU %u", cpu->index);
        return false;
    }
    return true;
}
