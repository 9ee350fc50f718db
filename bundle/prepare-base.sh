#!/bin/sh
# Builds the shared base layer of the example product: Debian's static busybox as the whole
# userland (/bin/busybox + applet links), plus minimal /etc files. Output: bundle/build/base/.
# Run before `darkport build-bundle -f bundle/darkport.yaml` (scripts/demo.sh does it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/build/base"
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "prepare-base: $bb missing (apt-get install busybox-static)" >&2; exit 1; }
file "$bb" 2>/dev/null | grep -q 'statically linked' || { echo "prepare-base: $bb is not static" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/bin" "$out/etc" "$out/tmp" "$out/data"
cp "$bb" "$out/bin/busybox"
chmod 0755 "$out/bin/busybox"
for a in sh ash cat echo env head httpd ls mkdir mv nc rm rmdir sed sha256sum sleep tr wget wc date cut expr printf grep test od; do
  ln -s busybox "$out/bin/$a"
done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$out/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$out/etc/group"
chmod 1777 "$out/tmp"
echo "prepare-base: $out ready ($(du -sh "$out" | cut -f1))"
