#!/usr/bin/env bash
# A compose product onto a Swarm, side by side in one run on the same node and engine:
#   (a) darkport install of bundle/stack-1.0.yaml (signed bundle, site registry, images pinned by
#       digest, docker stack deploy, followed until every service runs), per phase; then the
#       rolling upgrade to 1.1.0;
#   (b) what a team does by hand today: `docker save | gzip` of the five images, scp to the
#       node, `docker load` there, `docker stack deploy` with tags, wait until every service
#       shows its replicas; then the same for 1.1.0.
# The node is a local sshd node whose docker is this machine's engine, as a one-node Swarm made
# here (left at the end). Between the sides the stack, its images and its volume are removed,
# so each side pulls or loads the images itself. ROUNDS (default 3) rounds, medians compared.
#
#   bench/deploy.sh            (target/release/darkport if built, else target/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
BIN=${DARKPORT:-}
if [ -z "$BIN" ]; then
  if [ -x target/release/darkport ]; then BIN=target/release/darkport; else BIN=target/debug/darkport; fi
fi
for t in skopeo docker scp python3; do
  command -v "$t" >/dev/null || { echo "bench/deploy.sh: $t is required" >&2; exit 1; }
done
docker info >/dev/null || { echo "bench/deploy.sh: a Docker engine is required" >&2; exit 1; }
[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = inactive ] || {
  echo "bench/deploy.sh: this engine is already in a Swarm; run it on an engine that is not" >&2; exit 1; }
BIN=$(realpath "$BIN")
WORK=$(mktemp -d /var/tmp/darkport-bench-deploy.XXXXXX)
STACK=dockercoins-stack
IMAGES="rng hasher store worker webui"
cleanup() {
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  docker swarm leave --force >/dev/null 2>&1 || true
  cargo run -q --example nodes -- down "$WORK/nodes" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }

echo "== binary: $BIN"
./bundle/prepare-base.sh >/dev/null 2>&1
cp -a bundle "$WORK/"
"$BIN" keygen --no-password --out "$WORK/k" >/dev/null
for v in 1.0 1.1; do
  "$BIN" build-bundle -f "$WORK/bundle/stack-$v.yaml" -o "$WORK/dist/" --key "$WORK/k.key" >/dev/null 2>&1
done
B10=$WORK/dist/dockercoins-stack-1.0.0.darkport
B11=$WORK/dist/dockercoins-stack-1.1.0.darkport
docker swarm init --advertise-addr 127.0.0.1 >/dev/null

# The by-hand side's inputs, made at "release time" (not timed): the images in the local
# engine by tag, the plain compose file with the tag substituted.
for v in 1.0.0 1.1.0; do
  B=$WORK/dist/dockercoins-stack-$v.darkport
  for i in $IMAGES; do
    skopeo copy -q "oci-archive:$B:dockercoins/$i:$v" "docker-daemon:dockercoins/$i:$v" >/dev/null
  done
  refs=$(for i in $IMAGES; do printf 'dockercoins/%s:%s ' "$i" "$v"; done)
  t0=$(now); docker save $refs | gzip > "$WORK/dc-$v.tar.gz"; t1=$(now)
  printf 'by hand, release side: docker save | gzip of %s: %.2f s, %s\n' "$v" "$(echo "$t1 - $t0" | bc)" "$(du -h "$WORK/dc-$v.tar.gz" | cut -f1)"
  sed "s/\${TAG}/$v/" bundle/compose/docker-compose.yml > "$WORK/compose-$v.yml"
done

node_up() { # a fresh node (empty root); sets INV, SSH, SCP
  cargo run -q --example nodes -- down "$WORK/nodes" >/dev/null 2>&1 || true
  INV=$(cargo run -q --example nodes -- up 1 "$WORK/nodes")
  KH=$WORK/nodes/known_hosts
  HOST=$(sed -n 's/^node1 .*ansible_host=\([^ ]*\).*/\1/p' "$INV")
  PORT=$(sed -n 's/^node1 .*ansible_port=\([^ ]*\).*/\1/p' "$INV")
  local o=(-F /dev/null -o BatchMode=yes -o "UserKnownHostsFile=$KH" -i "$WORK/nodes/id_ed25519")
  SSH=(ssh "${o[@]}" -p "$PORT" "root@$HOST")
  SCP=(scp -q "${o[@]}" -P "$PORT")
}

