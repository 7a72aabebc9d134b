/*-
 * SPDX-License-Identifier: CDDL-1.0 OR BSD-2-Clause
 *
 * rzil.ko: module events, UMA zones, the kern.rzil sysctl tree, SDT probes,
 * the instance table and the small kernel services the Rust core calls
 * (locks, condition variables, clock, log, panic).
 *
 * Nothing here decides anything about lwbs: this file only adapts kernel
 * interfaces.  The policy lives in the Rust core (kmod/rust).
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/bio.h>
#include <sys/condvar.h>
#include <sys/counter.h>
#include <sys/kernel.h>
#include <sys/limits.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/module.h>
#include <sys/mutex.h>
#include <sys/proc.h>
#include <sys/sdt.h>
#include <sys/sx.h>
#include <sys/syslog.h>
#include <sys/sysctl.h>
#include <sys/taskqueue.h>
#include <sys/time.h>

#include <geom/geom.h>
#include <vm/uma.h>

#include <machine/stdarg.h>

#include "rzil_kmod_var.h"

#define	RZIL_VERSION		1	/* MODULE_VERSION */
#define	RZIL_BLOCK_SIZE_MIN	4096		/* bytes, smallest lwb */
#define	RZIL_BLOCK_SIZE_DEFAULT	(128 * 1024)	/* bytes, zil_maxblocksize */
#define	RZIL_BLOCK_SIZE_MAX	(128 * 1024)	/* bytes, largest lwb */
#define	RZIL_COMMIT_TIMEOUT_PCT_DEFAULT	10	/* zfs_commit_timeout_pct */
#define	RZIL_PCT_MAX		100
#define	RZIL_LOG_BYTES_MAX	256	/* one log line from the core */

MALLOC_DEFINE(M_RZIL, "rzil", "rzil ZIL lwb write path");

/* --- sysctl tree: kern.rzil ------------------------------------------------ */

static SYSCTL_NODE(_kern, OID_AUTO, rzil, CTLFLAG_RD | CTLFLAG_MPSAFE, 0,
    "rzil: the OpenZFS ZIL lwb write path in Rust");
static SYSCTL_NODE(_kern_rzil, OID_AUTO, stats, CTLFLAG_RD | CTLFLAG_MPSAFE, 0,
    "rzil counters (all instances)");

static u_int rzil_commit_timeout_pct = RZIL_COMMIT_TIMEOUT_PCT_DEFAULT;
static int rzil_nocacheflush = 0;
static u_int rzil_max_block_size = RZIL_BLOCK_SIZE_DEFAULT;

static int
rzil_sysctl_pct(SYSCTL_HANDLER_ARGS)
{
	u_int val;
	int error;

	val = *(u_int *)arg1;
	error = sysctl_handle_int(oidp, &val, 0, req);
	if (error != 0 || req->newptr == NULL)
		return (error);
	if (val > RZIL_PCT_MAX)
		return (EINVAL);
	*(u_int *)arg1 = val;
	return (0);
}

SYSCTL_PROC(_kern_rzil, OID_AUTO, commit_timeout_pct,
    CTLTYPE_UINT | CTLFLAG_RWTUN | CTLFLAG_MPSAFE, &rzil_commit_timeout_pct, 0,
    rzil_sysctl_pct, "IU",
    "Percent of the last lwb latency an open lwb waits for more records");
SYSCTL_INT(_kern_rzil, OID_AUTO, nocacheflush, CTLFLAG_RWTUN,
    &rzil_nocacheflush, 0, "Skip BIO_FLUSH after log writes (unsafe)");
SYSCTL_UINT(_kern_rzil, OID_AUTO, max_block_size, CTLFLAG_RDTUN,
    &rzil_max_block_size, 0, "Largest lwb in bytes (loader tunable)");

static counter_u64_t rzil_lwb_entered[RZIL_LWB_STATES];
static counter_u64_t rzil_flushes;
static counter_u64_t rzil_commits;
static counter_u64_t rzil_commit_latency_hist[RZIL_LATENCY_BUCKETS];

