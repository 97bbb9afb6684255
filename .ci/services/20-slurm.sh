#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (munged, slurmctld and slurmd, all on
# localhost) for the tests that submit real batch jobs. Safe to run twice: a running
# cluster with the same configuration is left alone.
set -euo pipefail
env_file=${1:-/dev/null}

node=$(hostname -s)
cpus=$(nproc)
# Declare a little less memory than the machine has, in MiB, so jobs asking for --mem fit.
mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
conf_dir=/etc/slurm
state_dir=/var/spool/slurmctld
spool_dir=/var/spool/slurmd
log_dir=/var/log/slurm
mkdir -p "$conf_dir" "$state_dir" "$spool_dir" "$log_dir" /run/munge

# munge: one key shared by the controller and the node daemon (same machine).
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
fi

# No cgroups (containers often lack them): track job processes through /proc.
cat > "$conf_dir/slurm.conf.new" <<CONF
ClusterName=sdpflow-ci
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$state_dir
SlurmdSpoolDir=$spool_dir
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
MinJobAge=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

running=false
if pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null \
   && cmp -s "$conf_dir/slurm.conf.new" "$conf_dir/slurm.conf"; then
  running=true
fi
mv "$conf_dir/slurm.conf.new" "$conf_dir/slurm.conf"
if ! $running; then
  # A stale pair (or an old configuration) is replaced by a fresh one.
  for daemon in slurmd slurmctld; do
    if [ -s "/run/$daemon.pid" ] && kill -0 "$(cat "/run/$daemon.pid")" 2>/dev/null; then
      kill "$(cat "/run/$daemon.pid")"
      for _ in $(seq 1 20); do kill -0 "$(cat "/run/$daemon.pid")" 2>/dev/null || break; sleep 0.5; done
    fi
  done
  /usr/sbin/slurmctld -c    # -c: start clean, forget jobs of an earlier run
  /usr/sbin/slurmd -N "$node"
fi

# Wait until the node takes jobs.
for _ in $(seq 1 60); do
  state=$(sinfo -h -n "$node" -o '%t' 2>/dev/null || true)
  case "$state" in idle|mix|alloc) break ;; esac
  if [ "$state" = "down" ] || [ "$state" = "drain" ]; then
    scontrol update nodename="$node" state=resume 2>/dev/null || true
  fi
  sleep 1
done
state=$(sinfo -h -n "$node" -o '%t' 2>/dev/null || true)
if [ "$state" != idle ] && [ "$state" != mix ] && [ "$state" != alloc ]; then
  echo "slurm: node $node is '$state', not idle; see $log_dir/slurmctld.log and $log_dir/slurmd.log" >&2
  exit 1
fi
echo "slurm: node $node idle with $cpus CPUs and $mem_mb MiB"
echo "SDPFLOW_TEST_SLURM=1" >> "$env_file"
echo "SDPFLOW_TEST_SLURM_MEMORY_MB=$mem_mb" >> "$env_file"
