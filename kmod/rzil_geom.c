/*-
 * SPDX-License-Identifier: CDDL-1.0 OR BSD-2-Clause
 *
 * rzil.ko: the GEOM side.  Each instance owns one consumer of the class
 * "RZIL", attached with exclusive write access to a named provider (any
 * disk: ada1, nvd0, vtbd1, md0).  The core submits BIO_WRITE and BIO_FLUSH
 * through rzil_shim_submit_*(); completions arrive on the GEOM up thread,
 * where nothing may sleep, so they are queued and handed to the core from
 * the instance's taskqueue thread.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/bio.h>
#include <sys/kernel.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/mutex.h>
#include <sys/priority.h>
#include <sys/sdt.h>
#include <sys/taskqueue.h>

#include <geom/geom.h>

#include "rzil_kmod_var.h"

#define	RZIL_SECTOR_SIZE_MAX	4096	/* bytes: lwbs are 4 KiB multiples */
#define	RZIL_DEV_PREFIX		"/dev/"

SDT_PROVIDER_DECLARE(rzil);
SDT_PROBE_DECLARE(rzil, , io, submit);

static g_orphan_t rzil_orphan;

struct g_class rzil_class = {
	.name = "RZIL",
	.version = G_VERSION,
	.orphan = rzil_orphan,
};

/*
 * The provider went away.  Outstanding bios still complete (with ENXIO);
 * new submissions fail the same way from here on.  The consumer is torn
 * down by the detach ioctl, once the core is idle.
 */
static void
rzil_orphan(struct g_consumer *cp)
{
	struct rzil_softc *sc;

	g_topology_assert();
	sc = cp->geom->softc;
	if (sc == NULL)
		return;
	atomic_store_int(&sc->sc_orphaned, 1);
	rzil_warn("instance %u: provider %s went away", sc->sc_instance,
	    sc->sc_provider);
}

/*
 * GEOM up thread: queue the bio for the taskqueue.
 *
 * The task is enqueued before sc_done_mtx is dropped, and nothing touches
 * the softc after the unlock: once the bio is on the queue and the lock is
 * free, an earlier enqueue's task run may hand it to the core and drop
 * sc_inflight to zero, and the detach ioctl may then drain and free the
 * taskqueue and the softc.  An enqueue after the unlock would use both.
 */
static void
rzil_bio_done(struct bio *bp)
{
	struct rzil_softc *sc;

	sc = bp->bio_caller1;
	mtx_lock(&sc->sc_done_mtx);
	TAILQ_INSERT_TAIL(&sc->sc_done_queue, bp, bio_queue);
	taskqueue_enqueue(sc->sc_tq, &sc->sc_done_task);
	mtx_unlock(&sc->sc_done_mtx);
}

/* Taskqueue thread: hand finished bios to the core, in completion order. */
static void
rzil_done_task(void *arg, int pending __unused)
{
	TAILQ_HEAD(, bio) done;
	struct rzil_softc *sc;
	struct bio *bp;
	void *io;
	int error;

	sc = arg;
	TAILQ_INIT(&done);
	mtx_lock(&sc->sc_done_mtx);
	TAILQ_CONCAT(&done, &sc->sc_done_queue, bio_queue);
	mtx_unlock(&sc->sc_done_mtx);

	while ((bp = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, bp, bio_queue);
		error = bp->bio_error;
		if (error == 0 && bp->bio_cmd == BIO_WRITE &&
		    bp->bio_completed != bp->bio_length)
			error = EIO;
		io = bp->bio_caller2;
		g_destroy_bio(bp);
		rzil_core_io_done(sc->sc_core, io, error);
		atomic_subtract_int(&sc->sc_inflight, 1);
	}
}

static void
rzil_submit(struct rzil_softc *sc, struct bio *bp)
{

	bp->bio_done = rzil_bio_done;
	bp->bio_caller1 = sc;
	atomic_add_int(&sc->sc_inflight, 1);
	SDT_PROBE3(rzil, , io, submit, sc->sc_instance, bp->bio_cmd,
	    bp->bio_offset);
	if (atomic_load_int(&sc->sc_orphaned) != 0) {
		/* No provider: complete with ENXIO through the same path. */
		bp->bio_error = ENXIO;
		rzil_bio_done(bp);
		return;
	}
	g_io_request(bp, sc->sc_consumer);
}

void
rzil_shim_submit_write(struct rzil_softc *sc, void *io, uint64_t offset_bytes,
    void *buf, uint32_t len_bytes)
{
	struct bio *bp;

	bp = g_alloc_bio();
	bp->bio_cmd = BIO_WRITE;
	bp->bio_offset = offset_bytes;
	bp->bio_length = len_bytes;
	bp->bio_data = buf;
	bp->bio_caller2 = io;
	if (offset_bytes % sc->sc_sector_size_bytes != 0 ||
	    len_bytes % sc->sc_sector_size_bytes != 0 ||
	    offset_bytes + len_bytes > sc->sc_media_size_bytes) {
		rzil_warn("instance %u: write [%ju, +%u) outside %s",
		    sc->sc_instance, (uintmax_t)offset_bytes, len_bytes,
		    sc->sc_provider);
		atomic_add_int(&sc->sc_inflight, 1);
		bp->bio_caller1 = sc;
		bp->bio_error = EINVAL;
		rzil_bio_done(bp);
		return;
	}
	rzil_submit(sc, bp);
}

