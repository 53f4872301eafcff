#!/usr/bin/env bash
# Measures the durable queue. It flushes 20,000 stored messages and compares the rate with
# Postfix's smtp-source, and it measures the storing rate. It times the queueing of one message
# from a fresh process against dma and nullmailer, the delivery of deferred messages after an
# outage, and the opening of a store of 100,000 messages.
# BENCHMARKS.md records the results and what they mean.
#
# Run by hand as root from any directory: Benchmarks/queue.sh. The test suite does not run it.
#
# Needs the Swift toolchain (swift in PATH, or SWIFT=/path/to/swift), python3, hyperfine, unshare
# and ip (util-linux and iproute2), Postfix's smtp-sink and smtp-source, and apt-get to download
# the dma and nullmailer packages. The packages are only unpacked into the work directory, never
# installed: both conflict with Postfix, and installing them would remove it.
#
# After the build, the script runs the measurements again inside `unshare --mount --net`: a
# private network namespace whose only interface is loopback, so that no server or client
# started here can reach another host, and a private mount namespace in which overlays add the
# unpacked dma and nullmailer files and their configuration to /usr, /etc and /var/spool. The
# machine's own /etc, /usr and /var stay as they were.
set -euo pipefail

readonly repository=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly script=$repository/Benchmarks/queue.sh
readonly scratch=${OUTBOX_BENCH_BUILD:-${TMPDIR:-/tmp}/outbox-bench-build}
readonly swift=${SWIFT:-swift}

# Flush step: messages per flush (FLUSH_MESSAGES overrides it), message size in octets, connection counts and rounds.
readonly message_count=${FLUSH_MESSAGES:-20000}
readonly message_size=2048
readonly connection_counts=(1 8)
readonly round_count=3
# Storing rate: `outbox send --queue-only` processes per round.
readonly fresh_store_count=500
# Fresh-process step: hyperfine's warmup runs and measured runs for each command.
readonly warmup_runs=10
readonly measured_runs=200
# Outage step: messages queued while the server is down, and rounds.
readonly deferred_count=20
readonly outage_rounds=5
# Store-opening step: messages in the large store (OPEN_STORE_MESSAGES overrides it).
readonly large_store_count=${OPEN_STORE_MESSAGES:-100000}
# The steps to run, in order (QUEUE_BENCH_STEPS overrides it): flush, one, outage and open.
readonly steps=${QUEUE_BENCH_STEPS:-flush one outage open}
# A run that takes longer than this many seconds counts as hung and stops the script.
readonly run_timeout=600

readonly sender=bench@example.test
readonly recipient=sink@example.test

fail() {
    echo "queue.sh: $*" >&2
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

# Prints the result of an awk expression, for arithmetic on decimal numbers.
calculate() {
    awk "BEGIN { printf \"%s\", $1 }"
}

# Prints the median of the numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ value[NR] = $1 }
        END { if (NR % 2) print value[(NR + 1) / 2]; else print (value[NR / 2] + value[NR / 2 + 1]) / 2 }'
}

# Prints a free TCP port on 127.0.0.1. Another process could take it before it is used, so the
# callers check that their server is listening.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts connections on 127.0.0.1:$1, for at most 5 s.
wait_for_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Outside the namespaces: check the tools, build, download the packages, then start again inside.

