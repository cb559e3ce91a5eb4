# CPU accounting shared by the benchmark scripts (sourced, not run).
#
#   cpu_seconds PID   user + system CPU seconds of a live process
#   machine_cpu       busy CPU seconds of the whole machine so far (every core)
#   $emulator         the local emulator's process (LocalStack, host mode), if running
#   $dynamodb         DynamoDB Local, its Java child, if running

cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"
}

machine_cpu() {
    awk -v hz="$(getconf CLK_TCK)" 'NR == 1 { printf "%.1f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat
}

emulator=$(cat .fanout/emulator.pid 2>/dev/null || true)
dynamodb=$([ -n "$emulator" ] && pgrep -P "$emulator" java || true)
