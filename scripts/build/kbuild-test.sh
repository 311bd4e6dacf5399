#!/usr/bin/env bash
# Kbuild's refusals, on a copy of the Kbuild file alone (nothing is compiled):
#  - kbuild's clean pass, which reads Kbuild without the kernel's
#    configuration, must succeed (a fresh clone's first module build runs it);
#  - a kernel configured without CONFIG_X86_64 must be refused by name.
# Usage: kbuild-test.sh KDIR
set -euo pipefail
. "$(dirname "$0")/env.sh"
kdir=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$REPO/Kbuild" "$tmp/"
km() { make -C "$kdir" M="$tmp" "${KMAKE_ARGS[@]}" "$@" 2>&1; }
out=$(km clean) || { echo "$out" | tail -n 5; echo "kbuild-test: the clean pass failed"; exit 1; }
if out=$(km CONFIG_X86_64=n modules); then
    echo "kbuild-test: a kernel without CONFIG_X86_64 was not refused"; exit 1
fi
echo "$out" | grep -q 'vhost_net_rs: x86-64 only' \
    || { echo "$out" | tail -n 5; echo "kbuild-test: refused, but not by the architecture guard"; exit 1; }
echo "kbuild-test: clean pass ok; non-x86-64 configuration refused"
