/*
 * Wrapper over OpenZFS's own headers for bindgen (feature `openzfs-layout`).
 * Nothing of OpenZFS is copied here: the headers come from the Debian
 * zfs-linux source tree that scripts/openzfs-src.sh caches, and build.rs
 * points the include path at it. The generated Rust goes to OUT_DIR only.
 *
 * The userspace (libzpool) view of the headers is used: that is the build
 * ztest and zdb use, whose blocks are our test data. The defines build.rs
 * passes are the minimal set these headers need outside a configured tree.
 */
#include <sys/zil.h>
#include <sys/spa.h>
#include <sys/zio.h>
