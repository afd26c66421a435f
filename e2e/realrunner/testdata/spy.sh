#!/usr/bin/env bash
# spy.sh LOGDIR EXECUTABLE ARGS...: records what the runner gives one executor call — its
# arguments, its environment exactly as received (from /proc, before bash adds anything),
# the stage script and JOB_RESPONSE_FILE — then runs EXECUTABLE ARGS... and records its
# exit code. Calls are numbered in the order they start. Not for cancelled jobs: the
# runner's SIGTERM to the process group ends this shell before it can record anything.
set -u
log=$1; shift
n=$(ls "$log" | wc -l)
call=$(printf '%s/%03d' "$log" "$n")
mkdir "$call"
printf '%s\n' "$@" > "$call/args"
tr '\0' '\n' < /proc/$$/environ > "$call/env"
if [ -n "${JOB_RESPONSE_FILE:-}" ] && [ -f "$JOB_RESPONSE_FILE" ]; then
  cp "$JOB_RESPONSE_FILE" "$call/job-response.json"
fi
if [ "$#" -ge 3 ] && [ "${@: -3:1}" = run ]; then
  cp "${@: -2:1}" "$call/script"
fi
"$@"
code=$?
echo "$code" > "$call/exit"
exit "$code"
