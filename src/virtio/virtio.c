/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The virtio device core, virtio 1.2 §2.1 (status), §2.2 (features), §3.1
 * (initialization) and §2.4 (reset).
 *
 * Locking: vdev->lock serializes the transport's control calls and is held
 * across iothread_run_sync, so the IoThread itself never takes it: what the
 * IoThread touches in the shared part (status from virtio_error, the config
 * generation, guest_features through virtio_has_feature) is accessed with
 * atomics. kick_src[], kick_ctx[] and active belong to the IoThread.
 */
#include "virtio/virtio.h"
#include "util/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* At most one guest-error message per device per interval. */
#define VIRTIO_ERROR_LOG_INTERVAL_US G_USEC_PER_SEC

static uint8_t status_load(VirtioDevice *vdev)
{
    return __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE);
}

static void eventfd_drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) == sizeof(v)) {
    }
}

/* ---- on the IoThread ---- */

static void virtio_stop_queues(VirtioDevice *vdev)
{
    for (unsigned q = 0; q < vdev->nqueues; q++) {
        iothread_remove_source(vdev->kick_src[q]);
        vdev->kick_src[q] = NULL;
    }
    vdev->active = false;
}

static void virtio_stop_queues_cb(void *opaque)
{
    virtio_stop_queues(opaque);
}

static void virtio_kick_ready(void *opaque)
{
    struct VirtioKickCtx *k = opaque;
    VirtioDevice *vdev = k->vdev;
    eventfd_drain(vdev->kick_fd[k->q]);
    if (vdev->active) {
        vdev->ops->queue_notify(vdev, &vdev->queues[k->q]);
    }
}

static void virtio_attach_kicks(VirtioDevice *vdev)
{
    for (unsigned q = 0; q < vdev->nqueues; q++) {
        if (vdev->queues[q].started && !vdev->kick_src[q]) {
            vdev->kick_src[q] = iothread_add_fd(vdev->iothread, vdev->kick_fd[q], virtio_kick_ready,
                                                &vdev->kick_ctx[q]);
        }
    }
}

/* Looks at every started queue, for kicks that came while nobody listened. */
static void virtio_rekick(VirtioDevice *vdev)
{
    for (unsigned q = 0; q < vdev->nqueues && vdev->active; q++) {
        if (vdev->queues[q].started) {
            vdev->ops->queue_notify(vdev, &vdev->queues[q]);
        }
    }
}

static void virtio_pause_on_thread(void *opaque)
{
    VirtioDevice *vdev = opaque;
    if (vdev->paused) {
        return;
    }
    vdev->paused = true;
    for (unsigned q = 0; q < vdev->nqueues; q++) {
        iothread_remove_source(vdev->kick_src[q]);
        vdev->kick_src[q] = NULL;
    }
    if (vdev->ops->drain) {
        vdev->ops->drain(vdev);
    }
}

static void virtio_resume_on_thread(void *opaque)
{
    VirtioDevice *vdev = opaque;
    if (!vdev->paused) {
        return;
    }
    vdev->paused = false;
    if (vdev->active) {
        virtio_attach_kicks(vdev);
        virtio_rekick(vdev);
    }
}

void virtio_device_pause(VirtioDevice *vdev)
{
    iothread_run_sync(vdev->iothread, virtio_pause_on_thread, vdev);
}

void virtio_device_resume(VirtioDevice *vdev)
{
    iothread_run_sync(vdev->iothread, virtio_resume_on_thread, vdev);
}

bool virtio_device_handover(VirtioDevice *vdev, bool own, GError **error)
{
    return !vdev->ops->handover || vdev->ops->handover(vdev, own, error);
}

static void virtio_reset_on_thread(void *opaque)
{
    VirtioDevice *vdev = opaque;
    virtio_stop_queues(vdev);
    /* Completions the device drains below go to the rings without interrupting the driver. */
    for (unsigned q = 0; q < vdev->nqueues; q++) {
        vdev->queues[q].started = false;
    }
    vdev->ops->reset(vdev);
    for (unsigned q = 0; q < vdev->nqueues; q++) {
        virtqueue_reset(&vdev->queues[q]);
        eventfd_drain(vdev->kick_fd[q]);
    }
}

