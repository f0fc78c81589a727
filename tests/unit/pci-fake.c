/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "pci-fake.h"
#include "machine/pci-host.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

static bool fake_add_vector(void *opaque, int fd, unsigned *route, GError **error)
{
    FakeIrq *f = opaque;
    f->fds[f->n] = fd;
    *route = f->n++;
    return true;
}

static bool fake_set_route(void *opaque, unsigned route, uint64_t addr, uint32_t data,
                           GError **error)
{
    FakeIrq *f = opaque;
    f->addr[route] = addr;
    f->data[route] = data;
    return true;
}

const MsiControllerOps fake_msi_ops = {.add_vector = fake_add_vector,
                                       .set_route = fake_set_route};

void fake_gsi(void *opaque, unsigned gsi, bool level)
{
    FakeIrq *f = opaque;
    g_assert_cmpuint(gsi, <, G_N_ELEMENTS(f->gsi_level));
    g_atomic_int_set(&f->gsi_level[gsi], level);
}

bool fake_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len, bool assign,
                    GError **error)
{
    FakeIrq *f = opaque;
    if (assign) {
        g_assert_cmpuint(f->nioeventfds, <, FAKE_MAX_IOEVENTFDS);
        f->ioeventfds[f->nioeventfds++] = (FakeIoeventfd){.fd = fd, .addr = addr, .len = len};
        return true;
    }
    for (unsigned i = 0; i < f->nioeventfds; i++) {
        FakeIoeventfd *e = &f->ioeventfds[i];
        if (e->fd == fd && e->addr == addr && e->len == len) {
            *e = f->ioeventfds[--f->nioeventfds];
            return true;
        }
    }
    g_error("deassigning an ioeventfd that was never assigned (0x%" G_GINT64_MODIFIER "x)", addr);
    return false;
}

uint64_t fake_msi_fired(FakeIrq *f, unsigned v, int timeout_ms)
{
    struct pollfd p = {.fd = f->fds[v], .events = POLLIN};
    uint64_t n = 0;
    if (poll(&p, 1, timeout_ms) == 1 && read(f->fds[v], &n, sizeof(n)) != sizeof(n)) {
        n = 0;
    }
    return n;
}

bool fake_gsi_wait(FakeIrq *f, unsigned gsi, bool level, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited++) {
        if (g_atomic_int_get(&f->gsi_level[gsi]) == (gint)level) {
            return true;
        }
        g_usleep(1000);
    }
    return false;
}

uint32_t fake_cfg_read(Bus *pio, unsigned devfn, unsigned reg, unsigned len)
{
    uint8_t buf[4];
    bus_data_set(buf, 4, 0x80000000U | devfn << 8 | (reg & 0xfc));
    bus_write(pio, PCI_CONFIG_ADDR_PORT, buf, 4);
    bus_read(pio, PCI_CONFIG_DATA_PORT + (reg & 3), buf, len);
    return (uint32_t)bus_data_get(buf, len);
}

void fake_cfg_write(Bus *pio, unsigned devfn, unsigned reg, uint32_t v, unsigned len)
{
    uint8_t buf[4];
    bus_data_set(buf, 4, 0x80000000U | devfn << 8 | (reg & 0xfc));
    bus_write(pio, PCI_CONFIG_ADDR_PORT, buf, 4);
    bus_data_set(buf, len, v);
    bus_write(pio, PCI_CONFIG_DATA_PORT + (reg & 3), buf, len);
}
