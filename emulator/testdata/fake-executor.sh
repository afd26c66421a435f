#!/usr/bin/env bash
# A minimal custom executor for the emulator's tests. Behaviour is steered
# by variables of the runner's environment (FAKE_*), so each test can set it
# through Runner.Env.
set -u
stage="$1"
[ "$stage" = run ] && stage="run:$3"
printf '%s\n' "$stage" >> "$FAKE_DIR/calls"
env > "$FAKE_DIR/env.${stage//:/_}"

# FAKE_EXIT_<stage>=N makes that call exit with N without doing anything.
var="FAKE_EXIT_${stage//:/_}"
if [ -n "${!var:-}" ]; then
	echo "fake: $stage exits ${!var}" >&2
	exit "${!var}"
fi

case "$1" in
config)
	echo "fake: config on stderr" >&2
	default='{"builds_dir":"'"$FAKE_DIR"'/builds","cache_dir":"'"$FAKE_DIR"'/cache","driver":{"name":"fake","version":"0.1"},"job_env":{"FAKE_JOB_ENV":"from-config"}}'
	printf '%s\n' "${FAKE_CONFIG-$default}"
	;;
prepare)
	echo "fake: prepared"
	;;
run)
	cp "$2" "$FAKE_DIR/script.${3}"
	if [ "$3" = build_script ]; then
		case "${FAKE_RUN_MODE:-}" in
		ignore-term)
			# A badly behaved executor: ignores SIGTERM (and so does the
			# child it leaves running), so only SIGKILL to the group ends it.
			trap '' TERM
			sleep 30 &
			echo "$!" > "$FAKE_DIR/grandchild"
			echo READY
			wait
			exit 0
			;;
		suicide)
			kill -KILL $$
			;;
		esac
	fi
	if [ -n "${FAKE_TRAP:-}" ]; then
		# Behave like a well-mannered executor: stop the script on SIGTERM
		# and report a build failure.
		bash "$2" & child=$!
		trap 'echo "fake: got TERM" >&2; kill -TERM "$child"; wait "$child"; exit "$BUILD_FAILURE_EXIT_CODE"' TERM
		wait "$child"; code=$?
	else
		bash "$2"; code=$?
	fi
	if [ "$code" -ne 0 ]; then
		echo "$code" > "$BUILD_EXIT_CODE_FILE"
		exit "$BUILD_FAILURE_EXIT_CODE"
	fi
	;;
cleanup)
	echo "fake: cleaned up"
	;;
esac
