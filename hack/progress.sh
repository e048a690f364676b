# shellcheck shell=bash
# with_progress LABEL COMMAND...: runs COMMAND and, while it runs, prints to
# stderr a line with LABEL and the elapsed time every PROGRESS_INTERVAL
# seconds (10 by default), so that a build of minutes does not look hung.
# It returns COMMAND's status; Ctrl-C or a kill stops COMMAND too (a
# non-interactive shell's background job would otherwise ignore Ctrl-C).
with_progress() {
  local label="$1"
  shift
  local interval="${PROGRESS_INTERVAL:-10}" start=$SECONDS
  "$@" &
  local pid=$!
  # shellcheck disable=SC2064 # the pid is meant to be expanded now
  trap "kill $pid 2>/dev/null; exit 130" INT TERM
  local next=$((start + interval))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      local took=$((SECONDS - start))
      printf '  %s: %dm%02ds elapsed\n' "$label" $((took / 60)) $((took % 60)) >&2
      next=$((next + interval))
    fi
  done
  local status=0
  wait "$pid" || status=$?
  trap - INT TERM
  return "$status"
}
