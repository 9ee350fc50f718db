#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need, from Debian's packages and PyPI.
# Idempotent and quick when everything is already there.
set -euo pipefail
PKGS=(skopeo docker-registry minisign openssh-server openssh-client busybox-static zstd curl
      python3-apt passwd
      pkg-config libssl-dev debootstrap iproute2 hyperfine rsync sudo openssl util-linux
      time bc file docker-compose)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# ansible-core (PyPI): the inventory compatibility test compares with `ansible-inventory`.
if ! python3 -c "import ansible.cli.inventory" >/dev/null 2>&1 || ! command -v ansible-inventory >/dev/null 2>&1; then
  echo "deps: installing ansible-core from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check ansible-core
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
# ansible.posix (its sysctl module, for tests/compat) and community.general's ini_file module
# alone: extracted from the wheel of PyPI's `ansible` package (the version line that goes with
# ansible-core 2.19); the rest of that package is not installed.
coll="$HOME/.ansible/collections/ansible_collections/ansible/posix"
cg="$HOME/.ansible/collections/ansible_collections/community/general"
if [ ! -f "$coll/plugins/modules/sysctl.py" ] || [ ! -f "$cg/plugins/modules/ini_file.py" ]; then
  echo "deps: extracting ansible.posix and community.general's ini_file from PyPI's ansible wheel"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps "ansible>=12,<13" -d "$tmp"
  mkdir -p "$HOME/.ansible/collections"
  python3 - "$tmp" "$HOME/.ansible/collections" <<'PY'
import glob, sys, zipfile
z = zipfile.ZipFile(glob.glob(sys.argv[1] + "/ansible-*.whl")[0])
for n in z.namelist():
    if n.startswith("ansible_collections/ansible/posix/") or n == "ansible_collections/community/general/plugins/modules/ini_file.py":
        z.extract(n, sys.argv[2])
PY
  rm -rf "$tmp"
fi
# SBOM validators (tests/sbom_images.rs): pyspdxtools (SPDX 2.3) and the CycloneDX 1.5 schema.
if ! python3 -c "import spdx_tools, cyclonedx.validation.json, jsonschema" 2>/dev/null \
   || ! command -v pyspdxtools >/dev/null; then
  echo "deps: pip installing spdx-tools cyclonedx-python-lib jsonschema"
  python3 -m pip install -q spdx-tools cyclonedx-python-lib jsonschema
  command -v pyenv >/dev/null && pyenv rehash || true
fi
# PyYAML: the playbook loader's golden test compares with PyYAML (what Ansible uses).
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  echo "deps: installing PyYAML from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check pyyaml
fi
