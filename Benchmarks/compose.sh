#!/usr/bin/env bash
# Measures `outbox compose` with one large attachment: peak resident memory while the message is
# composed and base64-encoded to a file, and the encoding rate against coreutils' base64 on the
# same file in the same run. BENCHMARKS.md records the results.
#
# Run by hand from any directory: Benchmarks/compose.sh [SIZE_MIB]. The test suite does not run it.
# SIZE_MIB defaults to 200. Needs swift (in PATH, or SWIFT=/path/to/swift), python3, GNU time
# (/usr/bin/time) and coreutils. The release build goes to OUTBOX_BENCH_BUILD, as in run.sh.
set -euo pipefail

readonly repository=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly scratch=${OUTBOX_BENCH_BUILD:-${TMPDIR:-/tmp}/outbox-bench-build}
readonly swift=${SWIFT:-swift}
readonly size_mib=${1:-200}
readonly run_count=3
# Peak resident memory that the run must stay under, in KiB.
readonly memory_limit_kib=$((32 * 1024))

fail() {
    echo "compose.sh: $*" >&2
    exit 1
}

command -v "$swift" >/dev/null 2>&1 ||
    fail "swift not found; put the toolchain's bin directory in PATH or set SWIFT=/path/to/swift"
command -v python3 >/dev/null 2>&1 || fail "python3 not found; install it (apt-get install python3)"
[[ -x /usr/bin/time ]] || fail "/usr/bin/time not found; install it with: apt-get install time"

work_directory=$(mktemp -d "${TMPDIR:-/tmp}/outbox-compose-bench.XXXXXX")
readonly work_directory
trap 'rm -rf "$work_directory"' EXIT

echo "== machine"
echo "nproc: $(nproc)"
grep -m 1 'model name' /proc/cpuinfo || true
uname -sr
"$swift" --version 2>&1 | head -n 1
base64 --version | head -n 1
echo "load average: $(cut -d ' ' -f 1-3 /proc/loadavg)"

echo "== build"
"$swift" build --package-path "$repository" -c release --static-swift-stdlib \
    --scratch-path "$scratch" --product outbox
outbox="$("$swift" build --package-path "$repository" -c release --static-swift-stdlib \
    --scratch-path "$scratch" --show-bin-path)/outbox"
readonly outbox

readonly attachment="$work_directory/attachment.bin"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$attachment"
echo "== attachment: $size_mib MiB of random bytes"

# Prints "PEAK_KIB SECONDS" for a command, from GNU time.
measure() {
    local report="$work_directory/time.txt"
    /usr/bin/time -o "$report" -f '%M %e' "$@"
    cat "$report"
}

for run in $(seq 1 "$run_count"); do
    read -r outbox_kib outbox_seconds < <(measure "$outbox" compose --from bench@example.test \
        -s benchmark -a "$attachment" -o "$work_directory/message.eml" sink@example.test </dev/null)
    read -r coreutils_kib coreutils_seconds < <(measure sh -c \
        "base64 '$attachment' >'$work_directory/coreutils.b64'")
    outbox_rate=$(python3 -c "print(f'{$size_mib / max($outbox_seconds, 0.01):.0f}')")
    coreutils_rate=$(python3 -c "print(f'{$size_mib / max($coreutils_seconds, 0.01):.0f}')")
    echo "run $run: outbox compose ${outbox_seconds} s (${outbox_rate} MiB/s), peak RSS ${outbox_kib} KiB;" \
        "coreutils base64 ${coreutils_seconds} s (${coreutils_rate} MiB/s), peak RSS ${coreutils_kib} KiB"
    if ((outbox_kib > memory_limit_kib)); then
        fail "peak RSS ${outbox_kib} KiB is over the limit of ${memory_limit_kib} KiB"
    fi
done

# The attachment must decode back to the file: a fast encoder that writes garbage proves nothing.
python3 - "$work_directory/message.eml" "$attachment" <<'PYTHON'
import binascii, hashlib, sys
message_path, attachment_path = sys.argv[1], sys.argv[2]
digest = hashlib.sha256()
state = "header"
with open(message_path, "rb") as message:
    for line in message:
        if state == "header" and line.lower().startswith(b"content-disposition: attachment"):
            state = "fields"
        elif state == "fields" and line in (b"\r\n", b"\n"):
            state = "body"
        elif state == "body":
            if line.startswith(b"--"):
                break
            digest.update(binascii.a2b_base64(line))
expected = hashlib.sha256()
with open(attachment_path, "rb") as attachment:
    for chunk in iter(lambda: attachment.read(1 << 20), b""):
        expected.update(chunk)
if digest.hexdigest() != expected.hexdigest():
    sys.exit("compose.sh: the attachment in the composed message does not decode to the file")
print("check: the attachment decodes to the original file (SHA-256 matches)")
PYTHON
