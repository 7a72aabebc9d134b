/*-
 * SPDX-License-Identifier: CDDL-1.0 OR BSD-2-Clause
 *
 * rzil.ko: the control device /dev/rzilctl and its ioctls (rzil_ioctl.h).
 *
 * The kernel's ioctl layer copies the fixed-size argument in and out; this
 * file checks what is inside it (the embedded size, the instance id, the
 * provider name, the payload length) and copies record payloads in from
 * user memory.  Every refusal is an errno and a log line, never a panic.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/conf.h>
#include <sys/fcntl.h>
#include <sys/kernel.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/mutex.h>
#include <sys/taskqueue.h>

#include "rzil_kmod_var.h"

static d_ioctl_t rzil_ioctl;

static struct cdevsw rzil_cdevsw = {
	.d_version = D_VERSION,
	.d_ioctl = rzil_ioctl,
	.d_name = RZIL_CTL_NAME,
};

static struct cdev *rzil_cdev;

/* An argument built against another revision of rzil_ioctl.h. */
static int
rzil_check_size(const char *what, uint32_t got, size_t want)
{

	if (got != want) {
		rzil_warn("%s: argument size %u, expected %zu (stale "
		    "rzil_ioctl.h?)", what, got, want);
		return (EINVAL);
	}
	return (0);
}

static int
rzil_ioc_attach(struct rzil_ioc_attach *ra)
{
	int error;

	error = rzil_check_size("attach", ra->ra_size, sizeof(*ra));
	if (error != 0)
		return (error);
	if (strnlen(ra->ra_provider, sizeof(ra->ra_provider)) ==
	    sizeof(ra->ra_provider) || ra->ra_provider[0] == '\0') {
		rzil_warn("attach: provider name empty or not terminated");
		return (EINVAL);
	}
	return (rzil_instance_attach(ra->ra_provider, ra));
}

static int
rzil_ioc_append(struct rzil_ioc_append *rr)
{
	struct rzil_softc *sc;
	uint8_t *payload;
	int error;

	error = rzil_check_size("append", rr->rr_size, sizeof(*rr));
	if (error != 0)
		return (error);
	if (rr->rr_payload_bytes == 0) {
		rzil_warn("append: empty record");
		return (EINVAL);
	}
	if (rr->rr_payload_bytes > RZIL_RECORD_BYTES_MAX) {
		rzil_warn("append: record of %u bytes exceeds %d",
		    rr->rr_payload_bytes, RZIL_RECORD_BYTES_MAX);
		return (EFBIG);
	}
	payload = malloc(rr->rr_payload_bytes, M_RZIL, M_WAITOK);
	error = copyin((const void *)(uintptr_t)rr->rr_payload, payload,
	    rr->rr_payload_bytes);
	if (error != 0) {
		free(payload, M_RZIL);
		rzil_warn("append: bad payload address %#jx",
		    (uintmax_t)rr->rr_payload);
		return (error);
	}
	sc = rzil_instance_hold(rr->rr_instance, &error);
	if (sc != NULL) {
		error = rzil_core_append(sc->sc_core, rr, payload);
		rzil_instance_rele(sc);
	}
	free(payload, M_RZIL);
	return (error);
}

static int
rzil_ioc_commit(struct rzil_ioc_commit *rc)
{
	struct rzil_softc *sc;
	int error;

	error = rzil_check_size("commit", rc->rc_size, sizeof(*rc));
	if (error != 0)
		return (error);
	if (rc->rc_foid != 0) {
		rzil_warn("commit: rc_foid must be 0 (per-object commit is "
		    "reserved)");
		return (EINVAL);
	}
	sc = rzil_instance_hold(rc->rc_instance, &error);
	if (sc == NULL)
		return (error);
	error = rzil_core_commit(sc->sc_core, rc->rc_foid, &rc->rc_latency_ns);
	rzil_instance_rele(sc);
	return (error);
}

static int
rzil_ioc_checkpoint(struct rzil_ioc_instance *ri)
{
	struct rzil_softc *sc;
	int error;

	error = rzil_check_size("checkpoint", ri->ri_size, sizeof(*ri));
	if (error != 0)
		return (error);
	sc = rzil_instance_hold(ri->ri_instance, &error);
	if (sc == NULL)
		return (error);
	error = rzil_core_checkpoint(sc->sc_core);
	rzil_instance_rele(sc);
	return (error);
}

static int
rzil_ioc_stats(struct rzil_ioc_stats *rs)
{
	struct rzil_softc *sc;
	uint32_t instance;
	int error;

	error = rzil_check_size("stats", rs->rs_size, sizeof(*rs));
	if (error != 0)
		return (error);
	instance = rs->rs_instance;
	sc = rzil_instance_hold(instance, &error);
	if (sc == NULL)
		return (error);
	bzero(rs, sizeof(*rs));
	rs->rs_size = sizeof(*rs);
	rs->rs_instance = instance;
	rzil_core_stats(sc->sc_core, rs);
	rzil_instance_rele(sc);
	return (0);
}

static int
rzil_ioc_detach(struct rzil_ioc_instance *ri)
{
	int error;

	error = rzil_check_size("detach", ri->ri_size, sizeof(*ri));
	if (error != 0)
		return (error);
	return (rzil_instance_detach(ri->ri_instance));
}

static int
rzil_ioctl(struct cdev *dev __unused, u_long cmd, caddr_t data, int fflag,
    struct thread *td __unused)
{

	if (cmd != RZIL_IOC_STATS && (fflag & FWRITE) == 0)
		return (EBADF);
	switch (cmd) {
	case RZIL_IOC_ATTACH:
		return (rzil_ioc_attach((struct rzil_ioc_attach *)data));
	case RZIL_IOC_APPEND:
		return (rzil_ioc_append((struct rzil_ioc_append *)data));
	case RZIL_IOC_COMMIT:
		return (rzil_ioc_commit((struct rzil_ioc_commit *)data));
	case RZIL_IOC_CHECKPOINT:
		return (rzil_ioc_checkpoint((struct rzil_ioc_instance *)data));
	case RZIL_IOC_STATS:
		return (rzil_ioc_stats((struct rzil_ioc_stats *)data));
	case RZIL_IOC_DETACH:
		return (rzil_ioc_detach((struct rzil_ioc_instance *)data));
	default:
		rzil_warn("unknown ioctl %#lx", cmd);
		return (ENOTTY);
	}
}

int
rzil_dev_create(void)
{
	struct make_dev_args args;
	int error;

	make_dev_args_init(&args);
	args.mda_devsw = &rzil_cdevsw;
	args.mda_uid = UID_ROOT;
	args.mda_gid = GID_OPERATOR;
	args.mda_mode = 0660;
	args.mda_flags = MAKEDEV_CHECKNAME | MAKEDEV_WAITOK;
	error = make_dev_s(&args, &rzil_cdev, "%s", RZIL_CTL_NAME);
	if (error != 0)
		rzil_warn("cannot create /dev/%s: error %d", RZIL_CTL_NAME,
		    error);
	return (error);
}

void
rzil_dev_destroy(void)
{

	if (rzil_cdev != NULL) {
		destroy_dev(rzil_cdev);
		rzil_cdev = NULL;
	}
}
