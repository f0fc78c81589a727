/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "pci/msix.h"
#include "pci/pci.h"
#include "util/error.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Message Control, PCI 3.0 §6.8.2.3. */
#define MSIX_CTRL_ENABLE   0x8000
#define MSIX_CTRL_MASKALL  0x4000
#define MSIX_ENTRY_CTRL    12
#define MSIX_VECTOR_MASKED 0x1

typedef struct {
    uint64_t addr;
    uint32_t data;
    uint32_t ctrl;
    int fd;
    unsigned route;
    bool pending;
} MsixVector;

struct Msix {
    PciDevice *dev;
    uint8_t cap;
    unsigned nvectors;
    const MsiControllerOps *ops;
    void *opaque;
    /* Guards the table and pending bits; the config bytes are under dev->lock. */
    GMutex lock;
    bool enabled;
    bool masked_all;
    MsixVector vec[MSIX_MAX_VECTORS];
};

uint32_t msix_table_size(unsigned nvectors)
{
    return nvectors * MSIX_ENTRY_SIZE;
}

uint32_t msix_pba_size(unsigned nvectors)
{
    return ((nvectors + 63) / 64) * 8;
}

Msix *msix_new(PciDevice *d, unsigned nvectors, int bar, uint32_t table_off, uint32_t pba_off,
               const MsiControllerOps *ops, void *opaque, GError **error)
{
    if (nvectors == 0 || nvectors > MSIX_MAX_VECTORS || (table_off & 7) || (pba_off & 7)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s: invalid MSI-X layout", d->name);
        return NULL;
    }
    uint8_t cap = pci_add_capability(d, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
    if (!cap) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s: no room for MSI-X", d->name);
        return NULL;
    }
    Msix *m = g_new0(Msix, 1);
    m->dev = d;
    m->cap = cap;
    m->nvectors = nvectors;
    m->ops = ops;
    m->opaque = opaque;
    g_mutex_init(&m->lock);
    for (unsigned i = 0; i < MSIX_MAX_VECTORS; i++) {
        m->vec[i].fd = -1;
    }
    pci_set_word(d->config + cap + 2, (uint16_t)(nvectors - 1));
    pci_set_long(d->config + cap + 4, table_off | (uint32_t)bar);
    pci_set_long(d->config + cap + 8, pba_off | (uint32_t)bar);
    pci_set_word(d->wmask + cap + 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    for (unsigned i = 0; i < nvectors; i++) {
        MsixVector *v = &m->vec[i];
        v->ctrl = MSIX_VECTOR_MASKED;
        v->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (v->fd < 0) {
            qlite_error_errno(error, errno, "%s: eventfd", d->name);
            msix_free(m);
            return NULL;
        }
        if (!ops->add_vector(opaque, v->fd, &v->route, error)) {
            msix_free(m);
            return NULL;
        }
    }
    d->msix = m;
    return m;
}

void msix_free(Msix *m)
{
    if (!m) {
        return;
    }
    for (unsigned i = 0; i < MSIX_MAX_VECTORS; i++) {
        if (m->vec[i].fd >= 0) {
            close(m->vec[i].fd);
        }
    }
    g_mutex_clear(&m->lock);
    g_free(m);
}

uint8_t msix_cap_offset(Msix *m)
{
    return m->cap;
}

unsigned msix_nvectors(Msix *m)
{
    return m->nvectors;
}

static void msix_fire(MsixVector *v)
{
    uint64_t one = 1;
    if (write(v->fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        g_warning("MSI-X eventfd write: %s", g_strerror(errno));
    }
}

static bool msix_vector_masked_locked(Msix *m, const MsixVector *v)
{
    return m->masked_all || (v->ctrl & MSIX_VECTOR_MASKED);
}

/* Delivers what became deliverable after an unmask. */
static void msix_deliver_pending_locked(Msix *m)
{
    if (!m->enabled) {
        return;
    }
    for (unsigned i = 0; i < m->nvectors; i++) {
        MsixVector *v = &m->vec[i];
        if (v->pending && !msix_vector_masked_locked(m, v)) {
            v->pending = false;
            msix_fire(v);
        }
    }
}

void msix_control_written(Msix *m)
{
    uint16_t ctrl = pci_get_word(m->dev->config + m->cap + 2);
    g_mutex_lock(&m->lock);
    if (m->enabled != !!(ctrl & MSIX_CTRL_ENABLE)) {
        g_debug("%s: MSI-X %s", m->dev->name, m->enabled ? "disabled" : "enabled");
    }
    m->enabled = ctrl & MSIX_CTRL_ENABLE;
    m->masked_all = ctrl & MSIX_CTRL_MASKALL;
    msix_deliver_pending_locked(m);
    g_mutex_unlock(&m->lock);
}

bool msix_enabled(Msix *m)
{
    g_mutex_lock(&m->lock);
    bool e = m->enabled;
    g_mutex_unlock(&m->lock);
    return e;
}

bool msix_notify(Msix *m, unsigned vector)
{
    g_mutex_lock(&m->lock);
    bool enabled = m->enabled;
    if (enabled && vector < m->nvectors) {
        MsixVector *v = &m->vec[vector];
        if (msix_vector_masked_locked(m, v)) {
            v->pending = true;
        } else {
            msix_fire(v);
        }
    }
    g_mutex_unlock(&m->lock);
    return enabled;
}

void msix_reset(Msix *m)
{
    g_mutex_lock(&m->dev->lock);
    pci_set_word(m->dev->config + m->cap + 2, (uint16_t)(m->nvectors - 1));
    g_mutex_unlock(&m->dev->lock);
    g_mutex_lock(&m->lock);
    m->enabled = false;
    m->masked_all = false;
    for (unsigned i = 0; i < m->nvectors; i++) {
        m->vec[i].addr = 0;
        m->vec[i].data = 0;
        m->vec[i].ctrl = MSIX_VECTOR_MASKED;
        m->vec[i].pending = false;
    }
    g_mutex_unlock(&m->lock);
}

/* Table accesses are dword or qword aligned (PCI 3.0 §6.8.2.9); others are dropped. */
static bool msix_access_ok(uint64_t offset, unsigned len, uint64_t size)
{
    return (len == 4 || len == 8) && (offset & (len - 1)) == 0 && offset + len <= size;
}

void msix_table_read(Msix *m, uint64_t offset, uint8_t *data, unsigned len)
{
    if (!msix_access_ok(offset, len, msix_table_size(m->nvectors))) {
        memset(data, 0xff, len);
        return;
    }
    g_mutex_lock(&m->lock);
    for (unsigned done = 0; done < len; done += 4) {
        uint64_t off = offset + done;
        const MsixVector *v = &m->vec[off / MSIX_ENTRY_SIZE];
        uint32_t word;
        switch (off % MSIX_ENTRY_SIZE) {
        case 0: word = (uint32_t)v->addr; break;
        case 4: word = (uint32_t)(v->addr >> 32); break;
        case 8: word = v->data; break;
        default: word = v->ctrl; break;
        }
        bus_data_set(data + done, 4, word);
    }
    g_mutex_unlock(&m->lock);
}

void msix_table_write(Msix *m, uint64_t offset, const uint8_t *data, unsigned len)
{
    if (!msix_access_ok(offset, len, msix_table_size(m->nvectors))) {
        return;
    }
    g_mutex_lock(&m->lock);
    for (unsigned done = 0; done < len; done += 4) {
        uint64_t off = offset + done;
        MsixVector *v = &m->vec[off / MSIX_ENTRY_SIZE];
        uint32_t word = (uint32_t)bus_data_get(data + done, 4);
        switch (off % MSIX_ENTRY_SIZE) {
        case 0: v->addr = (v->addr & ~0xffffffffULL) | word; break;
        case 4: v->addr = (v->addr & 0xffffffffULL) | (uint64_t)word << 32; break;
        case 8: v->data = word; break;
        default: v->ctrl = word & MSIX_VECTOR_MASKED; break;
        }
    }
    /* Route the vector once written; KVM keeps the last route while it is masked. */
    MsixVector *v = &m->vec[offset / MSIX_ENTRY_SIZE];
    g_autoptr(GError) err = NULL;
    if (v->addr && !m->ops->set_route(m->opaque, v->route, v->addr, v->data, &err)) {
        g_warning("%s: MSI-X vector %u: %s", m->dev->name,
                  (unsigned)(offset / MSIX_ENTRY_SIZE), err->message);
    }
    msix_deliver_pending_locked(m);
    g_mutex_unlock(&m->lock);
}

void msix_pba_read(Msix *m, uint64_t offset, uint8_t *data, unsigned len)
{
    if (!msix_access_ok(offset, len, msix_pba_size(m->nvectors))) {
        memset(data, 0xff, len);
        return;
    }
    g_mutex_lock(&m->lock);
    uint64_t bits = 0;
    for (unsigned b = 0; b < len * 8; b++) {
        unsigned vec = (unsigned)(offset * 8) + b;
        if (vec < m->nvectors && m->vec[vec].pending) {
            bits |= 1ULL << b;
        }
    }
    g_mutex_unlock(&m->lock);
    bus_data_set(data, len, bits);
}

/* ---- save/restore ---- */

void msix_save(Msix *m, GByteArray *out)
{
    g_mutex_lock(&m->lock);
    state_put_u16(out, (uint16_t)m->nvectors);
    state_put_bool(out, m->enabled);
    state_put_bool(out, m->masked_all);
    for (unsigned i = 0; i < m->nvectors; i++) {
        const MsixVector *v = &m->vec[i];
        state_put_u64(out, v->addr);
        state_put_u32(out, v->data);
        state_put_u32(out, v->ctrl);
        state_put_bool(out, v->pending);
    }
    g_mutex_unlock(&m->lock);
}

bool msix_load(Msix *m, StateIn *in)
{
    MsixVector vec[MSIX_MAX_VECTORS];
    unsigned n = state_get_u16(in);
    state_in_check(in, n == m->nvectors);
    bool enabled = state_get_bool(in);
    bool masked_all = state_get_bool(in);
    for (unsigned i = 0; i < n && !in->bad; i++) {
        vec[i].addr = state_get_u64(in);
        vec[i].data = state_get_u32(in);
        vec[i].ctrl = state_get_u32(in);
        vec[i].pending = state_get_bool(in);
        /* Only the mask bit is stored (msix_table_write drops the reserved bits). */
        state_in_check(in, !(vec[i].ctrl & ~MSIX_VECTOR_MASKED));
    }
    if (in->bad) {
        return false;
    }

    g_mutex_lock(&m->dev->lock);
    uint16_t ctrl = pci_get_word(m->dev->config + m->cap + 2);
    g_mutex_lock(&m->lock);
    state_in_check(in, enabled == !!(ctrl & MSIX_CTRL_ENABLE) &&
                           masked_all == !!(ctrl & MSIX_CTRL_MASKALL));
    if (!in->bad) {
        m->enabled = enabled;
        m->masked_all = masked_all;
        for (unsigned i = 0; i < n; i++) {
            MsixVector *v = &m->vec[i];
            v->addr = vec[i].addr;
            v->data = vec[i].data;
            v->ctrl = vec[i].ctrl;
            v->pending = vec[i].pending;
            /* As msix_table_write does: a vector is routed once it has an address. */
            g_autoptr(GError) err = NULL;
            if (v->addr && !m->ops->set_route(m->opaque, v->route, v->addr, v->data, &err)) {
                g_debug("%s: MSI-X vector %u: %s", m->dev->name, i, err->message);
                state_in_check(in, false);
            }
        }
    }
    g_mutex_unlock(&m->lock);
    g_mutex_unlock(&m->dev->lock);
    return !in->bad;
}
