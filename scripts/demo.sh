#!/usr/bin/env bash
# `make demo`: the main job end to end on this machine: make a signing key, build the example
# product's bundle (dockercoins 1.0.0, images built offline from bundle/images with a busybox
# base layer), verify and inspect it, start three local sshd nodes, install the bundle on them
# (site registry seeded on node1), show the site's status and pull from the site registry, then
# upgrade the site to 1.1.0 with a delta bundle and to 2.0.0 (its data migration included).
# Then (scripts/demo-swarm.sh, where a Docker engine runs) the same product as a compose file,
# deployed as a stack onto a Swarm, scaled, and upgraded by a rolling update.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DARKPORT:-target/debug/darkport}
[ -x "$BIN" ] || cargo build
mkdir -p dist
step() { printf '\n== %s\n' "$*"; }

step "signing key (dist/darkport.key, no password: demo only)"
if [ -f dist/darkport.key ]; then echo "reusing dist/darkport.key"; else "$BIN" keygen --out dist/darkport --no-password; fi

step "base layer: Debian's static busybox as the userland"
./bundle/prepare-base.sh

step "build-bundle -f bundle/darkport.yaml"
"$BIN" build-bundle -f bundle/darkport.yaml -o dist/ --key dist/darkport.key

B=dist/dockercoins-1.0.0.darkport
step "verify $B"
"$BIN" verify --pubkey dist/darkport.pub "$B"

step "inspect $B"
"$BIN" inspect --pubkey dist/darkport.pub "$B"

if command -v minisign >/dev/null; then
  step "the same signature, checked with the standard minisign tool"
  tmp=$(mktemp -d)
  tar -C "$tmp" -xf "$B" darkport.json darkport.json.minisig
  minisign -Vm "$tmp/darkport.json" -p dist/darkport.pub
  rm -rf "$tmp"
fi
if command -v skopeo >/dev/null; then
  step "skopeo reads the bundle as an OCI archive"
  skopeo inspect --raw "oci-archive:$B:dockercoins/rng:1.0.0" | head -c 300; echo
fi
step "three local sshd test nodes (scripts/nodes.sh)"
./scripts/nodes.sh down >/dev/null 2>&1 || true
inv=$(./scripts/nodes.sh up 3)
trap './scripts/nodes.sh down >/dev/null 2>&1 || true; rm -rf "${tmp:-}"' EXIT
site=dist/demo-site
mkdir -p "$site"
# Local nodes share this machine's /etc: their runtime trust files go below /srv/trust of each
# node, and the services are not started on the shared Docker engine (dockercoins_run=false).
{ cat "$inv"; printf '\n[all:vars]\ndarkport_trust_root=/srv/trust\ndockercoins_run=false\n'; } > "$site/inventory.ini"
KH=(--known-hosts .nodes/known_hosts)

step "preflight -i $site/inventory.ini $B"
"$BIN" preflight -i "$site/inventory.ini" "${KH[@]}" --pubkey dist/darkport.pub "$B"

step "install -i $site/inventory.ini $B"
"$BIN" install -i "$site/inventory.ini" "${KH[@]}" --pubkey dist/darkport.pub "$B"

step "install again: nothing to send, nothing changed"
"$BIN" install -i "$site/inventory.ini" "${KH[@]}" --pubkey dist/darkport.pub "$B" 2>&1 | tail -n 5

step "status"
"$BIN" status -i "$site/inventory.ini" "${KH[@]}"

reg="$(sed -n 's/^node1 .*ansible_host=\([^ ]*\).*/\1/p' "$inv"):5000"
certs=$(mktemp -d); cp "$site/darkport-ca/ca.crt" "$certs/"
step "skopeo reads the site registry at $reg (TLS, site CA)"
skopeo list-tags --cert-dir "$certs" "docker://$reg/dockercoins/rng"
if docker info >/dev/null 2>&1; then
  step "this machine's Docker engine pulls from the site registry and runs an image"
  mkdir -p "/etc/docker/certs.d/$reg" && cp "$certs/ca.crt" "/etc/docker/certs.d/$reg/ca.crt"
  docker pull -q "$reg/dockercoins/rng:1.0.0"
  docker run --rm --entrypoint /bin/sh "$reg/dockercoins/rng:1.0.0" -c 'echo "rng image runs: $(head -n 2 /app/rng.sh | tail -n 1)"'
  docker rmi -f "$reg/dockercoins/rng:1.0.0" >/dev/null
  rm -rf "/etc/docker/certs.d/$reg"
fi
rm -rf "$certs"

step "the product writes data (1.x store: a file per counter)"
"$BIN" run -i "$site/inventory.ini" "${KH[@]}" /dev/stdin >/dev/null <<'YML'
- hosts: all
  gather_facts: false
  tasks:
    - shell: |
        cd /srv/dockercoins/data
        echo {{ inventory_hostname[-1] | int * 7 }} > coins
        echo {{ inventory_hostname[-1] | int * 100 }} > hashes
YML
"$BIN" run -i "$site/inventory.ini" "${KH[@]}" /dev/stdin <<'YML' | grep -E '"msg"'
- hosts: all
  gather_facts: false
  tasks:
    - shell: cd /srv/dockercoins/data && grep -H . coins hashes
      register: d
    - debug: {msg: "{{ inventory_hostname }}: {{ d.stdout_lines | join('  ') }}"}
YML

step "1.1.0 as a delta on 1.0.0 (only what 1.0.0 lacks), then 2.0.0"
"$BIN" build-bundle -f bundle/darkport-1.1.yaml --since "$B" -o dist/ --key dist/darkport.key
"$BIN" build-bundle -f bundle/darkport-2.0.yaml -o dist/ --key dist/darkport.key
D11=dist/dockercoins-1.1.0-from-1.0.0.darkport
B20=dist/dockercoins-2.0.0.darkport
ls -l "$B" "$D11" "$B20"

step "upgrade --plan to 1.1.0, then the upgrade"
"$BIN" upgrade --plan -i "$site/inventory.ini" "${KH[@]}" --pubkey dist/darkport.pub "$D11"
"$BIN" upgrade -i "$site/inventory.ini" "${KH[@]}" --pubkey dist/darkport.pub "$D11" 2>&1 | tail -n 5

step "upgrade to 2.0.0: hasher removed, exporter added, the store's data converted by a migration"
"$BIN" upgrade --plan -i "$site/inventory.ini" "${KH[@]}" --pubkey dist/darkport.pub "$B20"
"$BIN" upgrade -i "$site/inventory.ini" "${KH[@]}" --pubkey dist/darkport.pub "$B20" 2>&1 | tail -n 5
"$BIN" run -i "$site/inventory.ini" "${KH[@]}" /dev/stdin <<'YML' | grep -E '"msg"'
- hosts: all
  gather_facts: false
  tasks:
    - shell: |
        echo "data/counters = $(tr '\n' ' ' < /srv/dockercoins/data/counters) (files: $(ls /srv/dockercoins/data))"
      register: d
    - debug: {msg: "{{ inventory_hostname }}: {{ d.stdout_lines | join('  ') }}"}
YML

step "status"
"$BIN" status -i "$site/inventory.ini" "${KH[@]}"

if docker info >/dev/null 2>&1; then
  ./scripts/demo-swarm.sh
else
  step "no Docker engine here: the compose/Swarm part of the demo (scripts/demo-swarm.sh) is left out"
fi

step "done: $B ($(du -h "$B" | cut -f1)), signed with dist/darkport.key, public key dist/darkport.pub"
