"""An OCI image layout of generated images for the registry benchmarks: N images, each with
layers of the given sizes (MiB, random data, gzip -1), whose blobs/sha256 is also darkport's
CAS, plus registry/repositories.json (tags bench/imgI:1), so `darkport registry serve --root`
serves it as it is.

    python3 bench/lib/gen_layout.py ROOT N "64 32 16"
"""
import gzip, hashlib, io, json, os, sys, tarfile
root, n, sizes = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split()]
os.makedirs(f"{root}/blobs/sha256", exist_ok=True)
def put(b):
    d = hashlib.sha256(b).hexdigest()
    with open(f"{root}/blobs/sha256/{d}", "wb") as f: f.write(b)
    return "sha256:" + d
index, repos = [], {}
for i in range(n):
    layers, diffs = [], []
    for j, mb in enumerate(sizes):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as t:
            data = os.urandom(mb << 20)
            ti = tarfile.TarInfo(f"data/{i}-{j}.bin"); ti.size = len(data); ti.mtime = 0
            t.addfile(ti, io.BytesIO(data))
        raw = raw.getvalue()
        gz = gzip.compress(raw, compresslevel=1, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)})
        diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
        "layers": layers}).encode()
    md = put(m)
    index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(m),
                  "annotations": {"org.opencontainers.image.ref.name": f"img{i}"}})
    repos[f"bench/img{i}"] = {"tags": {"1": {"digest": md, "mediaType": "application/vnd.oci.image.manifest.v1+json"}}}
with open(f"{root}/index.json", "w") as f: json.dump({"schemaVersion": 2, "manifests": index}, f)
with open(f"{root}/oci-layout", "w") as f: json.dump({"imageLayoutVersion": "1.0.0"}, f)
os.makedirs(f"{root}/registry", exist_ok=True)
with open(f"{root}/registry/repositories.json", "w") as f: json.dump({"version": 1, "repositories": repos}, f)
