#!/usr/bin/env bash
# Builds the Docker image for cluster test nodes OFFLINE (nothing is pulled from a registry):
# a Debian bookworm rootfs from the configured apt mirror (debootstrap --variant=minbase) with
# openssh-server, sudo, python3, skopeo, ca-certificates, iproute2, procps and podman (the
# product's container runtime on the node; it runs nested in the node container, see
# tests/support/nodes/cluster.rs for the flags it needs), imported with
# `docker import`. The tag is derived from a hash of this recipe, so the image is built once
# per machine and reused. Prints the tag on stdout (progress goes to stderr).
#
# Users inside the image: root (key auth), dpuser (key auth, passwordless sudo), dppass
# (password "dppass-pw", sudo requires that password). Host keys and authorized_keys are
# bind-mounted per container by the harness (tests/support/nodes), so every node has its own host key.
set -euo pipefail
cd "$(dirname "$0")/.."

RECIPE_VERSION=3
PKGS=openssh-server,sudo,python3,skopeo,ca-certificates,iproute2,procps,podman,crun
tag="darkport-node:$( { echo "$RECIPE_VERSION $PKGS"; cat "$0"; } | sha256sum | cut -c1-12)"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

lock=/var/tmp/darkport-node-image.lock
exec 9>"$lock"
flock 9
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/darkport-node-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "node-image: debootstrap bookworm from $mirror into $work (once per machine)" >&2
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
r="$work/rootfs"
# The packages are installed with apt inside the chroot (debootstrap --include configures them
# in a bad order); no service may start in the chroot.
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod +x "$r/usr/sbin/policy-rc.d"
mount -t proc proc "$r/proc"
trap 'umount "$r/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
echo "node-image: apt-get install ${PKGS//,/ }" >&2
chroot "$r" apt-get update -qq >>"$work/debootstrap.log" 2>&1
DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -qq --no-install-recommends ${PKGS//,/ } \
  >>"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
umount "$r/proc"
rm -f "$r/usr/sbin/policy-rc.d"
# sshd: own config, key-only for root, password allowed for the test users; no PAM.
mkdir -p "$r/run/sshd" "$r/etc/ssh/sshd_config.d"
rm -f "$r"/etc/ssh/ssh_host_*
cat >"$r/etc/ssh/sshd_config" <<'EOF'
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
UsePAM no
PermitRootLogin yes
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
AuthorizedKeysFile /etc/ssh/authorized_keys
MaxSessions 64
MaxStartups 200
UseDNS no
PrintMotd no
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
chroot "$r" useradd -m -s /bin/bash dpuser
chroot "$r" useradd -m -s /bin/bash dppass
echo 'dppass:dppass-pw' | chroot "$r" chpasswd
echo 'dpuser:*' | chroot "$r" chpasswd -e
# useradd leaves '!' (locked) for dpuser: sshd refuses key logins of locked accounts without PAM.
sed -i 's/^dpuser:!*:/dpuser:*:/' "$r/etc/shadow"
cat >"$r/etc/sudoers.d/darkport-test" <<'EOF'
dpuser ALL=(ALL) NOPASSWD: ALL
dppass ALL=(ALL) ALL
EOF
chmod 0440 "$r/etc/sudoers.d/darkport-test"
: >"$r/root/.bashrc"
# podman nested in a container: vfs storage (no overlay on overlay), no cgroups of its own
# (the node container's are read-only), events to a file (no journald), host networking.
cat >"$r/etc/containers/storage.conf" <<'EOF'
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
cat >"$r/etc/containers/containers.conf" <<'EOF'
[containers]
cgroups = "disabled"
netns = "host"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
tar -C "$r" -c . | docker import \
  --change 'CMD ["/usr/sbin/sshd", "-D", "-e"]' \
  --change 'LABEL darkport.node-image=1' - "$tag" >/dev/null
echo "node-image: built $tag in $(( $(date +%s) - start ))s" >&2
echo "$tag"
