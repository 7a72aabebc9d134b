/*-
 * SPDX-License-Identifier: CDDL-1.0 OR BSD-2-Clause
 *
 * The boundary between rzil.ko's C shim and its Rust core.
 *
 * The C side adapts kernel interfaces and holds no policy: it owns the
 * module, the UMA zones, the GEOM consumer, the taskqueue, the cdev and the
 * sysctl tree.  The Rust side (kmod/rust, linked in as a static library)
 * owns every lwb and decides what to write, when to flush and whom to wake.
 *
 *   rzil_core_*()	implemented in Rust, called by the C shim;
 *   rzil_shim_*()	implemented in C, called by Rust.
 *
 * bindgen reads this header (through kmod/rust/bindings/wrapper.h), so the
 * Rust declarations of the rzil_shim_*() functions and of the structures
 * below are generated from it and cannot drift from the C definitions.
 *
 * Locking: rzil_core_*() are called with no shim lock held, from a thread
 * that may sleep (ioctl context), except rzil_core_io_done(), which runs on
 * the instance's taskqueue thread.  rzil_shim_*() never call back into the
 * core synchronously.
 */

#ifndef _RZIL_KMOD_H_
#define	_RZIL_KMOD_H_

#include <sys/types.h>

struct mtx;
struct cv;
struct rzil_softc;			/* C: one attached provider */
struct rzil_core;			/* Rust: the core of one instance */
struct rzil_ioc_append;
struct rzil_ioc_stats;

/* UMA zones the shim creates for the core; see rzil_core_zone_sizes(). */
enum rzil_zone {
	RZIL_ZONE_LWB = 0,		/* lwb objects (zil_lwb_cache) */
	RZIL_ZONE_ITX,			/* itx objects */
	RZIL_ZONE_IO,			/* one per in-flight BIO_WRITE/BIO_FLUSH */
	RZIL_ZONE_BUF,			/* log block buffers (max block size) */
	RZIL_ZONE_COUNT
};

/* Item sizes the core asks for, in bytes; alignment is pointer-sized. */
struct rzil_zone_sizes {
	uint32_t	rz_size_bytes[RZIL_ZONE_COUNT];
	uint32_t	rz_align_bytes;		/* largest alignment needed */
};

/* Tunables (kern.rzil.*), read by the core when it needs them. */
struct rzil_tunables {
	uint32_t	rt_commit_timeout_pct;	/* zfs_commit_timeout_pct */
	uint32_t	rt_nocacheflush;	/* zfs_nocacheflush: no BIO_FLUSH */
	uint32_t	rt_max_block_size_bytes; /* zil_maxblocksize */
};

/* What the shim learned about the provider at attach. */
struct rzil_geometry {
	uint64_t	rg_media_size_bytes;
	uint32_t	rg_sector_size_bytes;
	uint32_t	rg_instance;
};

/* Rust: core entry points (kmod/rust/src/exports.rs). */
int	rzil_core_load(struct rzil_zone_sizes *sizes);
void	rzil_core_unload(void);
size_t	rzil_core_instance_size(void);
size_t	rzil_core_instance_align(void);
int	rzil_core_attach(struct rzil_core *core, struct rzil_softc *sc,
	    const struct rzil_geometry *geom);
int	rzil_core_busy(struct rzil_core *core);
void	rzil_core_detach(struct rzil_core *core);
int	rzil_core_append(struct rzil_core *core,
	    const struct rzil_ioc_append *rec, const uint8_t *payload);
int	rzil_core_commit(struct rzil_core *core, uint64_t foid,
	    uint64_t *latency_ns);
int	rzil_core_checkpoint(struct rzil_core *core);
void	rzil_core_stats(struct rzil_core *core, struct rzil_ioc_stats *st);
void	rzil_core_io_done(struct rzil_core *core, void *io, int error);

/* C: services for the core (rzil_kmod.c, rzil_geom.c). */
void	rzil_shim_panic(const char *msg, size_t len) __attribute__((noreturn));
void	rzil_shim_log(const char *msg, size_t len);
void	rzil_shim_init_lock(void);
void	rzil_shim_init_unlock(void);
void	rzil_shim_mtx_init(struct mtx *m, const char *name, int dupok);
void	rzil_shim_mtx_destroy(struct mtx *m);
void	rzil_shim_mtx_lock(struct mtx *m);
int	rzil_shim_mtx_trylock(struct mtx *m);
void	rzil_shim_mtx_unlock(struct mtx *m);
void	rzil_shim_cv_init(struct cv *cv, const char *name);
void	rzil_shim_cv_destroy(struct cv *cv);
int	rzil_shim_cv_timedwait_sig_ns(struct cv *cv, struct mtx *m,
	    uint64_t timeout_ns);
void	rzil_shim_cv_broadcast(struct cv *cv);
uint64_t rzil_shim_uptime_ns(void);
uint64_t rzil_shim_random_u64(void);
void	*rzil_shim_zalloc(enum rzil_zone zone);
void	*rzil_shim_zalloc_wait(enum rzil_zone zone);
void	rzil_shim_zfree(enum rzil_zone zone, void *item);
void	*rzil_shim_malloc(size_t size_bytes);
void	rzil_shim_free(void *p);
void	rzil_shim_tunables(struct rzil_tunables *t);
void	rzil_shim_submit_write(struct rzil_softc *sc, void *io,
	    uint64_t offset_bytes, void *buf, uint32_t len_bytes);
void	rzil_shim_submit_flush(struct rzil_softc *sc, void *io);
void	rzil_shim_lwb_state(struct rzil_softc *sc, uint64_t lwb_seq,
	    uint32_t from, uint32_t to);
void	rzil_shim_commit_done(struct rzil_softc *sc, uint64_t latency_ns);

#endif /* !_RZIL_KMOD_H_ */
