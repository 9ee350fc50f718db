#!/usr/bin/env bash
# The compose/Swarm part of `make demo`: DockerCoins as a compose file (bundle/stack-1.0.yaml),
# installed on a site of three local sshd nodes whose node1 is a Swarm manager (this machine's
# Docker engine as a one-node Swarm, made here and left at the end unless it was one already):
# every image pinned to the site registry by digest, `docker stack deploy`, the services
# followed until they run; then the worker scaled to 3 with Swarm's own `docker service scale`,
# the webui's counter growing, a rolling upgrade to 1.1.0, and `status` per service.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DARKPORT:-target/debug/darkport}
step() { printf '\n== %s\n' "$*"; }
STACK=dockercoins-stack

step "build-bundle -f bundle/stack-1.0.yaml (and 1.1): the images the compose file names"
"$BIN" build-bundle -f bundle/stack-1.0.yaml -o dist/ --key dist/darkport.key | tail -n 2
"$BIN" build-bundle -f bundle/stack-1.1.yaml -o dist/ --key dist/darkport.key | tail -n 2
S10=dist/dockercoins-stack-1.0.0.darkport
S11=dist/dockercoins-stack-1.1.0.darkport
"$BIN" inspect --pubkey dist/darkport.pub "$S10" | grep -iA3 compose || true

made_swarm=false
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  step "docker swarm init --advertise-addr 127.0.0.1 (this machine's engine as a one-node Swarm)"
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  made_swarm=true
fi
cleanup() {
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  if $made_swarm; then docker swarm leave --force >/dev/null 2>&1 || true; fi
  for _ in $(seq 30); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && break
    sleep 0.5
  done
  # The images the stack pulled from the demo site's registry (that registry is gone now).
  docker images --format '{{.Repository}} {{.ID}}' | awk '/\/dockercoins\//{print $2}' | sort -u |
    xargs -r docker rmi -f >/dev/null 2>&1 || true
  ./scripts/nodes.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "a new site: three local sshd nodes, node1 in group swarm_managers"
./scripts/nodes.sh down >/dev/null 2>&1 || true
inv=$(./scripts/nodes.sh up 3)
site=dist/demo-swarm-site
rm -rf "$site"; mkdir -p "$site"
{ cat "$inv"; printf '\n[swarm_managers]\nnode1\n\n[all:vars]\ndarkport_trust_root=/srv/trust\n'; } > "$site/inventory.ini"
cat "$site/inventory.ini" | sed 's/ansible_ssh_private_key_file=[^ ]*//'
KH=(--known-hosts .nodes/known_hosts)

step "install -i $site/inventory.ini $S10 (deploy: docker stack deploy on node1)"
"$BIN" install -i "$site/inventory.ini" "${KH[@]}" --pubkey dist/darkport.pub "$S10" 2>&1 | tail -n 12

stats() { curl -fsS -m 2 http://127.0.0.1:8000/cgi-bin/stats || echo '(no answer)'; }
step "scale the worker to 3 (Swarm's own command; darkport does not schedule)"
docker service scale "${STACK}_worker=3" 2>&1 | tail -n 1
docker service ls --format '{{.Name}} {{.Replicas}} {{.Image}}' | cut -c1-110
step "the webui's counter grows (GET :8000/cgi-bin/stats, 3 s apart)"
stats; sleep 3; stats

step "upgrade to 1.1.0: a rolling update (update_config in the compose file)"
"$BIN" upgrade -i "$site/inventory.ini" "${KH[@]}" --pubkey dist/darkport.pub "$S11" 2>&1 | tail -n 9
stats

step "status: per service, as Swarm reports it"
"$BIN" status -i "$site/inventory.ini" "${KH[@]}" | tail -n 8
