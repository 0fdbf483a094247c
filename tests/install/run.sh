#!/usr/bin/env bash
# Builds the examples against an installed rill tree only and runs each on the default
# model: C through pkg-config (shared, and static with librill.a), C++ through CMake's
# find_package(rill) (rill::rill and rill::rill_static), Go through pkg-config
# (-tags rill_pkgconfig); also the whole C test linked statically. Each must print the
# greedy text of the C test.
# Usage: run.sh PREFIX MODEL_DIR GREEDY_C_LINE_FILE PLUGIN WORK_DIR
set -euo pipefail
prefix=$1 model=$2 greedy=$3 plugin=$4 work=$5
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prompt="In the beginning God created"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
expected=$(sed 's/^generated [0-9]* tokens: //' "$greedy")
[ -n "$expected" ] || { echo "no greedy line in $greedy"; exit 1; }

# Only the installed tree: the examples are copied out of the source tree first.
mkdir -p "$work"
cp -r "$root/examples/c" "$root/examples/cpp" "$work/"

check() { # NAME PROGRAM...
    local name=$1; shift
    local t0=$SECONDS out
    out=$("$@" "$model" "$prompt" 24)
    if [ "$out" != "$expected" ]; then
        printf 'FAIL %s:\n  got  %s\n  want %s\n' "$name" "$out" "$expected"
        exit 1
    fi
    echo "ok   $name ($((SECONDS - t0)) s): $out"
}
links_librill() { readelf -d "$1" | grep -q 'NEEDED.*librill\.so'; }

echo "pkg-config: $(pkg-config --modversion rill), $(pkg-config --cflags --libs rill)"
make --no-print-directory -s -C "$work/c" OUT="$work/c"
make --no-print-directory -s -C "$work/c" OUT="$work/c" static
ldd "$work/c/stream" | grep -q "$prefix/lib/librill.so" || { echo "FAIL: stream does not load $prefix/lib/librill.so"; ldd "$work/c/stream"; exit 1; }
if links_librill "$work/c/stream-static"; then echo "FAIL: stream-static needs librill.so"; exit 1; fi
check "C, pkg-config, librill.so" "$work/c/stream"
check "C, pkg-config, librill.a" "$work/c/stream-static"

for kind in shared static; do
    static=OFF; [ $kind = static ] && static=ON
    cmake -S "$work/cpp" -B "$work/cpp-$kind" -DCMAKE_PREFIX_PATH="$prefix" -DRILL_STATIC=$static \
        -DCMAKE_BUILD_TYPE=Release > "$work/cpp-$kind.log"
    cmake --build "$work/cpp-$kind" >> "$work/cpp-$kind.log"
    if [ $kind = shared ]; then links_librill "$work/cpp-$kind/stream"; else ! links_librill "$work/cpp-$kind/stream"; fi \
        || { echo "FAIL: CMake $kind build links librill.so wrongly"; exit 1; }
    check "C++, CMake rill::rill$([ $kind = static ] && echo _static)" "$work/cpp-$kind/stream"
done

(cd "$root/examples/go" && GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    go build -tags rill_pkgconfig -o "$work/stream-go" .)
LD_LIBRARY_PATH=$prefix/lib check "Go, pkg-config" "$work/stream-go"

# The whole C test against librill.a: standard samplers registered statically, no plugin
# file needed for them (the plugin test loads its own).
cc -std=c11 -pthread -Wall -Wextra -Werror $(pkg-config --cflags rill) "$root/tests/c/test_rill.c" \
    $(pkg-config --variable=static_libs rill) -o "$work/test_rill_static"
if links_librill "$work/test_rill_static"; then echo "FAIL: test_rill_static needs librill.so"; exit 1; fi
"$work/test_rill_static" "$model" "$plugin" > "$work/test_rill_static.out" || { cat "$work/test_rill_static.out"; exit 1; }
grep '^generated' "$work/test_rill_static.out" | diff -u "$greedy" -
echo "ok   C test, librill.a: $(tail -n 1 "$work/test_rill_static.out")"
