# pyinfra deploy doing the same work as site.yml (for bench/playbook.sh).
import io

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import files, server

SERVICES = ["api", "web", "worker", "cron", "mail", "queue", "cache", "search", "auth", "admin"]
for d in ["", "/conf", "/data", "/bin", "/log"]:
    files.directory(name=f"dir {d or '/'}", path=f"/srv/bench{d}", mode="755")
for i in range(1, 21):
    files.put(name=f"copy f{i:02d}", src=f"files/f{i:02d}.conf", dest=f"/srv/bench/data/f{i:02d}.conf", mode="644")
for idx, svc in enumerate(SERVICES):
    files.template(name=f"template {svc}", src="templates/svc.conf.j2", dest=f"/srv/bench/conf/{svc}.conf",
                   mode="640", item=svc, loop_index=idx, base_port=8000,
                   features=["metrics", "tracing", "auth"], inventory_hostname=host.name)
for i in range(1, 16):
    if i % 3 == 0:
        server.shell(name=f"command {i}", commands=[f"test -e /srv/bench/log/marker{i} || touch /srv/bench/log/marker{i}"])
    else:
        server.shell(name=f"command {i}", commands=[f"cat /srv/bench/data/f{i:02d}.conf"])
for i in range(1, 6):
    files.line(name=f"lineinfile {i}", path="/srv/bench/conf/api.conf", line=f"^extra{i} =", replace=f"extra{i} = {i}")
if host.get_fact(File, path="/srv/bench/log/marker3"):
    files.put(name="when the marker exists", src=io.StringIO("marker present\n"), dest="/srv/bench/log/present")
for i in range(1, 11):
    files.put(name=f"small file {i}", src=io.StringIO(f"small {i}\n"), dest=f"/srv/bench/bin/s{i}", mode="755")
main = files.put(name="main config", src=io.StringIO("version=1\n"), dest="/srv/bench/conf/main.conf")
server.shell(name="restart app", commands=["date +%s >> /srv/bench/log/restarts"], _if=main.did_change)
