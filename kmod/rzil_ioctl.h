/*-
 * SPDX-License-Identifier: CDDL-1.0 OR BSD-2-Clause
 *
 * rzil.ko control interface: the ioctls of /dev/rzilctl.
 *
 * Shared by the kernel module and userspace (the `rzil --kernel` backend).
 * Every argument structure starts with its own size in bytes (`*_size`),
 * which the module checks against the size it was built with, so that a
 * caller built against another revision of this header gets EINVAL and a
 * log line instead of a misread structure.  Records carry their payload by
 * user pointer; the module copies it in (copyin(9)), so a bad pointer is
 * EFAULT.
 */

#ifndef _RZIL_IOCTL_H_
#define	_RZIL_IOCTL_H_

#include <sys/types.h>
#include <sys/ioccom.h>

#define	RZIL_CTL_NAME		"rzilctl"	/* /dev/rzilctl */
#define	RZIL_PROVIDER_NAME_MAX	64		/* bytes, NUL included */
#define	RZIL_INSTANCES_MAX	4		/* attached providers at once */
#define	RZIL_RECORD_BYTES_MAX	7680		/* one record's payload (WR_COPIED) */
#define	RZIL_LATENCY_BUCKETS	32		/* log2(ns) commit histogram */
#define	RZIL_LWB_STATES		7		/* see enum rzil_lwb_state */

/*
 * lwb states in the order the core takes them: OpenZFS's lwb_state_t
 * (zil_impl.h, 2.2) plus CLOSED, the core's name for an lwb whose records
 * are being copied into its buffer (rzil::lwb::LwbState).
 */
enum rzil_lwb_state {
	RZIL_LWB_NEW = 0,
	RZIL_LWB_OPENED,
	RZIL_LWB_CLOSED,
	RZIL_LWB_READY,
	RZIL_LWB_ISSUED,
	RZIL_LWB_WRITE_DONE,
	RZIL_LWB_FLUSH_DONE,
};

/* RZIL_IOC_ATTACH: attach an instance to a GEOM provider (e.g. "md0"). */
struct rzil_ioc_attach {
	uint32_t	ra_size;		/* sizeof(struct rzil_ioc_attach) */
	uint32_t	ra_instance;		/* out: instance id */
	char		ra_provider[RZIL_PROVIDER_NAME_MAX];
	uint64_t	ra_media_size_bytes;	/* out: provider size */
	uint32_t	ra_sector_size_bytes;	/* out: provider sector size */
	uint32_t	ra_pad;
};

/* RZIL_IOC_APPEND: assign one TX_WRITE-style record (itx) to the log. */
struct rzil_ioc_append {
	uint32_t	rr_size;		/* sizeof(struct rzil_ioc_append) */
	uint32_t	rr_instance;
	uint64_t	rr_foid;		/* object id the record belongs to */
	uint64_t	rr_offset_bytes;	/* offset in the object */
	uint64_t	rr_payload;		/* user address of the payload */
	uint32_t	rr_payload_bytes;	/* <= RZIL_RECORD_BYTES_MAX */
	uint32_t	rr_pad;
};

/*
 * RZIL_IOC_COMMIT: make every record assigned so far durable (rc_foid is
 * reserved for a per-object commit and must be 0).  Sleeps until then,
 * interruptibly: a signal ends it with EINTR (or a restart), and then
 * nothing is acknowledged.
 */
struct rzil_ioc_commit {
	uint32_t	rc_size;		/* sizeof(struct rzil_ioc_commit) */
	uint32_t	rc_instance;
	uint64_t	rc_foid;
	uint64_t	rc_latency_ns;		/* out: time spent committing */
};

/* RZIL_IOC_CHECKPOINT / RZIL_IOC_DETACH: instance-only requests. */
struct rzil_ioc_instance {
	uint32_t	ri_size;		/* sizeof(struct rzil_ioc_instance) */
	uint32_t	ri_instance;
};

/* RZIL_IOC_STATS: counters of one instance. */
struct rzil_ioc_stats {
	uint32_t	rs_size;		/* sizeof(struct rzil_ioc_stats) */
	uint32_t	rs_instance;
	uint64_t	rs_records;		/* records assigned */
	uint64_t	rs_commits;		/* commits completed */
	uint64_t	rs_lwbs_issued;		/* log blocks written */
	uint64_t	rs_flushes;		/* BIO_FLUSH issued */
	uint64_t	rs_io_errors;		/* failed BIO_WRITE/BIO_FLUSH */
	uint64_t	rs_bytes_written;	/* log block bytes written */
	uint64_t	rs_lwbs_in_state[RZIL_LWB_STATES]; /* lwbs now in state */
	uint64_t	rs_commit_latency_ns_max;
};

#define	RZIL_IOC_ATTACH		_IOWR('Z', 1, struct rzil_ioc_attach)
#define	RZIL_IOC_APPEND		_IOWR('Z', 2, struct rzil_ioc_append)
#define	RZIL_IOC_COMMIT		_IOWR('Z', 3, struct rzil_ioc_commit)
#define	RZIL_IOC_CHECKPOINT	_IOW('Z', 4, struct rzil_ioc_instance)
#define	RZIL_IOC_STATS		_IOWR('Z', 5, struct rzil_ioc_stats)
#define	RZIL_IOC_DETACH		_IOW('Z', 6, struct rzil_ioc_instance)

#endif /* !_RZIL_IOCTL_H_ */