SYSCTL_COUNTER_U64_ARRAY(_kern_rzil_stats, OID_AUTO, lwb_entered,
    CTLFLAG_RD, rzil_lwb_entered, RZIL_LWB_STATES,
    "lwbs that entered each state: new opened closed ready issued "
    "write_done flush_done");
SYSCTL_COUNTER_U64(_kern_rzil_stats, OID_AUTO, flushes, CTLFLAG_RD,
    &rzil_flushes, "BIO_FLUSH requests issued");
SYSCTL_COUNTER_U64(_kern_rzil_stats, OID_AUTO, commits, CTLFLAG_RD,
    &rzil_commits, "Commits completed");
SYSCTL_COUNTER_U64_ARRAY(_kern_rzil_stats, OID_AUTO, commit_latency_log2_ns,
    CTLFLAG_RD, rzil_commit_latency_hist, RZIL_LATENCY_BUCKETS,
    "Commit latency histogram: bucket i counts latencies in [2^i, 2^(i+1)) ns");

/* --- SDT probes ------------------------------------------------------------ */

SDT_PROVIDER_DEFINE(rzil);
SDT_PROBE_DEFINE4(rzil, , lwb, state, "u_int", "uint64_t", "u_int", "u_int");
SDT_PROBE_DEFINE2(rzil, , commit, done, "u_int", "uint64_t");
SDT_PROBE_DEFINE3(rzil, , io, submit, "u_int", "int", "uint64_t");

/* --- UMA zones --------------------------------------------------------------- */

static uma_zone_t rzil_zones[RZIL_ZONE_COUNT];
static const char *const rzil_zone_names[RZIL_ZONE_COUNT] = {
	[RZIL_ZONE_LWB] = "rzil_lwb",
	[RZIL_ZONE_ITX] = "rzil_itx",
	[RZIL_ZONE_IO] = "rzil_io",
	[RZIL_ZONE_BUF] = "rzil_buf",
};

/*
 * Constructor and destructor run on every allocation and free, like the
 * SPL's kmem_std_constructor/destructor.  init/fini stay NULL on purpose:
 * an INVARIANTS kernel then trashes freed items with 0xdeadc0de and checks
 * the pattern on reuse, which is what catches an lwb used after free.
 */
static int
rzil_zone_ctor(void *mem, int size, void *arg __unused, int flags __unused)
{

	bzero(mem, size);
	return (0);
}

static void
rzil_zone_dtor(void *mem __unused, int size __unused, void *arg __unused)
{
}

static int
rzil_zones_create(const struct rzil_zone_sizes *sizes)
{
	int i;

	if (sizes->rz_align_bytes == 0 || !powerof2(sizes->rz_align_bytes)) {
		rzil_warn("core asks for alignment %u", sizes->rz_align_bytes);
		return (EINVAL);
	}
	for (i = 0; i < RZIL_ZONE_COUNT; i++) {
		if (sizes->rz_size_bytes[i] == 0) {
			rzil_warn("core asks for an empty %s item",
			    rzil_zone_names[i]);
			return (EINVAL);
		}
		rzil_zones[i] = uma_zcreate(rzil_zone_names[i],
		    sizes->rz_size_bytes[i], rzil_zone_ctor, rzil_zone_dtor,
		    NULL, NULL, sizes->rz_align_bytes - 1, 0);
	}
	return (0);
}

static void
rzil_zones_destroy(void)
{
	int i;

	for (i = 0; i < RZIL_ZONE_COUNT; i++) {
		if (rzil_zones[i] != NULL) {
			uma_zdestroy(rzil_zones[i]);
			rzil_zones[i] = NULL;
		}
	}
}

/*
 * The kern.rzil.stats sysctls point at these counters, and the kernel
 * linker unregisters a module's static sysctls only after MOD_UNLOAD has
 * returned, just before it runs the module's SYSUNINITs: counters freed by
 * the unload event would stay readable through sysctl(3) in between.  So
 * they live from a SYSINIT that runs before the module event (SI_ORDER_FIRST
 * within DECLARE_MODULE's SI_SUB_DRIVERS) to the matching SYSUNINIT, which
 * also runs when a failed MOD_LOAD makes the linker unload the file.
 */
