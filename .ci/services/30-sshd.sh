#!/usr/bin/env bash
# Start an OpenSSH server on 127.0.0.1 (its own port, host keys and configuration) that
# accepts a key generated here for the current user, so the tests can start Dask workers
# over SSH. Safe to run twice: a running server with the same configuration is reused.
set -euo pipefail
env_file=${1:-/dev/null}

port=${SDPFLOW_TEST_SSH_PORT:-2222}
conf_dir=/etc/ssh/sdpflow-ci
ssh_dir=$HOME/.ssh
key=$ssh_dir/sdpflow_ci_ed25519
mkdir -p "$conf_dir" /run/sshd "$ssh_dir"
chmod 0700 "$ssh_dir"

[ -s "$conf_dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$conf_dir/host_ed25519"
[ -s "$key" ] || ssh-keygen -q -t ed25519 -N '' -C sdpflow-ci -f "$key"
touch "$ssh_dir/authorized_keys" "$ssh_dir/known_hosts"
chmod 0600 "$ssh_dir/authorized_keys" "$ssh_dir/known_hosts"
grep -qxF "$(cat "$key.pub")" "$ssh_dir/authorized_keys" || cat "$key.pub" >> "$ssh_dir/authorized_keys"
# Trust this server's host key for 127.0.0.1 and localhost on this port, and only that.
for host in "[127.0.0.1]:$port" "[localhost]:$port"; do
  ssh-keygen -q -R "$host" -f "$ssh_dir/known_hosts" >/dev/null 2>&1 || true
  echo "$host $(cut -d' ' -f1,2 "$conf_dir/host_ed25519.pub")" >> "$ssh_dir/known_hosts"
done
rm -f "$ssh_dir/known_hosts.old"

cat > "$conf_dir/sshd_config.new" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $conf_dir/host_ed25519
PidFile /run/sshd-sdpflow-ci.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
# Dask workers are started as many sessions at once.
MaxSessions 64
MaxStartups 64:30:128
CONF

pid_file=/run/sshd-sdpflow-ci.pid
if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null \
   && cmp -s "$conf_dir/sshd_config.new" "$conf_dir/sshd_config"; then
  rm "$conf_dir/sshd_config.new"
else
  if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    kill "$(cat "$pid_file")"
    sleep 1
  fi
  mv "$conf_dir/sshd_config.new" "$conf_dir/sshd_config"
  /usr/sbin/sshd -t -f "$conf_dir/sshd_config"
  /usr/sbin/sshd -f "$conf_dir/sshd_config"
fi

for _ in $(seq 1 20); do
  ssh -i "$key" -p "$port" -o BatchMode=yes -o ConnectTimeout=2 127.0.0.1 true 2>/dev/null && break
  sleep 0.5
done
if ! ssh -i "$key" -p "$port" -o BatchMode=yes -o ConnectTimeout=2 127.0.0.1 true; then
  echo "sshd: cannot log in to 127.0.0.1:$port with $key" >&2
  exit 1
fi
echo "sshd: listening on 127.0.0.1:$port, key $key"
{
  echo "SDPFLOW_TEST_SSH_HOST=127.0.0.1"
  echo "SDPFLOW_TEST_SSH_PORT=$port"
  echo "SDPFLOW_TEST_SSH_KEY=$key"
} >> "$env_file"
