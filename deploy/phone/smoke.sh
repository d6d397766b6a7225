#!/usr/bin/env bash
# Smoke test of the phone binary under qemu-user: an office and a volunteer, both the
# aarch64 binary, on loopback. The volunteer joins with a PIN, gets the plan from the office,
# records a visit through the field app's API and sees it listed; the office receives it;
# `status` answers. Run deploy/phone/build.sh first.
#
# Needs: apt-get install qemu-user curl python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

binary="${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-musl/phone/gridsync"
[ -x "$binary" ] || { echo "no phone binary at $binary: run deploy/phone/build.sh" >&2; exit 1; }
gs() { qemu-aarch64 "$binary" "$@"; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
office_port=$(free_port)
ui_port=$(free_port)
ui="http://127.0.0.1:$ui_port"

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then echo "timed out: $*" >&2; return 1; fi
    sleep 0.5
  done
}

echo "== $binary: $(stat -c %s "$binary") bytes"
gs --version

echo "== office: init, plan, enroll"
gs --data "$work/office" office init --street panhuo --advertise "127.0.0.1:$office_port"
printf '%s\n' 'household_id,community,grid,building,unit,door,residents,zone' \
  'h-1,c-1,grid-001,bldg-1,u-1,101,3,lockdown' 'h-2,c-1,grid-001,bldg-1,u-1,102,2,control' \
  > "$work/plan.csv"
gs --data "$work/office" plan import "$work/plan.csv"
gs --data "$work/office" enroll --name vol-1 --role volunteer --scope panhuo/grid-001 \
  --out "$work/vol-1.invite"
gs --data "$work/office" run --listen "127.0.0.1:$office_port" --no-mdns \
  > "$work/office.out" 2> "$work/office.log" &
pids+=($!)

echo "== volunteer: join with a PIN, run with the field app"
GRIDSYNC_PIN=2468 gs --data "$work/vol" join "$work/vol-1.invite"
gs --data "$work/vol" run --listen 127.0.0.1:0 --no-mdns --ui "127.0.0.1:$ui_port" \
  > "$work/vol.out" 2> "$work/vol.log" &
pids+=($!)
wait_for 60 curl -sf "$ui/"

echo "== the app: sign in, wait for the plan, record a visit"
jar="$work/cookies"
curl -sf -c "$jar" -H 'Content-Type: application/json' -d '{"pin":"2468"}' "$ui/api/v1/login"
has_plan() { curl -sf -b "$jar" "$ui/api/v1/assignments" | grep -q '"plan":true'; }
wait_for 90 has_plan
receipt=$(curl -sf -b "$jar" -H 'Content-Type: application/json' \
  -d '{"household":"h-1","outcome":"contacted","people":2,"flags":["elderly-living-alone"],"needs":[{"need":"medicine","detail":"insulin"}]}' \
  "$ui/api/v1/visits")
id=$(printf '%s' "$receipt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["record_id"])')
echo "saved visit $id"
curl -sf -b "$jar" "$ui/api/v1/records" | grep -q "$id"
listed() { gs --data "$work/office" --json visit list | grep -q "$id"; }
wait_for 90 listed
echo "the office holds visit $id"

echo "== status"
gs --data "$work/vol" status | head -5
echo "phone smoke test passed"
