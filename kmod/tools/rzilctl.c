/*-
 * SPDX-License-Identifier: CDDL-1.0 OR BSD-2-Clause
 *
 * rzilctl: drive rzil.ko through /dev/rzilctl by hand, for a first test on
 * a FreeBSD machine before the `rzil --kernel` backend of the host crate.
 *
 *	rzilctl attach PROVIDER		attach an instance (prints its id)
 *	rzilctl stats ID		print the instance's counters
 *	rzilctl stress ID RECORDS BYTES PER_COMMIT
 *					append RECORDS records of BYTES bytes,
 *					committing every PER_COMMIT of them
 *					(and checkpointing after each commit)
 *	rzilctl checkpoint ID		free the lwbs that are durable
 *	rzilctl detach ID		detach the instance
 *
 * Build: cc -O2 -Wall -I kmod -o rzilctl kmod/tools/rzilctl.c
 */

#include <sys/types.h>
#include <sys/ioctl.h>

#include <err.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rzil_ioctl.h"

#define	RZILCTL_DEV	"/dev/" RZIL_CTL_NAME
#define	NS_PER_S	1000000000ULL

static void usage(void) __dead2;
static uint32_t parse_u32(const char *s, const char *what, uint32_t max);

static void
usage(void)
{

	fprintf(stderr, "usage: rzilctl attach PROVIDER\n"
	    "       rzilctl stats|checkpoint|detach ID\n"
	    "       rzilctl stress ID RECORDS BYTES PER_COMMIT\n");
	exit(2);
}

static uint32_t
parse_u32(const char *s, const char *what, uint32_t max)
{
	unsigned long long v;
	char *end;

	v = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v > max)
		errx(2, "%s: '%s' is not a number in [0, %" PRIu32 "]", what, s,
		    max);
	return ((uint32_t)v);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec);
}

static void
print_stats(int fd, uint32_t instance)
{
	static const char *const states[RZIL_LWB_STATES] = {
		"new", "opened", "closed", "ready", "issued", "write_done",
		"flush_done"
	};
	struct rzil_ioc_stats rs;
	int i;

	memset(&rs, 0, sizeof(rs));
	rs.rs_size = sizeof(rs);
	rs.rs_instance = instance;
	if (ioctl(fd, RZIL_IOC_STATS, &rs) == -1)
		err(1, "RZIL_IOC_STATS");
	printf("records %ju commits %ju lwbs_issued %ju flushes %ju "
	    "io_errors %ju bytes_written %ju commit_latency_ns_max %ju\n",
	    (uintmax_t)rs.rs_records, (uintmax_t)rs.rs_commits,
	    (uintmax_t)rs.rs_lwbs_issued, (uintmax_t)rs.rs_flushes,
	    (uintmax_t)rs.rs_io_errors, (uintmax_t)rs.rs_bytes_written,
	    (uintmax_t)rs.rs_commit_latency_ns_max);
	for (i = 0; i < RZIL_LWB_STATES; i++)
		printf("%s%s %ju", i == 0 ? "lwbs now: " : " ", states[i],
		    (uintmax_t)rs.rs_lwbs_in_state[i]);
	printf("\n");
}