static void
rzil_counters_alloc(void *arg __unused)
{
	int i;

	for (i = 0; i < RZIL_LWB_STATES; i++)
		rzil_lwb_entered[i] = counter_u64_alloc(M_WAITOK);
	for (i = 0; i < RZIL_LATENCY_BUCKETS; i++)
		rzil_commit_latency_hist[i] = counter_u64_alloc(M_WAITOK);
	rzil_flushes = counter_u64_alloc(M_WAITOK);
	rzil_commits = counter_u64_alloc(M_WAITOK);
}

static void
rzil_counters_free(void *arg __unused)
{
	int i;

	for (i = 0; i < RZIL_LWB_STATES; i++)
		counter_u64_free(rzil_lwb_entered[i]);
	for (i = 0; i < RZIL_LATENCY_BUCKETS; i++)
		counter_u64_free(rzil_commit_latency_hist[i]);
	counter_u64_free(rzil_flushes);
	counter_u64_free(rzil_commits);
}

SYSINIT(rzil_counters, SI_SUB_DRIVERS, SI_ORDER_FIRST, rzil_counters_alloc,
    NULL);
SYSUNINIT(rzil_counters, SI_SUB_DRIVERS, SI_ORDER_FIRST, rzil_counters_free,
    NULL);

/* --- instance table ---------------------------------------------------------- */

static struct sx rzil_lock;		/* rzil_softcs, sc_busy, unloading */
static struct rzil_softc *rzil_softcs[RZIL_INSTANCES_MAX];
static int rzil_unloading;
/*
 * Whether MOD_LOAD succeeded and MOD_UNLOAD has not.  module_register_init()
 * follows a failed MOD_LOAD with a MOD_UNLOAD, after rzil_load() has already
 * undone its own work: that event must find nothing to tear down (no sx to
 * lock, no GEOM class to unregister a second time).  Only module events,
 * which the kernel serializes, touch it.
 */
static int rzil_loaded;

