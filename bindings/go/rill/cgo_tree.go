//go:build !rill_pkgconfig

package rill

// Built inside the rill source tree: the header from include/, librill.so from
// target/release (`cargo build --release`), found at run time through an rpath.
// Build with `-tags rill_pkgconfig` to use an installed rill through pkg-config instead.

// #cgo CFLAGS: -I${SRCDIR}/../../../include
// #cgo LDFLAGS: -L${SRCDIR}/../../../target/release -lrill -Wl,-rpath,${SRCDIR}/../../../target/release
import "C"
