#!/usr/bin/env bash
# A Docker daemon for `make image` and the image test, started only when none answers.
#   scripts/docker-daemon.sh start|stop
# start: when `docker info` fails and we are root, installs Debian's docker.io if dockerd is missing
# and starts `dockerd --iptables=false --ip6tables=false --bridge=none` (no bridge network:
# containers use --network host), with the overlay2 storage driver where the kernel has overlayfs
# and vfs otherwise (DOCKERD_STORAGE_DRIVER overrides). Each caller registers; stop unregisters it
# and stops the daemon once no caller of a daemon we started is left (several `make test` runs may
# share it). A daemon that was already running is never stopped. Images and layers stay in
# dockerd's data root (/var/lib/docker) between runs, so later builds on this machine reuse them.
set -euo pipefail

STATE="${SAAS_DOCKERD_DIR:-/tmp/saas-dockerd}"
# Who uses the daemon: the shell that called us (a make recipe calls start, then stop from its trap).
CALLER="${SAAS_DOCKERD_CALLER:-$PPID}"

die() { echo "docker-daemon: $*" >&2; exit 1; }
say() { echo "docker-daemon: $*" >&2; }
answers() { docker info >/dev/null 2>&1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
ours() { [ -f "$STATE/dockerd.pid" ] && alive "$(cat "$STATE/dockerd.pid")"; }

storage_driver() {
  if [ -n "${DOCKERD_STORAGE_DRIVER:-}" ]; then echo "$DOCKERD_STORAGE_DRIVER"
  elif grep -qw overlay /proc/filesystems 2>/dev/null || modprobe -q overlay 2>/dev/null; then echo overlay2
  else echo vfs
  fi
}

launch() {  # launch <storage driver>: start dockerd, wait up to 60 s for it to answer
  local driver="$1"
  # 9>&-: the daemon must not hold this script's lock open.
  nohup dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver="$driver" \
    >"$STATE/dockerd.log" 2>&1 9>&- &
  echo $! >"$STATE/dockerd.pid"
  for _ in $(seq 1 120); do
    answers && return 0
    alive "$!" || return 1
    sleep 0.5
  done
  return 1
}

cmd_start() {
  mkdir -p "$STATE/callers"
  exec 9>"$STATE/lock"
  flock 9
  if answers; then
    # A daemon of ours that another run started is shared: register, so it outlives this run's use.
    if ours; then touch "$STATE/callers/$CALLER"; fi
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "no Docker daemon answers (docker info); start one, or run as root so this script can"
  if ! command -v dockerd >/dev/null; then
    say "installing Debian's docker.io"
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    apt-get update -qq
    # The package would start its service with the default flags (a bridge network, iptables):
    # Debian's policy-rc.d convention tells it not to start anything; ours starts below.
    local policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    fi
    apt-get install -y -qq docker.io >/dev/null || { [ -z "$policy" ] || rm -f "$policy"; die "apt-get install docker.io failed"; }
    [ -z "$policy" ] || rm -f "$policy"
  fi
  command -v docker >/dev/null || die "dockerd is installed but the docker client is missing"
  local driver
  driver="$(storage_driver)"
  say "starting dockerd (storage driver $driver, no bridge network)"
  if ! launch "$driver"; then
    stop_ours
    [ "$driver" != vfs ] || { cat "$STATE/dockerd.log" >&2; die "dockerd did not start"; }
    say "dockerd did not start with $driver; trying vfs"
    launch vfs || { stop_ours; cat "$STATE/dockerd.log" >&2; die "dockerd did not start"; }
  fi
  touch "$STATE/callers/$CALLER"
}

stop_ours() {
  local pid
  [ -f "$STATE/dockerd.pid" ] || return 0
  pid="$(cat "$STATE/dockerd.pid")"
  if alive "$pid"; then
    kill "$pid"
    # dockerd stops its containers (10 s each at most) and its containerd before it exits.
    for _ in $(seq 1 120); do alive "$pid" || break; sleep 0.5; done
    alive "$pid" && kill -9 "$pid"
  fi
  rm -f "$STATE/dockerd.pid"
}

cmd_stop() {
  [ -d "$STATE/callers" ] || return 0
  exec 9>"$STATE/lock"
  flock 9
  rm -f "$STATE/callers/$CALLER"
  local caller
  for caller in "$STATE"/callers/*; do
    [ -e "$caller" ] || continue
    # A caller that died without stopping (killed) no longer counts.
    if alive "$(basename "$caller")"; then return 0; fi
    rm -f "$caller"
  done
  if ours; then say "stopping the dockerd it started"; stop_ours; fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