static void
stress(int fd, uint32_t instance, uint32_t records, uint32_t bytes,
    uint32_t per_commit)
{
	struct rzil_ioc_append rr;
	struct rzil_ioc_commit rc;
	struct rzil_ioc_instance ri;
	uint64_t start_ns, latency_ns_max;
	uint32_t i;
	uint8_t *payload;

	if (bytes == 0 || per_commit == 0)
		errx(2, "BYTES and PER_COMMIT must be positive");
	payload = malloc(bytes);
	if (payload == NULL)
		err(1, "malloc");
	latency_ns_max = 0;
	start_ns = now_ns();
	for (i = 0; i < records; i++) {
		memset(payload, (int)(i & 0xff), bytes);
		memset(&rr, 0, sizeof(rr));
		rr.rr_size = sizeof(rr);
		rr.rr_instance = instance;
		rr.rr_foid = 1 + i % 8;
		rr.rr_offset_bytes = (uint64_t)i * bytes;
		rr.rr_payload = (uint64_t)(uintptr_t)payload;
		rr.rr_payload_bytes = bytes;
		if (ioctl(fd, RZIL_IOC_APPEND, &rr) == -1)
			err(1, "RZIL_IOC_APPEND record %" PRIu32, i);
		if ((i + 1) % per_commit == 0 || i + 1 == records) {
			memset(&rc, 0, sizeof(rc));
			rc.rc_size = sizeof(rc);
			rc.rc_instance = instance;
			if (ioctl(fd, RZIL_IOC_COMMIT, &rc) == -1)
				err(1, "RZIL_IOC_COMMIT after record %" PRIu32,
				    i);
			if (rc.rc_latency_ns > latency_ns_max)
				latency_ns_max = rc.rc_latency_ns;
			/*
			 * The module frees durable lwbs only when asked: without
			 * a checkpoint the core stops at LWB_INFLIGHT_MAX lwbs
			 * and the next commit waits for one forever.
			 */
			memset(&ri, 0, sizeof(ri));
			ri.ri_size = sizeof(ri);
			ri.ri_instance = instance;
			if (ioctl(fd, RZIL_IOC_CHECKPOINT, &ri) == -1)
				err(1, "RZIL_IOC_CHECKPOINT after record %" PRIu32,
				    i);
		}
	}
	printf("%" PRIu32 " records of %" PRIu32 " bytes in %.3f s, commit "
	    "latency max %ju ns\n", records, bytes,
	    (double)(now_ns() - start_ns) / NS_PER_S,
	    (uintmax_t)latency_ns_max);
	free(payload);
}

int
main(int argc, char **argv)
{
	struct rzil_ioc_attach ra;
	struct rzil_ioc_instance ri;
	uint32_t instance;
	int fd;

	if (argc < 3)
		usage();
	fd = open(RZILCTL_DEV, O_RDWR);
	if (fd == -1)
		err(1, "%s (is rzil.ko loaded?)", RZILCTL_DEV);
	if (strcmp(argv[1], "attach") == 0 && argc == 3) {
		memset(&ra, 0, sizeof(ra));
		ra.ra_size = sizeof(ra);
		if (strlcpy(ra.ra_provider, argv[2], sizeof(ra.ra_provider)) >=
		    sizeof(ra.ra_provider))
			errx(2, "provider name too long");
		if (ioctl(fd, RZIL_IOC_ATTACH, &ra) == -1)
			err(1, "RZIL_IOC_ATTACH %s", argv[2]);
		printf("instance %" PRIu32 ": %s, %ju bytes, %" PRIu32
		    "-byte sectors\n", ra.ra_instance, argv[2],
		    (uintmax_t)ra.ra_media_size_bytes, ra.ra_sector_size_bytes);
		return (0);
	}
	instance = parse_u32(argv[2], "ID", RZIL_INSTANCES_MAX - 1);
	if (strcmp(argv[1], "stats") == 0 && argc == 3) {
		print_stats(fd, instance);
	} else if (strcmp(argv[1], "stress") == 0 && argc == 6) {
		stress(fd, instance, parse_u32(argv[3], "RECORDS", UINT32_MAX),
		    parse_u32(argv[4], "BYTES", RZIL_RECORD_BYTES_MAX),
		    parse_u32(argv[5], "PER_COMMIT", UINT32_MAX));
		print_stats(fd, instance);
	} else if ((strcmp(argv[1], "checkpoint") == 0 ||
	    strcmp(argv[1], "detach") == 0) && argc == 3) {
		memset(&ri, 0, sizeof(ri));
		ri.ri_size = sizeof(ri);
		ri.ri_instance = instance;
		if (ioctl(fd, argv[1][0] == 'c' ? RZIL_IOC_CHECKPOINT :
		    RZIL_IOC_DETACH, &ri) == -1)
			err(1, "%s %" PRIu32, argv[1], instance);
	} else
		usage();
	close(fd);
	return (0);
}
