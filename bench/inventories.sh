# Sourced by the benchmarks that run a playbook with darkport, ansible-playbook and pyinfra:
# `mkinv N` writes $dir/invN.ini (INI for darkport and Ansible) and $dir/invN.py (pyinfra)
# with the first N nodes of the fast-node inventory $inv, host keys checked against $kh.
mkinv() {
  local n=$1
  { echo "[nodes]"; grep '^node' "$inv" | head -n "$n" | sed "s|\$| ansible_ssh_common_args='-o UserKnownHostsFile=$kh'|"; } > "$dir/inv$n.ini"
  {
    echo "hosts = ["
    grep '^node' "$inv" | head -n "$n" | while read -r _ h p _ k; do
      echo "  ('${h#ansible_host=}', {'ssh_port': ${p#ansible_port=}, 'ssh_user': 'root', 'ssh_key': '${k#ansible_ssh_private_key_file=}', 'ssh_known_hosts_file': '$kh', 'ssh_strict_host_key_checking': 'yes'}),"
    done
    echo "]"
  } > "$dir/inv$n.py"
}
