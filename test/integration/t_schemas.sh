#!/usr/bin/env bash
# schemas/ is the contract: every schema's examples validate against it, and
# the README's topic table is exactly the one generated from the schemas.
source "$(dirname "$0")/lib.sh"
cd "$MQPIPE_ROOT"
for f in schemas/*.schema.json; do
	jq -e '.["x-topic"] and .["x-direction"] and .["x-agent"] and (.examples | length > 0)' "$f" >/dev/null ||
		fail "$f lacks x-topic, x-direction, x-agent or examples"
done
scripts/schemas examples || fail "a schema's example does not validate"
echo '{"moduleid":"m","timestamp":1,"success_rate":101,"received":1,"attempts":1}' |
	scripts/schemas validate success_rate 2>/dev/null && fail "the validator accepts a rate over 100"
scripts/schemas check-readme || fail "README topic table out of date"
echo "all ok"
