/*-
 * SPDX-License-Identifier: CDDL-1.0 OR BSD-2-Clause
 *
 * rzil.ko: declarations shared by the C files of the shim only.
 */

#ifndef _RZIL_KMOD_VAR_H_
#define	_RZIL_KMOD_VAR_H_

#include "rzil_ioctl.h"
#include "rzil_kmod.h"

MALLOC_DECLARE(M_RZIL);

/*
 * One attached provider.
 *
 * Locking:
 *   (g)	rzil_lock (the instance table lock, rzil_kmod.c)
 *   (t)	GEOM topology lock
 *   (d)	sc_done_mtx
 *   (c)	constant from attach to detach
 *   (a)	atomic
 */
struct rzil_softc {
	u_int			 sc_instance;	/* (c) index in rzil_softcs */
	char			 sc_provider[RZIL_PROVIDER_NAME_MAX]; /* (c) */
	struct g_geom		*sc_geom;	/* (t) */
	struct g_consumer	*sc_consumer;	/* (t) */
	uint64_t		 sc_media_size_bytes;	/* (c) */
	uint32_t		 sc_sector_size_bytes;	/* (c) */
	struct mtx		 sc_done_mtx;
	TAILQ_HEAD(, bio)	 sc_done_queue;	/* (d) finished bios */
	struct task		 sc_done_task;	/* hands them to the core */
	struct taskqueue	*sc_tq;		/* (c) */
	u_int			 sc_inflight;	/* (a) bios not yet handed back */
	u_int			 sc_busy;	/* (g) ioctls inside the core */
	int			 sc_orphaned;	/* (a) provider went away */
	struct rzil_core	*sc_core;	/* (c) Rust instance */
};

extern struct g_class rzil_class;

int	rzil_geom_attach(struct rzil_softc *sc, const char *provider);
void	rzil_geom_detach(struct rzil_softc *sc);

int	rzil_dev_create(void);
void	rzil_dev_destroy(void);

int	rzil_instance_attach(const char *provider, struct rzil_ioc_attach *ra);
int	rzil_instance_detach(u_int instance);
struct rzil_softc *rzil_instance_hold(u_int instance, int *errorp);
void	rzil_instance_rele(struct rzil_softc *sc);

void	rzil_count_flush(void);
void	rzil_warn(const char *fmt, ...) __printflike(1, 2);

#endif /* !_RZIL_KMOD_VAR_H_ */