if [[ ${1:-} != --inside ]]; then
    [[ $EUID -eq 0 ]] || fail "run it as root: the private network and mount namespaces need it"
    command -v "$swift" >/dev/null 2>&1 ||
        fail "swift not found; put the toolchain's bin directory in PATH or set SWIFT=/path/to/swift"
    for tool in python3 hyperfine unshare ip apt-get dpkg-deb; do
        find_tool "$tool" >/dev/null || fail "$tool not found; install it with apt-get"
    done
    find_tool smtp-sink >/dev/null || fail "smtp-sink not found; install it with: apt-get install postfix"
    find_tool smtp-source >/dev/null || fail "smtp-source not found; install it with: apt-get install postfix"

    echo "== Building outbox and outbox-benchmark (release, --static-swift-stdlib) in $scratch"
    for product in outbox outbox-benchmark; do
        "$swift" build --package-path "$repository" -c release --static-swift-stdlib \
            --scratch-path "$scratch" --product "$product"
    done
    binary_directory=$("$swift" build --package-path "$repository" -c release --static-swift-stdlib \
        --scratch-path "$scratch" --show-bin-path)
    swift_version=$("$swift" --version 2>&1 | grep -m1 -i 'swift version')

    work_directory=$(mktemp -d "${TMPDIR:-/tmp}/outbox-queue-bench.XXXXXX")
    trap 'rm -rf "$work_directory"' EXIT
    # smtp-sink runs as nobody and writes its dump files in a folder below this one.
    chmod 0711 "$work_directory"
    echo "== Downloading dma and nullmailer (unpacked into $work_directory, not installed)"
    (cd "$work_directory" && apt-get download dma nullmailer >/dev/null) ||
        fail "apt-get download dma nullmailer failed; run apt-get update first"
    mkdir "$work_directory/packages"
    for package in "$work_directory"/*.deb; do
        dpkg-deb -x "$package" "$work_directory/packages"
    done
    dma_version=$(dpkg-deb -f "$work_directory"/dma_*.deb Version)
    nullmailer_version=$(dpkg-deb -f "$work_directory"/nullmailer_*.deb Version)

    OUTBOX_BIN="$binary_directory" WORK="$work_directory" SWIFT_VERSION="$swift_version" \
        DMA_VERSION="$dma_version" NULLMAILER_VERSION="$nullmailer_version" \
        unshare --mount --net "$script" --inside
    exit
fi

# ---------------------------------------------------------------------------------------------
# Inside the namespaces.

readonly outbox=$OUTBOX_BIN/outbox
readonly outbox_benchmark=$OUTBOX_BIN/outbox-benchmark
readonly work=$WORK
smtp_sink=$(find_tool smtp-sink)
smtp_source=$(find_tool smtp-source)
hyperfine=$(find_tool hyperfine)
readonly smtp_sink smtp_source hyperfine

server_pids=()
# Stops every server this script started, on every exit, failures included. SIGKILL, because
# smtp-sink started from some parent processes ignores SIGTERM.
cleanup() {
    for pid in "${server_pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip link set lo up
if ip -o link show | grep -v ': lo:' | grep -q .; then
    fail "the network namespace has an interface other than loopback"
fi

# smtp-sink(1) requires -u when it runs with super-user privileges.
readonly sink_options=(-u nobody)

# Starts smtp-sink on 127.0.0.1:$1 with the other arguments as options, and waits until it listens.
start_sink() {
    local port=$1
    shift
    "$smtp_sink" "${sink_options[@]}" "$@" "127.0.0.1:$port" 256 >>"$work/smtp-sink.log" 2>&1 &
    server_pids+=($!)
    wait_for_port "$port" || fail "smtp-sink is not listening on 127.0.0.1:$port after 5 s"
}

# Prints its argument quoted for a shell command line.
q() {
    printf '%q' "$1"
}

# Mounts an overlay on $1 with the files of $2 on top, and a writable layer named $3 in the work
# directory. It exists only in this mount namespace.
overlay() {
    local target=$1 lower=$2 name=$3
    mkdir -p "$work/overlay/$name/upper" "$work/overlay/$name/work"
    mount -t overlay overlay \
        -o "lowerdir=$lower:$target,upperdir=$work/overlay/$name/upper,workdir=$work/overlay/$name/work" "$target"
}

# Prints median, mean, min and max in milliseconds from a hyperfine JSON export.
summarize() {
    python3 - "$1" <<'PYTHON'
import json
import sys

with open(sys.argv[1]) as file:
    results = json.load(file)["results"]
print(f"{'command':<44} {'median':>8} {'mean':>8} {'min':>8} {'max':>8}")
for result in results:
    values = [result[key] * 1000 for key in ("median", "mean", "min", "max")]
    print(f"{result['command']:<44} " + " ".join(f"{value:8.2f}" for value in values))
PYTHON
}

echo "== Machine"
echo "CPUs (nproc): $(nproc)"
echo "CPU model:    $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "Kernel:       $(uname -srm)"
echo "Swift:        $SWIFT_VERSION"
echo "Postfix:      $(postconf -d mail_version 2>/dev/null | sed 's/.*= //' || echo unknown)"
echo "dma:          $DMA_VERSION, nullmailer: $NULLMAILER_VERSION (Debian packages)"
echo "hyperfine:    $("$hyperfine" --version)"
echo "File system:  $(df -T "$work" | awk 'NR == 2 { print $2 }') under $work"
echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5 and 15 minutes)"
echo

# A message of about $message_size octets, built like outbox-benchmark's: three header fields
# and lines of 72 letters, with CRLF line ends.
readonly large_message=$work/message-2k.eml
python3 - "$large_message" "$message_size" <<'PYTHON'
import sys
path, size = sys.argv[1], int(sys.argv[2])
text = "From: bench@example.test\r\nTo: sink@example.test\r\nSubject: benchmark\r\n\r\n"
line = "abcdefghi" * 8 + "\r\n"
while len(text) + len(line) <= size:
    text += line
open(path, "w", newline="").write(text)
PYTHON

# A message of about 300 octets for the steps that queue one message at a time.
readonly small_message=$work/message-small.eml
{
    printf 'From: Benchmark <%s>\n' "$sender"
    printf 'To: Sink <%s>\n' "$recipient"
    printf 'Subject: One small message from a fresh process\n'
    printf 'Date: Thu, 01 Jan 2026 00:00:00 +0000\n'
    printf 'Message-ID: <fresh-process@example.test>\n'
    printf '\n'
    printf 'This message is about 300 octets long. Each hyperfine run queues it once to measure\n'
    printf 'the start-up and the storing of a fresh process.\n'
} >"$small_message"

# The port of the sink for the flush step, also the server of the stores that other steps fill.
flush_port=$(free_port)
start_sink "$flush_port"

# Prints the rate of one `outbox queue flush --parallel $1` of a fresh copy of the template
# store. The copy is written to disk before the clock starts, so that its writeback does not
# count.
run_flush() {
    local store=$work/flush-store start end
    rm -rf "$store"
    cp -a "$template_store" "$store"
    sync
    start=$EPOCHREALTIME
    timeout "$run_timeout" "$outbox" queue flush --store "$store" --parallel "$1" 2>"$work/flush.log" ||
        fail "outbox queue flush failed or timed out after $run_timeout s (status $?): $(cat "$work/flush.log")"
    end=$EPOCHREALTIME
    grep -q "sent $message_count, failed 0, deferred 0" "$work/flush.log" ||
        fail "outbox queue flush did not send all $message_count messages: $(cat "$work/flush.log")"
    rm -rf "$store"
    calculate "$message_count / ($end - $start)"
}

# Prints the rate of one smtp-source run with $1 sessions, all messages sent over kept
# connections (-d).
run_smtp_source() {
    local start end
    start=$EPOCHREALTIME
    timeout "$run_timeout" "$smtp_source" -s "$1" -d -m "$message_count" -l "$message_size" \
        -f "$sender" -t "$recipient" "127.0.0.1:$flush_port" >&2 ||
        fail "smtp-source failed or timed out after $run_timeout s (status $?)"
    end=$EPOCHREALTIME
    calculate "$message_count / ($end - $start)"
}

# ---------------------------------------------------------------------------------------------
# Step "flush": flushing the stored messages against smtp-source, and the storing rates.
measure_flush() {
    echo "== Flush: $message_count messages of $(wc -c <"$large_message") octets, $round_count rounds"

    # The template store: one message stored by `outbox send --queue-only`, so that its account and
    # route are those of the command line, then the rest through the MailStore API.
    readonly template_store=$work/template-store
    "$outbox" send --queue-only --store "$template_store" --host 127.0.0.1 --port "$flush_port" \
        -f "$sender" --file "$large_message" "$recipient" 2>/dev/null
    api_line=$("$outbox_benchmark" fill "$template_store" "$message_count" "$message_size")
    echo "$api_line"
    api_rate=$(awk '{ print $(NF - 1) }' <<<"$api_line")

    # Storing rate of fresh processes: $fresh_store_count `outbox send --queue-only` runs in a row,
    # into a store of their own.
    fresh_rates=()
    for round in $(seq "$round_count"); do
        store=$work/fresh-store-$round
        start=$EPOCHREALTIME
        for _ in $(seq "$fresh_store_count"); do
            "$outbox" send --queue-only --store "$store" --host 127.0.0.1 --port "$flush_port" \
                -f "$sender" --file "$large_message" "$recipient" 2>/dev/null
        done
        end=$EPOCHREALTIME
        fresh_rates+=("$(calculate "$fresh_store_count / ($end - $start)")")
        rm -rf "$store"
        printf 'storing round %d: %d outbox send --queue-only processes, %.0f messages/s\n' \
            "$round" "$fresh_store_count" "${fresh_rates[-1]}"
    done

    declare -A outbox_rates source_rates ratios
    for round in $(seq "$round_count"); do
        for connections in "${connection_counts[@]}"; do
            if ((round % 2 == 1)); then
                source_rate=$(run_smtp_source "$connections")
                outbox_rate=$(run_flush "$connections")
                order="smtp-source first"
            else
                outbox_rate=$(run_flush "$connections")
                source_rate=$(run_smtp_source "$connections")
                order="outbox first"
            fi
            ratio=$(calculate "$outbox_rate / $source_rate")
            outbox_rates[$connections]+="$outbox_rate "
            source_rates[$connections]+="$source_rate "
            ratios[$connections]+="$ratio "
            printf 'round %d, %d connection(s) (%s): smtp-source %.0f messages/s, outbox flush %.0f messages/s, ratio %.2f\n' \
                "$round" "$connections" "$order" "$source_rate" "$outbox_rate" "$ratio"
        done
    done
    for connections in "${connection_counts[@]}"; do
        # The word splitting of the lists is intended.
        # shellcheck disable=SC2086
        printf 'median, %d connection(s): smtp-source %.0f messages/s, outbox flush %.0f messages/s, ratio %.2f\n' \
            "$connections" "$(median ${source_rates[$connections]})" "$(median ${outbox_rates[$connections]})" \
            "$(median ${ratios[$connections]})"
    done
    printf 'storing rate: MailStore API %.0f messages/s (one run), outbox send --queue-only %.0f messages/s (median)\n' \
        "$api_rate" "$(median "${fresh_rates[@]}")"
    echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
}

# ---------------------------------------------------------------------------------------------
# Step "one": queueing one message from a fresh process, against dma and nullmailer.
measure_one() {
    # dma and nullmailer, configured to relay to one loopback smtp-sink only. The overlays exist only
    # in this mount namespace.
    mta_port=$(free_port)
    start_sink "$mta_port"

    overlay /usr "$work/packages/usr" usr
    mkdir -p "$work/etc-lower/dma" "$work/etc-lower/nullmailer"
    overlay /etc "$work/etc-lower" etc
    mkdir -p "$work/spool-lower"
    overlay /var/spool "$work/spool-lower" spool

    echo "bench.example.test" >/etc/mailname
    # NULLCLIENT sends every message to the smarthost, local recipients included, so dma never
    # looks up an MX record or delivers locally.
    cat >/etc/dma/dma.conf <<EOF
SMARTHOST 127.0.0.1
PORT $mta_port
NULLCLIENT
MAILNAME /etc/mailname
EOF
    mkdir -p /var/spool/dma
    chown root:mail /var/spool/dma
    chmod 0770 /var/spool/dma
    echo "bench.example.test" >/etc/nullmailer/me
    echo "example.test" >/etc/nullmailer/defaultdomain
    echo "127.0.0.1 smtp --port=$mta_port" >/etc/nullmailer/remotes
    chown mail:mail /etc/nullmailer/remotes
    chmod 0600 /etc/nullmailer/remotes
    mkdir -p /var/spool/nullmailer/queue /var/spool/nullmailer/tmp /var/spool/nullmailer/failed
    mkfifo /var/spool/nullmailer/trigger
    chown -R mail:root /var/spool/nullmailer
    chmod 0750 /var/spool/nullmailer/queue /var/spool/nullmailer/tmp /var/spool/nullmailer/failed
    chmod 0600 /var/spool/nullmailer/trigger
    # nullmailer-send is the daemon that empties nullmailer's queue; nullmailer-inject only queues.
    # It runs as user mail, as Debian's init script starts it.
    setpriv --reuid=mail --regid=mail --init-groups /usr/sbin/nullmailer-send >>"$work/nullmailer-send.log" 2>&1 &
    server_pids+=($!)

    # Checks that dma and nullmailer deliver to the sink before timing them.
    echo "== Checking that dma and nullmailer relay to smtp-sink on 127.0.0.1:$mta_port"
    /usr/sbin/dma -f "$sender" "$recipient" <"$small_message"
    /usr/sbin/sendmail -f "$sender" "$recipient" <"$small_message"
    for _ in $(seq 100); do
        dma_left=$(find /var/spool/dma -type f | wc -l)
        nullmailer_left=$(find /var/spool/nullmailer/queue -type f | wc -l)
        ((dma_left + nullmailer_left == 0)) && break
        sleep 0.1
    done
    ((dma_left + nullmailer_left == 0)) ||
        fail "dma or nullmailer did not deliver its test message in 10 s (queued: dma $dma_left, nullmailer $nullmailer_left)"
    echo "both delivered their test message"
    echo

    readonly queue_store=$work/queue-only-store
    outbox_direct="$(q "$outbox") send --queue-only --store $(q "$queue_store") --host 127.0.0.1 --port $mta_port -f $sender --file $(q "$small_message") $recipient"
    outbox_shell="sh -c 'exec $(q "$outbox") send --queue-only --store $(q "$queue_store") --host 127.0.0.1 --port $mta_port -f $sender $recipient < $(q "$small_message")'"
    dma_shell="sh -c 'exec /usr/sbin/dma -f $sender $recipient < $(q "$small_message")'"
    nullmailer_shell="sh -c 'exec /usr/sbin/sendmail -f $sender $recipient < $(q "$small_message")'"
    shell_only="sh -c ': < $(q "$small_message")'"


    echo "== Queueing one message of $(wc -c <"$small_message") octets from a fresh process, hyperfine -N, $warmup_runs warmup runs, $measured_runs runs"
    echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    timeout $((6 * run_timeout)) "$hyperfine" -N --warmup "$warmup_runs" --runs "$measured_runs" \
        --export-json "$work/queue-one.json" \
        --command-name "outbox send --queue-only --file" "$outbox_direct" \
        --command-name "sh -c 'outbox send --queue-only < file'" "$outbox_shell" \
        --command-name "sh -c 'dma < file' (delivers at once)" "$dma_shell" \
        --command-name "sh -c 'nullmailer sendmail < file'" "$nullmailer_shell" \
        --command-name "sh -c ': < file' (shell alone)" "$shell_only" >&2 ||
        fail "hyperfine failed or timed out (status $?)"
    # dma's DEFER setting queues without starting a delivery process, like --queue-only.
    echo "DEFER" >>/etc/dma/dma.conf
    timeout "$run_timeout" "$hyperfine" -N --warmup "$warmup_runs" --runs "$measured_runs" \
        --export-json "$work/queue-one-defer.json" \
        --command-name "sh -c 'dma < file' (DEFER)" "$dma_shell" >&2 ||
        fail "hyperfine failed or timed out (status $?)"
    sed -i '/^DEFER$/d' /etc/dma/dma.conf
    echo "Milliseconds:"
    summarize "$work/queue-one.json"
    summarize "$work/queue-one-defer.json" | tail -n +2
    echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
}

# ---------------------------------------------------------------------------------------------
# Step "outage": deferred messages delivered after the server comes back.
measure_outage() {
    echo "== Outage: $deferred_count messages deferred while the server is down, then one more with outbox send --queue, $outage_rounds rounds"
    outage_times=()
    for round in $(seq "$outage_rounds"); do
        port=$(free_port)
        store=$work/outage-store-$round
        dump=$work/outage-dump-$round
        for _ in $(seq "$deferred_count"); do
            "$outbox" send --queue --store "$store" --host 127.0.0.1 --port "$port" \
                -f "$sender" --file "$small_message" "$recipient" 2>/dev/null
        done
        queued=$("$outbox" queue list --store "$store" --folder outbox | grep -c "<$sender>" || true)
        ((queued == deferred_count)) || fail "expected $deferred_count deferred messages, found $queued"
        # The Python script starts smtp-sink, which dumps each message to a file of its own, polls
        # until it accepts connections (the moment the server is back), runs outbox send --queue and
        # polls the dump folder every millisecond until all messages are there.
        result=$(python3 - "$smtp_sink" "$port" "$dump" "$((deferred_count + 1))" "$outbox" "$store" "$sender" \
            "$recipient" "$small_message" <<'PYTHON'
import os, pwd, socket, subprocess, sys, time

sink, port, dump, expected, outbox, store, sender, recipient, message = sys.argv[1:]
port, expected = int(port), int(expected)
os.makedirs(dump)
# smtp-sink runs as nobody (-u nobody) and writes the dump files as that user.
nobody = pwd.getpwnam("nobody")
os.chown(dump, nobody.pw_uid, nobody.pw_gid)
server = subprocess.Popen([sink, "-u", "nobody", "-d", dump + "/", f"127.0.0.1:{port}", "256"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("smtp-sink did not start listening in 5 s")
            time.sleep(0.001)
    back = time.monotonic()
    client = subprocess.Popen([outbox, "send", "--queue", "--store", store, "--host", "127.0.0.1",
                               "--port", str(port), "-f", sender, "--file", message, recipient],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = back + 30
    exited = None
    while True:
        if exited is None and client.poll() is not None:
            exited = time.monotonic()
        # The connection made above to detect the listening sink leaves no dump file.
        if len(os.listdir(dump)) >= expected:
            break
        if time.monotonic() > deadline:
            sys.exit(f"only {len(os.listdir(dump))} of {expected} messages arrived in 30 s")
        time.sleep(0.001)
    done = time.monotonic()
    client.wait()
    exited = exited or time.monotonic()
    print(f"{(done - back) * 1000:.1f} {(exited - back) * 1000:.1f}")
finally:
    server.kill()
    server.wait()
PYTHON
        ) || fail "outage round $round failed: $result"
        read -r delivered exited <<<"$result"
        outage_times+=("$delivered")
        printf 'round %d: all %d messages at smtp-sink %.1f ms after it listened; outbox send exited after %.1f ms\n' \
            "$round" "$((deferred_count + 1))" "$delivered" "$exited"
        rm -rf "$store" "$dump"
    done
    printf 'median: %.1f ms (target: under 1000 ms)\n' "$(median "${outage_times[@]}")"
    echo
}

# ---------------------------------------------------------------------------------------------
# Step "open": opening and listing a large store.
measure_open() {
    echo "== Opening a store of $large_store_count messages"
    readonly large_store=$work/large-store
    "$outbox" send --queue-only --store "$large_store" --host 127.0.0.1 --port "$flush_port" \
        -f "$sender" --file "$large_message" "$recipient" 2>/dev/null
    "$outbox_benchmark" fill "$large_store" "$large_store_count" "$message_size"
    readonly empty_store=$work/empty-store
    "$outbox" queue list --store "$empty_store" >/dev/null
    echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    timeout $((4 * run_timeout)) "$hyperfine" -N --warmup 3 --runs 50 --export-json "$work/open.json" \
        --command-name "queue list --folder drafts, $large_store_count messages" \
        "$(q "$outbox") queue list --store $(q "$large_store") --folder drafts" \
        --command-name "queue list --folder drafts, empty store" \
        "$(q "$outbox") queue list --store $(q "$empty_store") --folder drafts" \
        --command-name "outbox-benchmark open, $large_store_count messages" \
        "$(q "$outbox_benchmark") open $(q "$large_store")" >&2 ||
        fail "hyperfine failed or timed out (status $?)"
    timeout $((4 * run_timeout)) "$hyperfine" -N --warmup 1 --runs 5 --export-json "$work/list.json" \
        --command-name "queue list, all $large_store_count messages" \
        "$(q "$outbox") queue list --store $(q "$large_store")" >&2 ||
        fail "hyperfine failed or timed out (status $?)"
    "$outbox_benchmark" open "$large_store"
    echo "Milliseconds:"
    summarize "$work/open.json"
    summarize "$work/list.json" | tail -n +2
    echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

for step in $steps; do
    case $step in
    flush) measure_flush ;;
    one) measure_one ;;
    outage) measure_outage ;;
    open) measure_open ;;
    *) fail "unknown step \"$step\" in QUEUE_BENCH_STEPS; use flush, one, outage or open" ;;
    esac
done
