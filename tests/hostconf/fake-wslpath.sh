#!/bin/sh
# fake-wslpath.sh — stands in for WSL's wslpath in the hostconf tests:
# `wslpath -w /a/b` prints "W:\a\b" (fake-powershell.sh maps it back).
[ "$1" = "-w" ] && [ $# -eq 2 ] || { echo "fake wslpath: usage: wslpath -w PATH" >&2; exit 1; }
printf 'W:%s\n' "$(printf '%s' "$2" | tr '/' '\\')"
