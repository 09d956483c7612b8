# Sourced by the shell test scripts: one "ok   - ..." or "FAIL - ..." line per check, counted,
# and `finish` for the closing "N passed, M failed" line (exit status 0 only if nothing failed).
passed=0
failed=0
ok() { echo "ok   - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
check() { # DESCRIPTION COMMAND...
  local d=$1
  shift
  if "$@"; then ok "$d"; else fail "$d"; fi
}
finish() {
  echo "$passed passed, $failed failed"
  ((failed == 0))
  exit $?
}
