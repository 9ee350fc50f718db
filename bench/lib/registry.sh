# Sourced by the benchmarks that start registries (bench/registry.sh, bench/pull-load.sh,
# bench/install.sh).
#   free_port                 a free TCP port on 127.0.0.1
#   wait_v2 PORT              wait (up to 10 s) until http://127.0.0.1:PORT/v2/ answers
#   start_docker_registry DIR starts Debian's docker-registry (distribution, filesystem driver,
#                             plain HTTP, no access log) on a free port with its storage and
#                             config under DIR; sets DR_PORT and DR_PID
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_v2() {
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$1/v2/" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "bench: nothing answers on port $1" >&2; return 1
}
start_docker_registry() {
  local dir=$1
  DR_PORT=$(free_port)
  mkdir -p "$dir/dreg"
  cat >"$dir/dreg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/dreg}, delete: {enabled: false}}
http: {addr: 127.0.0.1:$DR_PORT}
YML
  docker-registry serve "$dir/dreg.yml" >"$dir/dreg.log" 2>&1 &
  DR_PID=$!
}
