//go:build rill_pkgconfig

package rill

// An installed rill (`make install PREFIX=...`), found through pkg-config's rill.pc
// (set PKG_CONFIG_PATH to PREFIX/lib/pkgconfig, and LD_LIBRARY_PATH or an rpath so
// that librill.so is found at run time).

// #cgo pkg-config: rill
import "C"
