#!/usr/bin/env bash
# Builds the libFuzzer targets in this folder and runs each for a given number of executions.
#
# Usage: Fuzz/run.sh TARGET|all EXECUTIONS
#   TARGET: reply-parser, capabilities, data-encoder, address, header-section, mime,
#   header-encoders or config-file.
# Environment: FUZZ_BUILD_DIR sets the build and working directory (default: $TMPDIR/outbox-fuzz),
# SWIFTC sets the compiler (default: swiftc from PATH, else /opt/swift/usr/bin/swiftc),
# FUZZ_SANITIZE sets the sanitizers (default: fuzzer,address; fuzzer alone runs about 7 times faster).
# Exits 1 when a target finds a failing input, and prints the path of that input.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
repo_dir="$(dirname "$fuzz_dir")"
build_dir="${FUZZ_BUILD_DIR:-${TMPDIR:-/tmp}/outbox-fuzz}"
swiftc="${SWIFTC:-$(command -v swiftc || echo /opt/swift/usr/bin/swiftc)}"
sanitize="${FUZZ_SANITIZE:-fuzzer,address}"
case "$sanitize" in
    fuzzer | fuzzer,address) ;;
    *) echo "FUZZ_SANITIZE must be fuzzer or fuzzer,address, not '$sanitize'" >&2; exit 2 ;;
esac
all_targets=(reply-parser capabilities data-encoder address header-section mime header-encoders config-file)

usage() {
    echo "usage: $0 TARGET|all EXECUTIONS" >&2
    echo "targets: ${all_targets[*]}" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
[[ "$2" =~ ^[0-9]+$ ]] || usage
executions="$2"
if [[ "$1" == all ]]; then
    targets=("${all_targets[@]}")
else
    targets=("$1")
fi

# Prints the source file, the module under test and the -max_len of a target. The lengths allow lines
# longer than the small limits each target checks: 40 octets for ReplyParser, 998 for DataEncoder,
# 256 bytes for the header section.
target_settings() {
    case "$1" in
        reply-parser) echo "ReplyParserFuzz.swift SMTPCore 2048" ;;
        capabilities) echo "CapabilitiesFuzz.swift SMTPCore 2048" ;;
        data-encoder) echo "DataEncoderFuzz.swift SMTPCore 4096" ;;
        address) echo "AddressFuzz.swift MailMessage 512" ;;
        header-section) echo "HeaderSectionFuzz.swift MailMessage 2048" ;;
        mime) echo "MIMEFuzz.swift MailMessage 4096" ;;
        header-encoders) echo "HeaderEncoderFuzz.swift MailMessage 1200" ;;
        config-file) echo "ConfigFileFuzz.swift ConfigFile 2048" ;;
        *) echo "unknown target: $1" >&2; usage ;;
    esac
}

