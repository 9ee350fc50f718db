#!/usr/bin/env bash
# Make the bundle seeds of fuzz/corpus/bundle_open/ anew (after a bundle format change):
#   fuzz/make-seed-bundle.sh path/to/darkport
# One tiny image (a gzip layer with a dpkg status and one file) and a playbook with a
# template, built signed and unsigned. Prints the new public key: put it in
# src/fuzzing.rs SEED_PUBKEY (the secret key is thrown away).
set -euo pipefail
bin=$(realpath "${1:?usage: $0 path/to/darkport}")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
python3 - <<'PY'
import gzip, hashlib, io, json, os, tarfile
def tarb(files):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            ti = tarfile.TarInfo(name); ti.mtime = 0; ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    v = b.getvalue()
    last = max(i + 512 for i in range(0, len(v), 512) if any(v[i:i + 512]))
    return v[:last] + b"\0" * 1024
def put(data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs("layout/blobs/sha256", exist_ok=True)
    open("layout/blobs/sha256/" + d, "wb").write(data)
    return "sha256:" + d
layer = tarb([("var/lib/dpkg/status", b"Package: tiny\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n"), ("app/hello", b"hello\n")])
gz = gzip.compress(layer, mtime=0)
ld = put(gz)
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/app/hello"]}, "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
cd = put(cfg)
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)}, "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(gz)}]}).encode()
md = put(m)
open("layout/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open("layout/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "tiny-v1"}}]}))
os.makedirs("playbooks/templates", exist_ok=True)
open("playbooks/install.yml", "w").write("- hosts: all\n  gather_facts: false\n  tasks:\n    - template: {src: templates/a.j2, dest: /tmp/a}\n")
open("playbooks/templates/a.j2", "w").write("{{ inventory_hostname }}\n")
open("spec.yml", "w").write("product: fuzzseed\nversion: 1.0.0\nplatforms: [linux/amd64]\nplaybooks: playbooks\nimages:\n  - name: fuzzseed/tiny:1\n    source: \"oci:layout:tiny-v1\"\n")
PY
"$bin" keygen --out seed --no-password >/dev/null
"$bin" build-bundle -f spec.yml -o signed.darkport --key seed.key --progress quiet >/dev/null
"$bin" build-bundle -f spec.yml -o unsigned.darkport --unsigned --progress quiet >/dev/null
# The first byte is the target's mode (src/fuzzing.rs bundle_open): 3 = fix checksums, seed
# key; 1 = fix checksums, unsigned allowed.
{ printf '\x03'; cat signed.darkport; } >"$here/corpus/bundle_open/signed-tiny"
{ printf '\x01'; cat unsigned.darkport; } >"$here/corpus/bundle_open/unsigned-tiny"
echo "SEED_PUBKEY: $(tail -n 1 seed.pub)"