void
rzil_warn(const char *fmt, ...)
{
	char buf[RZIL_LOG_BYTES_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log(LOG_WARNING, "rzil: %s\n", buf);
}

int
rzil_instance_attach(const char *provider, struct rzil_ioc_attach *ra)
{
	struct rzil_geometry geom;
	struct rzil_softc *sc;
	u_int i, slot;
	int error;

	sx_xlock(&rzil_lock);
	if (rzil_unloading) {
		sx_xunlock(&rzil_lock);
		return (ENXIO);
	}
	slot = RZIL_INSTANCES_MAX;
	for (i = 0; i < RZIL_INSTANCES_MAX; i++) {
		if (rzil_softcs[i] == NULL) {
			if (slot == RZIL_INSTANCES_MAX)
				slot = i;
		} else if (strcmp(rzil_softcs[i]->sc_provider, provider) == 0) {
			sx_xunlock(&rzil_lock);
			rzil_warn("attach: %s is already attached as instance %u",
			    provider, i);
			return (EBUSY);
		}
	}
	if (slot == RZIL_INSTANCES_MAX) {
		sx_xunlock(&rzil_lock);
		rzil_warn("attach: all %d instances are in use",
		    RZIL_INSTANCES_MAX);
		return (ENOSPC);
	}

	sc = malloc(sizeof(*sc), M_RZIL, M_WAITOK | M_ZERO);
	sc->sc_instance = slot;
	strlcpy(sc->sc_provider, provider, sizeof(sc->sc_provider));
	error = rzil_geom_attach(sc, provider);
	if (error != 0) {
		sx_xunlock(&rzil_lock);
		free(sc, M_RZIL);
		return (error);
	}
	sc->sc_core = malloc(rzil_core_instance_size(), M_RZIL,
	    M_WAITOK | M_ZERO);
	KASSERT(((uintptr_t)sc->sc_core & (rzil_core_instance_align() - 1)) == 0,
	    ("rzil: core instance misaligned"));
	geom.rg_media_size_bytes = sc->sc_media_size_bytes;
	geom.rg_sector_size_bytes = sc->sc_sector_size_bytes;
	geom.rg_instance = slot;
	/*
	 * On this thread's own stack: the core keeps its big tables in
	 * memory it gets through rzil_shim_malloc(), and kmod-check.py checks
	 * the whole rzil_ioctl chain, attach included, against 12 KiB.
	 */
	error = rzil_core_attach(sc->sc_core, sc, &geom);
	if (error != 0) {
		sx_xunlock(&rzil_lock);
		rzil_warn("attach: core refused %s: error %d", provider, error);
		free(sc->sc_core, M_RZIL);
		rzil_geom_detach(sc);
		free(sc, M_RZIL);
		return (error);
	}
	rzil_softcs[slot] = sc;
	sx_xunlock(&rzil_lock);

	ra->ra_instance = slot;
	ra->ra_media_size_bytes = sc->sc_media_size_bytes;
	ra->ra_sector_size_bytes = sc->sc_sector_size_bytes;
	return (0);
}

int
rzil_instance_detach(u_int instance)
{
	struct rzil_softc *sc;

	if (instance >= RZIL_INSTANCES_MAX)
		return (EINVAL);
	sx_xlock(&rzil_lock);
	sc = rzil_softcs[instance];
	if (sc == NULL) {
		sx_xunlock(&rzil_lock);
		return (ENXIO);
	}
	if (sc->sc_busy != 0 || rzil_core_busy(sc->sc_core) ||
	    atomic_load_int(&sc->sc_inflight) != 0) {
		sx_xunlock(&rzil_lock);
		rzil_warn("detach: instance %u (%s) is busy", instance,
		    sc->sc_provider);
		return (EBUSY);
	}
	rzil_softcs[instance] = NULL;
	sx_xunlock(&rzil_lock);

	rzil_core_detach(sc->sc_core);
	rzil_geom_detach(sc);
	free(sc->sc_core, M_RZIL);
	free(sc, M_RZIL);
	return (0);
}

struct rzil_softc *
rzil_instance_hold(u_int instance, int *errorp)
{
	struct rzil_softc *sc;

	if (instance >= RZIL_INSTANCES_MAX) {
		*errorp = EINVAL;
		return (NULL);
	}
	sx_xlock(&rzil_lock);
	sc = rzil_softcs[instance];
	if (sc == NULL)
		*errorp = ENXIO;
	else
		sc->sc_busy++;
	sx_xunlock(&rzil_lock);
	return (sc);
}

void
rzil_instance_rele(struct rzil_softc *sc)
{

	sx_xlock(&rzil_lock);
	KASSERT(sc->sc_busy > 0, ("rzil: instance %u not held",
	    sc->sc_instance));
	sc->sc_busy--;
	sx_xunlock(&rzil_lock);
}

static int
rzil_instances_attached(void)
{
	int i, n;

	sx_assert(&rzil_lock, SA_XLOCKED);
	n = 0;
	for (i = 0; i < RZIL_INSTANCES_MAX; i++)
		if (rzil_softcs[i] != NULL)
			n++;
	return (n);
}

/* --- services for the Rust core -------------------------------------------- */

void
rzil_shim_panic(const char *msg, size_t len)
{

	panic("rzil: %.*s", (int)MIN(len, INT_MAX), msg);
}

void
rzil_shim_log(const char *msg, size_t len)
{

	log(LOG_WARNING, "rzil: %.*s\n", (int)MIN(len, RZIL_LOG_BYTES_MAX),
	    msg);
}

/*
 * Serializes the Rust side's lazy mtx_init()/cv_init() (kmod/rust/src/
 * sync.rs: a mutex or condvar is set up on its first use, by whichever
 * thread gets there first).  A spin mutex, because its holder cannot be
 * preempted: a thread waiting for another's set-up spins only while that
 * set-up runs on another CPU.  A busy-wait on a flag instead could take
 * over the CPU of a preempted initializer (a thread woken with a kernel
 * priority outranks one at user priority) and, with every CPU so taken,
 * spin forever.  Held around the state check and one mtx_init() or
 * cv_init(), neither of which sleeps or takes a sleep lock.
 */
static struct mtx rzil_init_mtx;
MTX_SYSINIT(rzil_init, &rzil_init_mtx, "rzil lock setup", MTX_SPIN);

void
rzil_shim_init_lock(void)
{

	mtx_lock_spin(&rzil_init_mtx);
}

void
rzil_shim_init_unlock(void)
{

	mtx_unlock_spin(&rzil_init_mtx);
}

void
rzil_shim_mtx_init(struct mtx *m, const char *name, int dupok)
{

	/* MTX_NEW: the memory may hold UMA's trash pattern, not zeroes. */
	mtx_init(m, name, NULL, MTX_DEF | MTX_NEW | (dupok ? MTX_DUPOK : 0));
}

void
rzil_shim_mtx_destroy(struct mtx *m)
{

	mtx_destroy(m);
}

void
rzil_shim_mtx_lock(struct mtx *m)
{

	mtx_lock(m);
}

int
rzil_shim_mtx_trylock(struct mtx *m)
{

	return (mtx_trylock(m));
}

void
rzil_shim_mtx_unlock(struct mtx *m)
{

	mtx_unlock(m);
}

void
rzil_shim_cv_init(struct cv *cv, const char *name)
{

	cv_init(cv, name);
}

void
rzil_shim_cv_destroy(struct cv *cv)
{

	cv_destroy(cv);
}

int
rzil_shim_cv_timedwait_sig_ns(struct cv *cv, struct mtx *m,
    uint64_t timeout_ns)
{

	return (cv_timedwait_sig_sbt(cv, m, nstosbt(timeout_ns), 0, 0));
}

void
rzil_shim_cv_broadcast(struct cv *cv)
{

	cv_broadcast(cv);
}

uint64_t
rzil_shim_uptime_ns(void)
{

	return (sbttons(sbinuptime()));
}

uint64_t
rzil_shim_random_u64(void)
{
	uint64_t v;

	arc4random_buf(&v, sizeof(v));
	return (v);
}

void *
rzil_shim_zalloc(enum rzil_zone zone)
{

	KASSERT(zone < RZIL_ZONE_COUNT, ("rzil: bad zone %d", zone));
	/* The core may hold its log lock here: never sleep. */
	return (uma_zalloc(rzil_zones[zone], M_NOWAIT));
}

void *
rzil_shim_zalloc_wait(enum rzil_zone zone)
{

	KASSERT(zone < RZIL_ZONE_COUNT, ("rzil: bad zone %d", zone));
	WITNESS_WARN(WARN_GIANTOK | WARN_SLEEPOK, NULL,
	    "rzil_shim_zalloc_wait");
	return (uma_zalloc(rzil_zones[zone], M_WAITOK));
}

void
rzil_shim_zfree(enum rzil_zone zone, void *item)
{

	KASSERT(zone < RZIL_ZONE_COUNT, ("rzil: bad zone %d", zone));
	uma_zfree(rzil_zones[zone], item);
}

/*
 * The core's long-lived tables (lwb list, commit list, waiter table), a
 * few KiB each, allocated once per instance by rzil_core_attach().
 */
void *
rzil_shim_malloc(size_t size_bytes)
{

	/* Only the attach ioctl allocates this way, with no mutex held. */
	WITNESS_WARN(WARN_GIANTOK | WARN_SLEEPOK, NULL, "rzil_shim_malloc");
	return (malloc(size_bytes, M_RZIL, M_WAITOK));
}

void
rzil_shim_free(void *p)
{

	free(p, M_RZIL);
}

void
rzil_shim_tunables(struct rzil_tunables *t)
{

	t->rt_commit_timeout_pct = atomic_load_int(&rzil_commit_timeout_pct);
	t->rt_nocacheflush = atomic_load_int(&rzil_nocacheflush) != 0;
	t->rt_max_block_size_bytes = rzil_max_block_size;
}

void
rzil_shim_lwb_state(struct rzil_softc *sc, uint64_t lwb_seq, uint32_t from,
    uint32_t to)
{

	if (to < RZIL_LWB_STATES)
		counter_u64_add(rzil_lwb_entered[to], 1);
	SDT_PROBE4(rzil, , lwb, state, sc->sc_instance, lwb_seq, from, to);
}

void
rzil_shim_commit_done(struct rzil_softc *sc, uint64_t latency_ns)
{
	u_int bucket;

	bucket = latency_ns == 0 ? 0 : flsll(latency_ns) - 1;
	if (bucket >= RZIL_LATENCY_BUCKETS)
		bucket = RZIL_LATENCY_BUCKETS - 1;
	counter_u64_add(rzil_commit_latency_hist[bucket], 1);
	counter_u64_add(rzil_commits, 1);
	SDT_PROBE2(rzil, , commit, done, sc->sc_instance, latency_ns);
}

void
rzil_count_flush(void)
{

	counter_u64_add(rzil_flushes, 1);
}

/* --- module events ------------------------------------------------------------ */

static int
rzil_load(void)
{
	struct rzil_zone_sizes sizes;
	int error;

	if (rzil_max_block_size < RZIL_BLOCK_SIZE_MIN ||
	    rzil_max_block_size > RZIL_BLOCK_SIZE_MAX ||
	    !powerof2(rzil_max_block_size)) {
		rzil_warn("kern.rzil.max_block_size=%u is not a power of two "
		    "in [%d, %d]; using %d", rzil_max_block_size,
		    RZIL_BLOCK_SIZE_MIN, RZIL_BLOCK_SIZE_MAX,
		    RZIL_BLOCK_SIZE_DEFAULT);
		rzil_max_block_size = RZIL_BLOCK_SIZE_DEFAULT;
	}
	bzero(&sizes, sizeof(sizes));
	error = rzil_core_load(&sizes);
	if (error != 0) {
		rzil_warn("core failed to load: error %d", error);
		return (error);
	}
	/* Buffers hold one whole log block; the core cannot know the tunable. */
	sizes.rz_size_bytes[RZIL_ZONE_BUF] = rzil_max_block_size;
	sx_init(&rzil_lock, "rzil instances");
	error = rzil_zones_create(&sizes);
	if (error == 0) {
		error = g_modevent(NULL, MOD_LOAD, &rzil_class);
		if (error == 0) {
			error = rzil_dev_create();
			if (error != 0)
				(void)g_modevent(NULL, MOD_UNLOAD, &rzil_class);
		}
	}
	if (error != 0) {
		rzil_zones_destroy();
		sx_destroy(&rzil_lock);
		rzil_core_unload();
		return (error);
	}
	rzil_loaded = 1;
	return (0);
}

static int
rzil_quiesce(int unloading)
{
	int attached;

	sx_xlock(&rzil_lock);
	attached = rzil_instances_attached();
	if (attached == 0 && unloading)
		rzil_unloading = 1;
	sx_xunlock(&rzil_lock);
	if (attached != 0) {
		rzil_warn("unload refused: %d instance(s) attached; "
		    "detach them first", attached);
		return (EBUSY);
	}
	return (0);
}

static int
rzil_unload(void)
{
	int error;

	error = rzil_quiesce(1);
	if (error != 0)
		return (error);
	/* destroy_dev(9) waits for threads still inside rzil_ioctl. */
	rzil_dev_destroy();
	error = g_modevent(NULL, MOD_UNLOAD, &rzil_class);
	if (error != 0) {
		rzil_warn("GEOM class still has geoms: error %d", error);
		sx_xlock(&rzil_lock);
		rzil_unloading = 0;
		sx_xunlock(&rzil_lock);
		(void)rzil_dev_create();
		return (error);
	}
	rzil_zones_destroy();
	sx_destroy(&rzil_lock);
	rzil_core_unload();
	rzil_loaded = 0;
	return (0);
}

static int
rzil_modevent(module_t mod __unused, int type, void *data __unused)
{

	switch (type) {
	case MOD_LOAD:
		return (rzil_load());
	case MOD_QUIESCE:
		return (rzil_loaded ? rzil_quiesce(0) : 0);
	case MOD_UNLOAD:
		/* Also sent right after a MOD_LOAD that failed (see rzil_loaded). */
		return (rzil_loaded ? rzil_unload() : 0);
	case MOD_SHUTDOWN:
		return (0);
	default:
		return (EOPNOTSUPP);
	}
}

static moduledata_t rzil_mod = {
	"rzil",
	rzil_modevent,
	NULL
};

DECLARE_MODULE(rzil, rzil_mod, SI_SUB_DRIVERS, SI_ORDER_ANY);
MODULE_VERSION(rzil, RZIL_VERSION);
