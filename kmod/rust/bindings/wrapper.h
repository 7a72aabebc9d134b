/*
 * What bindgen sees (kmod/rust/build.rs): the FreeBSD KPI types the Rust
 * side stores or reads (struct mtx and struct cv are embedded in Rust
 * objects; struct bio, struct g_consumer and uma_zone are named in the
 * shim's interface) and rzil's own C<->Rust boundary, rzil_kmod.h.
 * The generated file lives in OUT_DIR only.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/errno.h>
#include <sys/bio.h>
#include <sys/condvar.h>
#include <sys/kernel.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/mutex.h>
#include <sys/sx.h>
#include <geom/geom.h>
#include <vm/uma.h>

#include "rzil_ioctl.h"
#include "rzil_kmod.h"
