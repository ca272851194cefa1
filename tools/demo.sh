#!/usr/bin/env bash
# The main job on the embedded default: simulated terminals, SQLite ledger in a scratch data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
naiad=.venv/bin/naiad
state=$(mktemp -d /tmp/naiad-demo.XXXXXX)
export NAIAD_SIM="$state/sim" NAIAD_DATA_DIR="$state/station" NAIAD_CONFIG_DIR="$state/config"
trap '$naiad sim stop >/dev/null 2>&1 || true' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Four virtual terminals on a simulated USB hub"
$naiad sim start --terminals 4 --model df2 --detach
$naiad devices

serials=$($naiad devices --json | .venv/bin/python -c 'import json,sys; print(" ".join(d["serial"] for d in json.load(sys.stdin)["devices"]))')
first=${serials%% *}

step "What each unit reports"
for serial in $serials; do $naiad info "$serial"; done

step "Reboot $first into the bootloader and back"
$naiad reboot "$first" --mode bootloader
$naiad devices
$naiad reboot "$first" --mode run

step "A noisy cable: 1e-4 bit errors and 1 % byte drops on $first"
$naiad sim faults --serial "$first" --ber 1e-4 --drop 0.01
$naiad info "$first" --json | .venv/bin/python -c 'import json,sys; i=json.load(sys.stdin); print("info over a noisy link:", i["serial"], i["slots"])'
$naiad sim faults --serial "$first" --ber 0 --drop 0

step "Flash signed firmware 2.0.0 onto every unit at once: inactive slot, verified, switched, confirmed"
.venv/bin/python tools/make_demo_bundle.py --out "$state/df2-2.0.0.zip" --version 2.0.0 --key-dir "$state/keys"
$naiad firmware inspect "$state/df2-2.0.0.zip"
$naiad flash "$state/df2-2.0.0.zip" --all
$naiad info "$first"

step "The ledger's audit trail"
$naiad ledger verify

step "Station self-check"
$naiad doctor || true
echo
echo "State, logs and ledger of this demo: $state"
