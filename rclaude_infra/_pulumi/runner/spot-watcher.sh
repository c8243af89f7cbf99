#!/bin/sh
# rclaude spot watcher: runs on each container instance (systemd, from the user data).
#
# RunTask tasks are not drained on a spot interruption: they die with the host. The
# two-minute notice is readable only from the instance (IMDSv2, hop limit 1: containers
# cannot reach it), so this watches for it, leaves the notice where the runner container
# can read it (a read-only host volume), and sends the runner containers SIGTERM: each
# runner stops its command, uploads its transcript, diff and a result saying PREEMPTED,
# and exits before the host goes.
#
# Usage: spot-watcher.sh TASK_DEFINITION_FAMILY... (the runner's, and the interactive one's)
# Environment (for tests): IMDS (http://169.254.169.254), NOTICE_DIR (/var/run/rclaude),
# INTERVAL seconds between looks (5).
imds="${IMDS:-http://169.254.169.254}"
notice_dir="${NOTICE_DIR:-/var/run/rclaude}"
interval="${INTERVAL:-5}"
mkdir -p "$notice_dir"
while :; do
  token=$(curl -fsS --max-time 2 -X PUT "$imds/latest/api/token" \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300" 2>/dev/null) || { sleep "$interval"; continue; }
  if action=$(curl -fsS --max-time 2 -H "X-aws-ec2-metadata-token: $token" \
      "$imds/latest/meta-data/spot/instance-action" 2>/dev/null); then
    printf '%s\n' "$action" > "$notice_dir/spot-notice.tmp"
    mv "$notice_dir/spot-notice.tmp" "$notice_dir/spot-notice"
    for family in "$@"; do
      docker ps -q --filter "label=com.amazonaws.ecs.task-definition-family=$family" \
        --filter "label=com.amazonaws.ecs.container-name=runner"
    done | xargs -r docker kill --signal=SIGTERM
    exit 0
  fi
  sleep "$interval"
done
