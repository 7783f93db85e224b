#!/usr/bin/env bash
# Fails when a file tracked by Git is larger than 5 MB or is an executable binary (ELF, Mach-O,
# PE): build outputs belong in ./bin or ./dist, never in the repository (an 88 MB demo binary
# once was). Run by make verify.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((5 * 1024 * 1024))
status=0
while IFS= read -r -d '' f; do
  [[ -f "$f" ]] || continue
  size=$(stat -c %s "$f")
  if (( size > limit )); then
    echo "tracked file $f is $((size / 1024 / 1024)) MB (limit 5 MB)"
    status=1
  fi
  magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
  case "$magic" in
    7f454c46|cffaedfe|cefaedfe|feedface|feedfacf|cafebabe|4d5a*)
      echo "tracked file $f is an executable binary (magic $magic)"
      status=1 ;;
  esac
done < <(git ls-files -z)
exit $status
