#!/usr/bin/env bash
# Every shell script of the tree parses: `bash -n` over the host's bash
# scripts, `busybox sh -n` over those the test VM's busybox runs (the
# scripts starting with #!/bin/sh, and tests/guest/lib.sh, which they
# source). A bash-only construct in a VM script (a here-string, say) is
# otherwise found only when the VM reaches it, an hour into make check.
set -uo pipefail
cd "$(dirname "$0")/../.."
bad=0 n=0
while IFS= read -r f; do
    first=$(head -n1 "$f")
    case $first in
        '#!/bin/sh') sh=(busybox sh -n) ;;
        '#!/usr/bin/env bash' | '#!/bin/bash') sh=(bash -n) ;;
        *) [ "$f" = tests/guest/lib.sh ] && sh=(busybox sh -n) || continue ;;
    esac
    n=$((n + 1))
    if ! "${sh[@]}" "$f" 2>/tmp/sh-parse.$$; then
        echo "sh-parse: $f (${sh[0]}): $(head -n3 /tmp/sh-parse.$$)"
        bad=$((bad + 1))
    fi
done < <(git ls-files '*.sh' .ci/run bench/bench 2>/dev/null)
rm -f /tmp/sh-parse.$$
echo "sh-parse: $n scripts, $bad that do not parse"
[ "$n" -gt 0 ] && [ "$bad" = 0 ]
