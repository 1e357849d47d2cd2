#!/usr/bin/env bash
# The live page in headless chromium (test/browser/page.mjs says what it
# checks), served by a broker of this test with the development
# configuration's websockets listener, on a free port. The screenshot goes
# to the build directory (page.png). Skipped, saying so, only when chromium
# is not installed (scripts/bootstrap could not install it).
source "$(dirname "$0")/lib.sh"
if ! command -v chromium >/dev/null 2>&1; then
	echo "SKIP: chromium is not installed (scripts/bootstrap could not install it): the browser tests did not run"
	exit 0
fi
[ -d "$MQPIPE_ROOT/node_modules/playwright-core" ] || fail "node_modules/playwright-core missing: run scripts/bootstrap"
[ -f "$MQPIPE_ROOT/broker-config/www/vendor/mqtt.min.js" ] || fail "the page's MQTT bundle is missing: run scripts/bootstrap"

T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap it_cleanup EXIT
broker_web_template "$T" || fail "no websockets listener in broker-config/mosquitto.conf"
web=$WEB_PORT
broker_start "$T/broker" "$T/web.conf.in" || fail "cannot start mosquitto"
wait_for 10 port_in_use "$web" || fail "the websockets listener did not open: $(tail -3 "$T/broker/mosquitto.log")"
note "broker on $BROKER_URI, page on http://127.0.0.1:$web/"
curl -sf "http://127.0.0.1:$web/" | grep -q '<title>mqpipe' || fail "the broker does not serve the page"
curl -sf "http://127.0.0.1:$web/vendor/mqtt.min.js" >/dev/null || fail "the broker does not serve the MQTT bundle"

node "$MQPIPE_ROOT/test/browser/page.mjs" "$web" "$BROKER_PORT" "$(dirname "$BIN")/page.png" ||
	fail "the page test failed (its output is above)"