void
rzil_shim_submit_flush(struct rzil_softc *sc, void *io)
{
	struct bio *bp;

	bp = g_alloc_bio();
	bp->bio_cmd = BIO_FLUSH;
	bp->bio_offset = sc->sc_media_size_bytes;
	bp->bio_length = 0;
	bp->bio_data = NULL;
	bp->bio_caller2 = io;
	rzil_count_flush();
	rzil_submit(sc, bp);
}

static const char *
rzil_strip_dev(const char *name)
{

	if (strncmp(name, RZIL_DEV_PREFIX, strlen(RZIL_DEV_PREFIX)) == 0)
		name += strlen(RZIL_DEV_PREFIX);
	return (name);
}

int
rzil_geom_attach(struct rzil_softc *sc, const char *provider)
{
	struct g_provider *pp;
	struct g_consumer *cp;
	struct g_geom *gp;
	int error;

	g_topology_lock();
	pp = g_provider_by_name(rzil_strip_dev(provider));
	if (pp == NULL) {
		g_topology_unlock();
		rzil_warn("attach: no GEOM provider named %s", provider);
		return (ENOENT);
	}
	if (pp->sectorsize == 0 || pp->sectorsize > RZIL_SECTOR_SIZE_MAX ||
	    !powerof2(pp->sectorsize) || pp->mediasize < RZIL_SECTOR_SIZE_MAX) {
		g_topology_unlock();
		rzil_warn("attach: %s has sector size %u and %jd bytes; need a "
		    "power of two <= %d", provider, pp->sectorsize,
		    (intmax_t)pp->mediasize, RZIL_SECTOR_SIZE_MAX);
		return (EINVAL);
	}
	gp = g_new_geomf(&rzil_class, "rzil%u", sc->sc_instance);
	cp = g_new_consumer(gp);
	error = g_attach(cp, pp);
	if (error == 0) {
		error = g_access(cp, 1, 1, 1);
		if (error != 0)
			g_detach(cp);
	}
	if (error != 0) {
		g_destroy_consumer(cp);
		g_destroy_geom(gp);
		g_topology_unlock();
		rzil_warn("attach: %s is in use or not writable: error %d",
		    provider, error);
		return (error == EPERM ? EBUSY : error);
	}
	gp->softc = sc;
	sc->sc_geom = gp;
	sc->sc_consumer = cp;
	sc->sc_media_size_bytes = pp->mediasize;
	sc->sc_sector_size_bytes = pp->sectorsize;
	g_topology_unlock();

	mtx_init(&sc->sc_done_mtx, "rzil done", NULL, MTX_DEF);
	TAILQ_INIT(&sc->sc_done_queue);
	TASK_INIT(&sc->sc_done_task, 0, rzil_done_task, sc);
	sc->sc_tq = taskqueue_create("rzil_io", M_WAITOK,
	    taskqueue_thread_enqueue, &sc->sc_tq);
	/*
	 * It allocates its thread table M_NOWAIT and may fail (ENOMEM); an
	 * instance without its thread would never see a completion.  The
	 * queue then has no thread and no task: rzil_geom_detach() frees it
	 * and closes the consumer.
	 */
	error = taskqueue_start_threads(&sc->sc_tq, 1, PRIBIO, "rzil%u io",
	    sc->sc_instance);
	if (error != 0) {
		rzil_warn("attach: %s: no completion thread: error %d",
		    provider, error);
		rzil_geom_detach(sc);
		return (error);
	}
	return (0);
}

void
rzil_geom_detach(struct rzil_softc *sc)
{
	struct g_consumer *cp;
	struct g_geom *gp;

	KASSERT(atomic_load_int(&sc->sc_inflight) == 0,
	    ("rzil: detach with %u bios in flight", sc->sc_inflight));
	taskqueue_drain(sc->sc_tq, &sc->sc_done_task);
	taskqueue_free(sc->sc_tq);
	mtx_destroy(&sc->sc_done_mtx);

	g_topology_lock();
	cp = sc->sc_consumer;
	gp = sc->sc_geom;
	gp->softc = NULL;
	if (cp->acr > 0 || cp->acw > 0 || cp->ace > 0)
		g_access(cp, -cp->acr, -cp->acw, -cp->ace);
	g_detach(cp);
	g_destroy_consumer(cp);
	g_wither_geom(gp, ENXIO);
	g_topology_unlock();
	sc->sc_consumer = NULL;
	sc->sc_geom = NULL;
}