build_target() {
    local target="$1" source="$2" module="$3"
    local binary="$build_dir/bin/$target"
    # The sanitizers used for the binary, so a change of FUZZ_SANITIZE rebuilds it.
    local stamp="$binary.sanitize"
    mkdir -p "$build_dir/bin"
    local -a module_sources
    local -a watched_sources
    if [[ "$module" == ConfigFile ]]; then
        # The configuration parser is three files of OutboxCLI, which as a whole needs every other
        # module. They are compiled with SMTPCore, whose types ConfigKeys uses, as one module, so their
        # `import SMTPCore` line is removed from copies of them.
        watched_sources=("$repo_dir/Sources/OutboxCLI/Configuration/ConfigFile.swift" "$repo_dir/Sources/OutboxCLI/Configuration/ConfigKeys.swift" "$repo_dir/Sources/OutboxCLI/DSNOptions.swift")
        mkdir -p "$build_dir/config-sources"
        for file in "${watched_sources[@]}"; do
            grep -v '^import SMTPCore$' "$file" >"$build_dir/config-sources/$(basename "$file")"
        done
        mapfile -t module_sources < <(find "$repo_dir/Sources/SMTPCore" "$build_dir/config-sources" -name '*.swift' | sort)
        # The copies are written on every run, so the originals decide whether to rebuild.
        mapfile -t -O "${#watched_sources[@]}" watched_sources < <(find "$repo_dir/Sources/SMTPCore" -name '*.swift' | sort)
    else
        mapfile -t module_sources < <(find "$repo_dir/Sources/$module" -name '*.swift' | sort)
        watched_sources=("${module_sources[@]}")
    fi
    local -a flags=("-sanitize=$sanitize" -parse-as-library -O -g -module-name "Fuzz${module}")
    if [[ "$module" == SMTPCore || "$module" == ConfigFile ]]; then
        # SMTPCore imports COpenSSL. The compiler finds its module.modulemap in the -I directory.
        flags+=(-I "$repo_dir/Sources/COpenSSL" -lssl -lcrypto)
    elif [[ "$module" == MailMessage ]]; then
        # MailMessage imports CIDN2 (libidn2) for internationalized domain names.
        flags+=(-I "$repo_dir/Sources/CIDN2" -lidn2)
    fi
    # Skip the build when the binary is newer than the target, the module sources and this script.
    if [[ -x "$binary" ]] && [[ "$(cat "$stamp" 2>/dev/null)" == "$sanitize" ]] && [[ -z "$(find "$fuzz_dir/$source" "$0" "${watched_sources[@]}" -newer "$binary" | head -n 1)" ]]; then
        return 0
    fi
    echo "== building $target" >&2
    local build_log="$build_dir/logs/$target.build.log"
    mkdir -p "$(dirname "$build_log")"
    local status=0
    "$swiftc" "${flags[@]}" "$fuzz_dir/$source" "${module_sources[@]}" -o "$binary" >"$build_log" 2>&1 || status=$?
    # ld.gold warns once for each ASan register helper ("Cannot export local symbol"). The link still
    # succeeds, so only the other lines are shown.
    grep -v "Cannot export local symbol" "$build_log" >&2 || true
    if [[ $status -ne 0 ]]; then
        echo "build of $target failed (log: $build_log)" >&2
        exit 2
    fi
    echo "$sanitize" >"$stamp"
}

run_target() {
    local target="$1" max_len="$2"
    local binary="$build_dir/bin/$target"
    local work_corpus="$build_dir/corpus/$target"
    local artifacts="$build_dir/artifacts/$target"
    local log="$build_dir/logs/$target.log"
    mkdir -p "$work_corpus" "$artifacts" "$(dirname "$log")"
    echo "== running $target for $executions executions (log: $log)" >&2
    local status=0
    local start end
    start=$(date +%s)
    # The Swift runtime's backtracer reads freed memory after a fatal error, which ASan then reports in
    # place of the error, so it is turned off.
    export SWIFT_BACKTRACE=enable=no
    # New inputs go to the working corpus, so the seed corpus in the repository stays unchanged.
    "$binary" "$work_corpus" "$fuzz_dir/corpus/$target" \
        -runs="$executions" -max_len="$max_len" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    end=$(date +%s)

    local last_status executions_done
    last_status=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    executions_done=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    local cov ft rate
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last_status")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last_status")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    echo "$target: sanitize=$sanitize executions=${executions_done:-?} seconds=$((end - start)) exec/s=${rate:-?} cov=${cov:-?} ft=${ft:-?}"

    # libFuzzer exits with 72 when interrupted (SIGINT), after printing its final statistics.
    if [[ $status -eq 72 ]]; then
        echo "$target: interrupted, nothing found"
        return 0
    fi
    if [[ $status -ne 0 ]]; then
        local crash
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        echo "$target: FOUND a failing input (exit status $status): ${crash:-see $log}"
        grep -E 'Fatal error|ERROR: (AddressSanitizer|libFuzzer)' "$log" | head -n 3 || true
        return 1
    fi
    echo "$target: nothing found"
}

found=0
for target in "${targets[@]}"; do
    read -r source module max_len <<<"$(target_settings "$target")"
    build_target "$target" "$source" "$module"
    run_target "$target" "$max_len" || found=1
done
exit "$found"