static void virtio_activate_on_thread(void *opaque)
{
    VirtioDevice *vdev = opaque;
    bool event_idx = virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
    for (unsigned q = 0; q < vdev->nqueues; q++) {
        g_autoptr(GError) err = NULL;
        VirtQueue *vq = &vdev->queues[q];
        if (vq->enabled && !virtqueue_start(vq, vdev->mem, event_idx, &err)) {
            virtio_error(vdev, "queue %u: %s", q, err->message);
            return;
        }
    }
    if (!vdev->paused) {
        virtio_attach_kicks(vdev);
    }
    vdev->active = true;
    vdev->ops->activate(vdev);
    /* Kicks written before DRIVER_OK found no source: look at every queue once (§3.1.1). */
    if (!vdev->paused) {
        virtio_rekick(vdev);
    }
}

/* ---- lifecycle ---- */

bool virtio_device_init(VirtioDevice *vdev, const char *name, const char *id, uint16_t device_id,
                        const VirtioDeviceOps *ops, GuestMem *mem, uint64_t host_features,
                        unsigned nqueues, uint16_t queue_max_size, uint32_t config_size,
                        GError **error)
{
    g_assert(nqueues >= 1 && nqueues <= VIRTIO_MAX_QUEUES);
    g_assert(host_features & (1ULL << VIRTIO_F_VERSION_1));
    vdev->name = name;
    vdev->device_id = device_id;
    vdev->ops = ops;
    vdev->mem = mem;
    vdev->host_features = host_features;
    vdev->guest_features = 0;
    vdev->status = 0;
    vdev->config_generation = 0;
    vdev->config_size = config_size;
    vdev->active = false;
    vdev->nqueues = nqueues;
    vdev->transport = NULL;
    vdev->transport_opaque = NULL;
    vdev->last_error_log = 0;
    for (unsigned q = 0; q < nqueues; q++) {
        virtqueue_init(&vdev->queues[q], queue_max_size);
        vdev->kick_src[q] = NULL;
        vdev->kick_ctx[q] = (struct VirtioKickCtx){.vdev = vdev, .q = q};
        vdev->kick_fd[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (vdev->kick_fd[q] < 0) {
            qlite_error_errno(error, errno, "%s '%s': cannot create queue eventfd", name, id);
            while (q-- > 0) {
                close(vdev->kick_fd[q]);
            }
            return false;
        }
    }
    vdev->iothread = iothread_new(id, error);
    if (!vdev->iothread) {
        for (unsigned q = 0; q < nqueues; q++) {
            close(vdev->kick_fd[q]);
        }
        return false;
    }
    vdev->id = g_strdup(id);
    g_mutex_init(&vdev->lock);
    return true;
}

void virtio_device_free(VirtioDevice *vdev)
{
    if (!vdev) {
        return;
    }
    iothread_run_sync(vdev->iothread, virtio_reset_on_thread, vdev);
    iothread_free(vdev->iothread);
    for (unsigned q = 0; q < vdev->nqueues; q++) {
        close(vdev->kick_fd[q]);
    }
    g_free(vdev->id);
    g_mutex_clear(&vdev->lock);
    vdev->ops->free(vdev);
}

void virtio_set_transport(VirtioDevice *vdev, const VirtioTransportOps *ops, void *opaque)
{
    g_mutex_lock(&vdev->lock);
    vdev->transport = ops;
    vdev->transport_opaque = opaque;
    g_mutex_unlock(&vdev->lock);
}

/* ---- save/restore ---- */

typedef struct {
    VirtioDevice *vdev;
    GByteArray *out;
} VirtioSaveCall;

static void virtio_save_on_thread(void *opaque)
{
    VirtioSaveCall *c = opaque;
    VirtioDevice *vdev = c->vdev;
    state_put_bool(c->out, vdev->active);
    state_put_u16(c->out, (uint16_t)vdev->nqueues);
    for (unsigned q = 0; q < vdev->nqueues; q++) {
        virtqueue_save(&vdev->queues[q], c->out);
    }
}

void virtio_device_save(VirtioDevice *vdev, GByteArray *out)
{
    g_mutex_lock(&vdev->lock);
    state_put_u16(out, vdev->device_id);
    state_put_u64(out, vdev->host_features);
    state_put_u64(out, __atomic_load_n(&vdev->guest_features, __ATOMIC_RELAXED));
    state_put_u8(out, status_load(vdev));
    state_put_u8(out, __atomic_load_n(&vdev->config_generation, __ATOMIC_RELAXED));
    g_autofree uint8_t *config = g_malloc0(vdev->config_size + 1);
    vdev->ops->config_read(vdev, 0, config, vdev->config_size);
    state_put_u32(out, vdev->config_size);
    state_put_bytes(out, config, vdev->config_size);
    VirtioSaveCall c = {.vdev = vdev, .out = out};
    iothread_run_sync(vdev->iothread, virtio_save_on_thread, &c);
    if (vdev->ops->save) {
        vdev->ops->save(vdev, out);
    }
    g_mutex_unlock(&vdev->lock);
}

typedef struct {
    VirtioDevice *vdev;
    uint64_t guest_features;
    uint8_t status;
    uint8_t config_generation;
    bool active;
    VirtQueue *queues;
} VirtioLoadCall;

static void virtio_load_on_thread(void *opaque)
{
    VirtioLoadCall *c = opaque;
    VirtioDevice *vdev = c->vdev;
    if (vdev->active || status_load(vdev)) {
        virtio_reset_on_thread(vdev);
    }
    /* Paused, as virtio_pause_on_thread leaves it: no kick source until resume. */
    for (unsigned q = 0; q < vdev->nqueues; q++) {
        iothread_remove_source(vdev->kick_src[q]);
        vdev->kick_src[q] = NULL;
        vdev->queues[q] = c->queues[q];
    }
    vdev->paused = true;
    __atomic_store_n(&vdev->guest_features, c->guest_features, __ATOMIC_RELAXED);
    __atomic_store_n(&vdev->config_generation, c->config_generation, __ATOMIC_RELAXED);
    __atomic_store_n(&vdev->status, c->status, __ATOMIC_RELEASE);
    if (c->active) {
        vdev->active = true;
        vdev->ops->activate(vdev);
    }
}

/* The values a live device holds together (see virtio_set_status and virtio_error). */
static bool virtio_load_consistent(VirtioDevice *vdev, const VirtioLoadCall *c, GError **error)
{
    const char *why = NULL;
    uint8_t s = c->status;
    bool driver_ok = s & VIRTIO_STATUS_DRIVER_OK;
    uint64_t negotiated = c->guest_features & vdev->host_features;
    if (driver_ok && !(s & VIRTIO_STATUS_FEATURES_OK)) {
        why = "DRIVER_OK without FEATURES_OK";
    } else if ((s & VIRTIO_STATUS_FEATURES_OK) &&
               ((c->guest_features & ~vdev->host_features) ||
                !(c->guest_features & (1ULL << VIRTIO_F_VERSION_1)))) {
        why = "FEATURES_OK with features the device does not offer";
    } else if (c->active != (driver_ok && !(s & VIRTIO_STATUS_NEEDS_RESET))) {
        why = "live state does not match the status";
    }
    for (unsigned q = 0; q < vdev->nqueues && !why; q++) {
        const VirtQueue *vq = &c->queues[q];
        if (vq->started && !driver_ok) {
            why = "a queue started without DRIVER_OK";
        } else if (c->active && vq->enabled && !vq->started) {
            why = "an enabled queue of a live device is not started";
        } else if (vq->started && vq->event_idx != !!(negotiated & (1ULL << VIRTIO_F_EVENT_IDX))) {
            why = "a queue's EVENT_IDX does not match the features";
        }
    }
    if (why) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s '%s': saved state has %s",
                    vdev->name, vdev->id, why);
        return false;
    }
    return true;
}

