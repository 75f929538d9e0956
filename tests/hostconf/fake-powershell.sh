#!/bin/sh
# fake-powershell.sh — stands in for powershell.exe (WSL) and pwsh in the
# hostconf tests; the tests link it into a PATH directory under either name.
#
#   -File PATH     records the arguments (one per line) in $GPUP_FAKE_PS_LOG.argv,
#                  copies the script to $GPUP_FAKE_PS_LOG.script, prints a line
#                  and exits with $GPUP_FAKE_PS_EXIT (default 0). A path from the
#                  fake wslpath ("W:\dir\file") is mapped back to /dir/file.
#   -Command CMD   records the arguments likewise and prints $GPUP_FAKE_PS_GPUS
#                  (a GPU list file) as the live query's answer.
log=${GPUP_FAKE_PS_LOG:?GPUP_FAKE_PS_LOG is not set}
: > "$log.argv"
for a in "$@"; do
	printf '%s\n' "$a" >> "$log.argv"
done
script= prev=
for a in "$@"; do
	[ "$prev" = "-File" ] && script=$a
	prev=$a
done
if [ -n "$script" ]; then
	case $script in
	W:*) path=$(printf '%s' "${script#W:}" | tr '\\' '/') ;;
	*) path=$script ;;
	esac
	cp "$path" "$log.script" || exit 99
	echo "fake $(basename "$0") ran the script"
	exit "${GPUP_FAKE_PS_EXIT:-0}"
fi
if [ -n "${GPUP_FAKE_PS_GPUS:-}" ]; then
	cat "$GPUP_FAKE_PS_GPUS"
fi
if [ -n "${GPUP_FAKE_PS_STDERR:-}" ]; then
	echo "$GPUP_FAKE_PS_STDERR" >&2
fi
exit "${GPUP_FAKE_PS_EXIT:-0}"
