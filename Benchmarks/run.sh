#!/usr/bin/env bash
# Measures Outbox against Postfix's smtp-source (many messages over one connection) and msmtp
# (one message from a fresh process), all against one smtp-sink on 127.0.0.1. BENCHMARKS.md
# records the results and what they mean.
#
# Run by hand from any directory: Benchmarks/run.sh. The test suite does not run it.
#
# Needs the Swift toolchain (swift in PATH, or SWIFT=/path/to/swift), python3, and smtp-sink,
# smtp-source, msmtp and hyperfine. On Debian: apt-get install postfix msmtp hyperfine.
# The release build goes to OUTBOX_BENCH_BUILD (default: $TMPDIR/outbox-bench-build), not to
# .build, because --static-swift-stdlib would otherwise rebuild the normal build.
set -euo pipefail

readonly repository=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly scratch=${OUTBOX_BENCH_BUILD:-${TMPDIR:-/tmp}/outbox-bench-build}
readonly swift=${SWIFT:-swift}

# Throughput step: messages per run, message size in octets, and runs of each client.
readonly message_count=20000
readonly message_size=2048
readonly pair_count=3
# Fresh-process step: hyperfine's warmup runs and measured runs for each command.
readonly warmup_runs=10
readonly measured_runs=200
# A run that takes longer than this many seconds counts as hung and stops the script.
readonly run_timeout=600

readonly sender=bench@example.test
readonly recipient=sink@example.test

fail() {
    echo "run.sh: $*" >&2
    exit 1
}

# Prints the path of a command, looking in /usr/sbin too, because Postfix installs smtp-sink
# and smtp-source there and /usr/sbin is often missing from a non-root PATH.
find_tool() {
    if command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
    elif [[ -x /usr/sbin/$1 ]]; then
        echo "/usr/sbin/$1"
    else
        return 1
    fi
}

# Check every tool before building, so that a missing one fails in seconds, not after the build.
command -v "$swift" >/dev/null 2>&1 ||
    fail "swift not found; put the toolchain's bin directory in PATH or set SWIFT=/path/to/swift"
command -v python3 >/dev/null 2>&1 || fail "python3 not found; install it (apt-get install python3)"
smtp_sink=$(find_tool smtp-sink) || fail "smtp-sink not found; install it with: apt-get install postfix"
smtp_source=$(find_tool smtp-source) || fail "smtp-source not found; install it with: apt-get install postfix"
msmtp=$(find_tool msmtp) || fail "msmtp not found; install it with: apt-get install msmtp"
hyperfine=$(find_tool hyperfine) || fail "hyperfine not found; install it with: apt-get install hyperfine"
readonly smtp_sink smtp_source msmtp hyperfine

work_directory=$(mktemp -d "${TMPDIR:-/tmp}/outbox-bench.XXXXXX")
readonly work_directory
sink_pid=""

# Stops smtp-sink and deletes the work directory on every exit, failures included. It sends
# SIGKILL, because smtp-sink started from some parent processes ignores SIGTERM.
cleanup() {
    if [[ -n $sink_pid ]]; then
        kill -KILL "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
    fi
    rm -rf "$work_directory"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prints the result of an awk expression, for arithmetic on decimal numbers.
calculate() {
    awk "BEGIN { printf \"%s\", $1 }"
}

# Prints the median of the numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ value[NR] = $1 }
        END { if (NR % 2) print value[(NR + 1) / 2]; else print (value[NR / 2] + value[NR / 2 + 1]) / 2 }'
}

# The machine, tool versions and current load come first, because the figures mean little
# without them.
echo "== Machine"
echo "CPUs (nproc): $(nproc)"
echo "CPU model:    $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "Kernel:       $(uname -srm)"
echo "Swift:        $("$swift" --version 2>&1 | grep -m1 -i 'swift version')"
echo "Postfix:      $(postconf -d mail_version 2>/dev/null | sed 's/.*= //' || echo unknown)"
echo "msmtp:        $("$msmtp" --version | head -n1)"
echo "hyperfine:    $("$hyperfine" --version)"
echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5 and 15 minutes, before the build)"
echo

# A release build with the Swift standard library linked statically. Loading the Swift shared
# libraries added about 5 ms to each fresh `outbox send` in one measurement (see BENCHMARKS.md).
echo "== Building outbox and outbox-benchmark (release, --static-swift-stdlib) in $scratch"
for product in outbox outbox-benchmark; do
    "$swift" build --package-path "$repository" -c release --static-swift-stdlib \
        --scratch-path "$scratch" --product "$product"
done
binary_directory=$("$swift" build --package-path "$repository" -c release --static-swift-stdlib \
    --scratch-path "$scratch" --show-bin-path)
readonly outbox=$binary_directory/outbox
readonly outbox_benchmark=$binary_directory/outbox-benchmark
echo

# One fresh smtp-sink for the whole run, so that every client meets the same server in
# the same state. Port 0 lets the kernel pick a free port. Another process could take the port
# before smtp-sink binds it, so the script checks that smtp-sink is still running.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
readonly port
sink_options=()
if [[ $EUID -eq 0 ]]; then
    # smtp-sink(1) requires -u when it runs with super-user privileges.
    sink_options=(-u nobody)
fi
"$smtp_sink" "${sink_options[@]}" "127.0.0.1:$port" 256 >"$work_directory/smtp-sink.log" 2>&1 &
sink_pid=$!
for _ in $(seq 50); do
    kill -0 "$sink_pid" 2>/dev/null ||
        fail "smtp-sink exited at start: $(cat "$work_directory/smtp-sink.log")"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "smtp-sink is not listening on 127.0.0.1:$port after 5 s"