static bool virtio_load_truncated(VirtioDevice *vdev, GError **error)
{
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s '%s': saved device state is truncated",
                vdev->name, vdev->id);
    return false;
}

bool virtio_device_load(VirtioDevice *vdev, StateIn *in, GError **error)
{
    g_autofree VirtQueue *queues = g_new(VirtQueue, vdev->nqueues);
    VirtioLoadCall c = {.vdev = vdev, .queues = queues};
    uint16_t device_id = state_get_u16(in);
    uint64_t host_features = state_get_u64(in);
    c.guest_features = state_get_u64(in);
    c.status = state_get_u8(in);
    c.config_generation = state_get_u8(in);
    uint32_t config_size = state_get_u32(in);
    if (in->bad) {
        return virtio_load_truncated(vdev, error);
    }
    if (device_id != vdev->device_id || host_features != vdev->host_features ||
        config_size != vdev->config_size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s '%s': saved state is from another device (type %u, features 0x%" PRIx64
                    ", config space of %" PRIu32 " bytes; here %u, 0x%" PRIx64 ", %" PRIu32 ")",
                    vdev->name, vdev->id, device_id, host_features, config_size, vdev->device_id,
                    vdev->host_features, vdev->config_size);
        state_in_check(in, false);
        return false;
    }
    g_autofree uint8_t *saved = g_malloc0(config_size + 1);
    g_autofree uint8_t *own = g_malloc0(config_size + 1);
    state_get_bytes(in, saved, config_size);
    c.active = state_get_bool(in);
    uint16_t nqueues = state_get_u16(in);
    if (in->bad) {
        return virtio_load_truncated(vdev, error);
    }
    if (nqueues != vdev->nqueues) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s '%s': saved state has %u queues, this device %u", vdev->name, vdev->id,
                    nqueues, vdev->nqueues);
        state_in_check(in, false);
        return false;
    }

    g_mutex_lock(&vdev->lock);
    vdev->ops->config_read(vdev, 0, own, config_size);
    bool ok = true;
    if (memcmp(saved, own, config_size)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s '%s': saved config space differs from this device's (another disk "
                    "size or MAC address?)",
                    vdev->name, vdev->id);
        ok = false;
    }
    for (unsigned q = 0; q < vdev->nqueues && ok; q++) {
        g_autoptr(GError) err = NULL;
        queues[q] = vdev->queues[q];
        if (!virtqueue_load(&queues[q], in, vdev->mem, &err)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s '%s': queue %u: %s",
                        vdev->name, vdev->id, q, err->message);
            ok = false;
        }
    }
    ok = ok && virtio_load_consistent(vdev, &c, error);
    ok = ok && (!vdev->ops->load || vdev->ops->load(vdev, in, error));
    if (ok && in->bad) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s '%s': saved device state is malformed", vdev->name, vdev->id);
        ok = false;
    }
    if (ok) {
        iothread_run_sync(vdev->iothread, virtio_load_on_thread, &c);
    }
    g_mutex_unlock(&vdev->lock);
    state_in_check(in, ok);
    return ok;
}