reset_engine() {
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  for _ in $(seq 60); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] &&
      [ -z "$(docker network ls -q --filter "name=${STACK}_")" ] && break
    sleep 0.5
  done
  docker volume rm "${STACK}_store-data" >/dev/null 2>&1 || true
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '(^|/)dockercoins/' | xargs -r docker rmi -f >/dev/null 2>&1 || true
  docker images --format '{{.Repository}}@{{.Digest}}' | grep -E '/dockercoins/' | xargs -r docker rmi -f >/dev/null 2>&1 || true
}
wait_stack() { # every service of the stack at its replicas, running the tag given
  for _ in $(seq 600); do
    out=$(docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Replicas}} {{.Image}}')
    if [ "$(echo "$out" | grep -c .)" = 5 ] && ! echo "$out" | awk '{split($1,a,"/"); if (a[1]!=a[2]) bad=1} END {exit !bad}' &&
       [ "$(echo "$out" | grep -c ":$1")" = 5 ]; then
      # and no task of an older tag still running
      if ! docker ps --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Image}}' | grep -qv ":$1"; then return 0; fi
    fi
    sleep 0.2
  done
  echo "stack did not converge" >&2; return 1
}
wait_updated() { # every service's update completed (Swarm's monitor window over), as darkport waits
  for _ in $(seq 600); do
    states=$(docker service ls -q --filter "label=com.docker.stack.namespace=$STACK" |
      xargs docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{else}}none{{end}}')
    if ! echo "$states" | grep -qv -e completed -e none; then return 0; fi
    sleep 0.2
  done
  echo "update did not complete" >&2; return 1
}
by_hand() { # version
  "${SCP[@]}" "$WORK/dc-$1.tar.gz" "$WORK/compose-$1.yml" "root@$HOST:/var/tmp/"
  "${SSH[@]}" "gunzip -c /var/tmp/dc-$1.tar.gz | docker load -q >/dev/null && docker stack deploy -c /var/tmp/compose-$1.yml $STACK >/dev/null 2>&1"
  wait_stack "$1"
}
mkinv() { { cat "$INV"; printf '\n[swarm_managers]\nnode1\n\n[all:vars]\ndarkport_trust_root=/srv/trust\n'; } > "$WORK/inv.ini"; }
dp() { # install|upgrade BUNDLE
  "$BIN" "$1" --json --progress plain -i "$WORK/inv.ini" --known-hosts "$KH" --pubkey "$WORK/k.pub" \
    --ca-dir "$WORK/ca" "$2" 2>/dev/null > "$WORK/last.json"
}
median() { python3 -c 'import sys,statistics; print("%.2f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

D_I=(); D_U=(); H_I=(); H_U=(); H_UD=(); PH=(); PI=()
for r in $(seq "$ROUNDS"); do
  # darkport: a fresh node root each round (nothing on the node), the engine without images.
  reset_engine
  node_up; mkinv; rm -rf "$WORK/ca"
  t0=$(now); dp install "$B10"; t1=$(now)
  PI+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["phases"])' "$WORK/last.json")")
  dp upgrade "$B11"; t2=$(now)
  D_I+=("$(echo "$t1 - $t0" | bc)"); D_U+=("$(echo "$t2 - $t1" | bc)")
  PH+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["phases"])' "$WORK/last.json")")
  # by hand, same node, same engine, no images.
  reset_engine
  t0=$(now); by_hand 1.0.0; t1=$(now); by_hand 1.1.0; t2=$(now); wait_updated; t3=$(now)
  H_I+=("$(echo "$t1 - $t0" | bc)"); H_U+=("$(echo "$t2 - $t1" | bc)"); H_UD+=("$(echo "$t3 - $t1" | bc)")
  printf 'round %s: darkport install %.2f s, upgrade %.2f s | by hand install %.2f s, upgrade %.2f s (%.2f s to update completed)\n' \
    "$r" "${D_I[-1]}" "${D_U[-1]}" "${H_I[-1]}" "${H_U[-1]}" "${H_UD[-1]}"
done
echo "darkport install phases (last round): ${PI[-1]}"
echo "darkport upgrade phases (last round): ${PH[-1]}"
mdi=$(median "${D_I[@]}"); mdu=$(median "${D_U[@]}"); mhi=$(median "${H_I[@]}"); mhu=$(median "${H_U[@]}")
mhud=$(median "${H_UD[@]}")
printf '\nmedians of %s rounds (seconds)\n' "$ROUNDS"
printf '%-34s %8s %8s %8s\n' "" darkport "by hand" "hand/dp"
printf '%-34s %8s %8s %8.2f\n' "install: start -> all services up" "$mdi" "$mhi" "$(echo "$mhi / $mdi" | bc -l)"
printf '%-34s %8s %8s %8.2f\n' "rolling upgrade: tasks on 1.1.0" "$mdu" "$mhu" "$(echo "$mhu / $mdu" | bc -l)"
printf '%-34s %8s %8s %8.2f\n' "rolling upgrade: update completed" "$mdu" "$mhud" "$(echo "$mhud / $mdu" | bc -l)"
echo "(darkport's upgrade ends when Swarm reports every update completed, after the file's"
echo " update_config monitor window, so that a rollback in that window is reported; the"
echo " first by-hand row stops as soon as the tasks run the new tag)"