echo "== smtp-sink (pid $sink_pid) listening on 127.0.0.1:$port"
echo

# Runs smtp-source over one connection and prints its rate in messages per second.
# smtp-source does not pipeline, so it waits for a reply to each command.
run_smtp_source() {
    local start end
    start=$EPOCHREALTIME
    timeout "$run_timeout" "$smtp_source" -s 1 -d -m "$message_count" -l "$message_size" \
        -f "$sender" -t "$recipient" "127.0.0.1:$port" >&2 ||
        fail "smtp-source failed or timed out after $run_timeout s (status $?)"
    end=$EPOCHREALTIME
    calculate "$message_count / ($end - $start)"
}

# Runs outbox-benchmark over one connection and prints its rate in messages per second. The
# rate comes from the wall time of the whole process, as for smtp-source. outbox-benchmark's
# own line, which leaves out process start-up, goes to standard error.
run_outbox_benchmark() {
    local start end
    start=$EPOCHREALTIME
    timeout "$run_timeout" "$outbox_benchmark" 127.0.0.1 "$port" "$message_count" "$message_size" >&2 ||
        fail "outbox-benchmark failed or timed out after $run_timeout s (status $?)"
    end=$EPOCHREALTIME
    calculate "$message_count / ($end - $start)"
}

# Throughput: both clients send the same number of messages over one connection each. The
# messages are of similar size: about 2,185 octets from smtp-source and 1,995 from
# outbox-benchmark. The order alternates between pairs, so that neither client always meets a
# sink that has just handled the other's messages.
echo "== Throughput: $message_count messages of about $message_size octets over one connection, $pair_count pairs"
ratios=()
outbox_rates=()
source_rates=()
for pair in $(seq "$pair_count"); do
    if ((pair % 2 == 1)); then
        source_rate=$(run_smtp_source)
        outbox_rate=$(run_outbox_benchmark)
        order="smtp-source first"
    else
        outbox_rate=$(run_outbox_benchmark)
        source_rate=$(run_smtp_source)
        order="outbox first"
    fi
    ratio=$(calculate "$outbox_rate / $source_rate")
    ratios+=("$ratio")
    outbox_rates+=("$outbox_rate")
    source_rates+=("$source_rate")
    printf 'pair %d (%s): smtp-source %.0f messages/s, outbox %.0f messages/s, ratio outbox/smtp-source %.2f\n' \
        "$pair" "$order" "$source_rate" "$outbox_rate" "$ratio"
done
printf 'median: smtp-source %.0f messages/s, outbox %.0f messages/s, ratio %.2f (target: at least 1.5)\n' \
    "$(median "${source_rates[@]}")" "$(median "${outbox_rates[@]}")" "$(median "${ratios[@]}")"
echo

# Fresh process: one small message from a new process, which is how cron jobs and scripts send
# mail. msmtp reads the message only from standard input, and hyperfine 1.15 has no --input
# option, so both clients also run under the same `sh -c '... < file'`, and another command
# measures that shell alone. The target applies to `outbox send --file`, which needs no shell.
readonly message_file=$work_directory/message.eml
{
    printf 'From: Benchmark <%s>\n' "$sender"
    printf 'To: Sink <%s>\n' "$recipient"
    printf 'Subject: One small message from a fresh process\n'
    printf 'Date: Thu, 01 Jan 2026 00:00:00 +0000\n'
    printf 'Message-ID: <fresh-process@example.test>\n'
    printf '\n'
    printf 'This message is about 300 octets long. Each hyperfine run sends it once to measure\n'
    printf 'the start-up and one SMTP session of a fresh client process.\n'
} >"$message_file"
message_octets=$(wc -c <"$message_file")
readonly message_octets

outbox_direct="$(printf '%q' "$outbox") send --host 127.0.0.1 --port $port -i -f $sender --file $(printf '%q' "$message_file") $recipient"
outbox_shell="sh -c 'exec $(printf '%q' "$outbox") send --host 127.0.0.1 --port $port -i -f $sender $recipient < $(printf '%q' "$message_file")'"
msmtp_shell="sh -c 'exec $(printf '%q' "$msmtp") -C /dev/null --host=127.0.0.1 --port=$port --auth=off --tls=off --from=$sender $recipient < $(printf '%q' "$message_file")'"
shell_only="sh -c ': < $(printf '%q' "$message_file")'"
readonly outbox_direct outbox_shell msmtp_shell shell_only

echo "== Fresh process: one message of $message_octets octets, hyperfine -N, $warmup_runs warmup runs, $measured_runs runs"
timeout $((4 * run_timeout)) "$hyperfine" -N --warmup "$warmup_runs" --runs "$measured_runs" \
    --export-json "$work_directory/fresh-process.json" \
    --command-name "outbox send --file (no shell)" "$outbox_direct" \
    --command-name "sh -c 'outbox send < file'" "$outbox_shell" \
    --command-name "sh -c 'msmtp < file'" "$msmtp_shell" \
    --command-name "sh -c ': < file' (shell alone)" "$shell_only" ||
    fail "hyperfine failed or timed out after $((4 * run_timeout)) s (status $?)"
echo

# hyperfine prints the mean but not the median, so read both from its JSON export.
echo "== Fresh process summary (milliseconds; target: outbox send --file median at most 10 ms)"
python3 - "$work_directory/fresh-process.json" <<'PYTHON'
import json
import sys

with open(sys.argv[1]) as file:
    results = json.load(file)["results"]
print(f"{'command':<36} {'median':>8} {'mean':>8} {'min':>8} {'max':>8}")
for result in results:
    values = [result[key] * 1000 for key in ("median", "mean", "min", "max")]
    print(f"{result['command']:<36} " + " ".join(f"{value:8.2f}" for value in values))
PYTHON