/* ---- transport side ---- */

uint8_t virtio_get_status(VirtioDevice *vdev)
{
    return status_load(vdev);
}

/* §2.2.2: the driver accepts only offered features, and a modern device needs VERSION_1. */
static bool virtio_features_acceptable(VirtioDevice *vdev)
{
    return !(vdev->guest_features & ~vdev->host_features) &&
           (vdev->guest_features & (1ULL << VIRTIO_F_VERSION_1));
}

void virtio_set_status(VirtioDevice *vdev, uint8_t value)
{
    g_mutex_lock(&vdev->lock);
    if (value == 0) {
        /* §2.4: the device is back to its initial state before the write completes. */
        iothread_run_sync(vdev->iothread, virtio_reset_on_thread, vdev);
        __atomic_store_n(&vdev->guest_features, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&vdev->status, 0, __ATOMIC_RELEASE);
        g_mutex_unlock(&vdev->lock);
        return;
    }
    uint8_t old = status_load(vdev);
    /*
     * §2.1.2: the driver clears no status bit but by a reset. A write that
     * does is a driver error, and what it clears stays set: a live device
     * stays live, activation never runs twice over running queues, and every
     * status a guest can reach saves and loads.
     */
    value |= old & ~VIRTIO_STATUS_NEEDS_RESET;
    /* §3.1.1 step 5: the driver re-reads status to learn whether FEATURES_OK stuck. */
    if ((value & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
        !virtio_features_acceptable(vdev)) {
        value &= ~VIRTIO_STATUS_FEATURES_OK;
    }
    bool start = (value & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK);
    if (start && !(value & VIRTIO_STATUS_FEATURES_OK)) {
        /* A driver that skipped feature negotiation does not get a live device. */
        value &= ~VIRTIO_STATUS_DRIVER_OK;
        start = false;
    }
    /* NEEDS_RESET is the device's bit (§2.1.1): only a reset clears it. */
    uint8_t cur = old;
    uint8_t next;
    do {
        next = (value & ~VIRTIO_STATUS_NEEDS_RESET) | (cur & VIRTIO_STATUS_NEEDS_RESET);
    } while (!__atomic_compare_exchange_n(&vdev->status, &cur, next, false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    if (start && !(next & VIRTIO_STATUS_NEEDS_RESET)) {
        iothread_run_sync(vdev->iothread, virtio_activate_on_thread, vdev);
    }
    g_mutex_unlock(&vdev->lock);
}

uint32_t virtio_get_host_features(VirtioDevice *vdev, unsigned sel)
{
    return sel < 2 ? (uint32_t)(vdev->host_features >> (32 * sel)) : 0;
}

uint32_t virtio_get_guest_features(VirtioDevice *vdev, unsigned sel)
{
    uint64_t f = __atomic_load_n(&vdev->guest_features, __ATOMIC_RELAXED);
    return sel < 2 ? (uint32_t)(f >> (32 * sel)) : 0;
}

void virtio_set_guest_features(VirtioDevice *vdev, unsigned sel, uint32_t value)
{
    if (sel >= 2) {
        return;
    }
    g_mutex_lock(&vdev->lock);
    /* §2.2.1: features are fixed once FEATURES_OK is set. */
    if (!(status_load(vdev) & VIRTIO_STATUS_FEATURES_OK)) {
        uint64_t mask = 0xffffffffULL << (32 * sel);
        uint64_t f = (vdev->guest_features & ~mask) | ((uint64_t)value << (32 * sel));
        __atomic_store_n(&vdev->guest_features, f, __ATOMIC_RELAXED);
    }
    g_mutex_unlock(&vdev->lock);
}

bool virtio_has_feature(VirtioDevice *vdev, unsigned bit)
{
    uint64_t f = __atomic_load_n(&vdev->guest_features, __ATOMIC_RELAXED) & vdev->host_features;
    return bit < 64 && (f & (1ULL << bit));
}

static bool config_range_ok(VirtioDevice *vdev, uint32_t offset, unsigned len)
{
    return offset <= vdev->config_size && len <= vdev->config_size - offset;
}

void virtio_config_read(VirtioDevice *vdev, uint32_t offset, uint8_t *data, unsigned len)
{
    if (!config_range_ok(vdev, offset, len)) {
        memset(data, 0, len);
        return;
    }
    g_mutex_lock(&vdev->lock);
    vdev->ops->config_read(vdev, offset, data, len);
    g_mutex_unlock(&vdev->lock);
}

void virtio_config_write(VirtioDevice *vdev, uint32_t offset, const uint8_t *data, unsigned len)
{
    if (!config_range_ok(vdev, offset, len)) {
        return;
    }
    g_mutex_lock(&vdev->lock);
    vdev->ops->config_write(vdev, offset, data, len);
    g_mutex_unlock(&vdev->lock);
}

VirtQueue *virtio_queue(VirtioDevice *vdev, unsigned q)
{
    return q < vdev->nqueues ? &vdev->queues[q] : NULL;
}

void virtio_kick(VirtioDevice *vdev, unsigned q)
{
    if (q >= vdev->nqueues) {
        return;
    }
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: a kick is pending anyway. */
    if (write(vdev->kick_fd[q], &one, sizeof(one)) < 0 && errno != EAGAIN) {
        g_warning("%s '%s': cannot signal queue %u: %s", vdev->name, vdev->id, q,
                  g_strerror(errno));
    }
}

/* ---- device side ---- */

void virtio_notify(VirtioDevice *vdev, VirtQueue *vq)
{
    if (!vq->started || !virtqueue_should_notify(vq)) {
        return;
    }
    if (vdev->transport) {
        vdev->transport->notify_queue(vdev->transport_opaque, (unsigned)(vq - vdev->queues));
    }
}

void virtio_notify_config(VirtioDevice *vdev)
{
    __atomic_add_fetch(&vdev->config_generation, 1, __ATOMIC_RELEASE);
    if (vdev->transport) {
        vdev->transport->notify_config(vdev->transport_opaque);
    }
}

void virtio_error(VirtioDevice *vdev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    gint64 now = g_get_monotonic_time();
    gint64 last = __atomic_load_n(&vdev->last_error_log, __ATOMIC_RELAXED);
    if ((last == 0 || now - last >= VIRTIO_ERROR_LOG_INTERVAL_US) &&
        __atomic_compare_exchange_n(&vdev->last_error_log, &last, now, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
        g_warning("%s '%s': %s; device needs reset", vdev->name, vdev->id, msg);
    }
    /* §2.1.2: NEEDS_RESET, then a configuration change notification. */
    __atomic_or_fetch(&vdev->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_ACQ_REL);
    if (iothread_is_current(vdev->iothread)) {
        virtio_stop_queues(vdev);
    } else {
        iothread_run_sync(vdev->iothread, virtio_stop_queues_cb, vdev);
    }
    virtio_notify_config(vdev);
}
