#!/usr/bin/env bash
# mqpipe installed the way a Debian admin does, under a real systemd: boots a
# fresh Debian 12 in systemd-nspawn (systemd as PID 1, its own network
# namespace), builds the .deb from this tree, runs README "Install"'s blocks
# in the container and checks the units, their state, the journal, a SIGKILL
# and a hang recovered with every expected output of the sample traces, the
# live page, the secure profile and Prometheus (debian_system.py does it).
# Skips where the machine cannot run containers, and on the sanitizer pass:
# the package is built from the tree with Debian's flags, not from
# $MQPIPE_BIN, so a second run would test the same thing again.
# test-timeout: 900
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case "${MQPIPE_BIN:-}" in
*build-sanitize*)
	echo "SKIP: the container test builds its own package (Debian's flags), not \$MQPIPE_BIN: it runs on the normal pass only"
	exit 0
	;;
esac
exec python3 "$here/debian_system.py" "$@"
