#!/usr/bin/env bash
# Side-by-side throughput of raftmq's layouts, each started whole by mqcluster and loaded
# through the client library by mqbench. See --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: benches/layouts.sh [options]

Compares the layouts of conf/ under one producer load. For each round, each layout in turn:
  1. mqcluster up --layout L --base-port P --data-dir D   (D a fresh temp dir, P..P+49 free)
  2. waits until every group has its leader and, in classic layouts, every slave is in sync
     and the witness votes (mqadmin clusterList --json)
  3. mqadmin updateTopic on the layout's cluster (8 queues on every group)
  4. mqbench producer -s 1024 -w 64 for --warmup seconds (not counted), then for --seconds
  5. mqcluster down, and D is removed
Each measured run prints a progress line; at the end a table gives, per layout, the median
msgs/s and the median p99 over the rounds, and the ratio of its median msgs/s to dledger's.
Whatever the script started is stopped on exit (also on Ctrl-C or a failed run) through
mqcluster down.

Options:
  --rounds R          rounds (default 3)
  --seconds N         measured seconds of each run (default 10)
  --warmup N          warm-up seconds before each measured run (default 3)
  --layouts "L ..."   layouts, in run order (default "dledger 2m-2s-sync 2m-2s-async 2m-noslave")
  --bin-dir DIR       where mqcluster, mqadmin, mqbench, mqbroker, mqnamesrv are
                      (default: $CARGO_TARGET_DIR/release, else target/release of the checkout)
  --conf-dir DIR      the conf/ to copy the layouts from (default: conf/ of the checkout)
  --keep              keep the temp dir (data dirs of failed runs, mqbench output)
  -h, --help          this text

Build first:
  cargo build --release -p broker -p nameserver -p client -p mqcluster --bins

Output: a line per run on stderr, e.g.
  [round 1/3] 2m-2s-sync   41234 msgs/s  p99 4.120 ms  failed 0
and the final table on stdout:
  layout        runs  msgs/s(median)  p99_ms(median)  vs_dledger
The numbers of one run on a busy machine say little: compare within one invocation on a
quiet machine. Exit status 1 if any run failed (its row shows fewer runs).
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=3
SECONDS_MEASURED=10
WARMUP=3
LAYOUTS="dledger 2m-2s-sync 2m-2s-async 2m-noslave"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
CONF_SRC="$ROOT/conf"
KEEP=0
# How long a cluster may take to be ready, and the topic to show up in its routes.
READY_TIMEOUT=60

die() {
    echo "layouts.sh: $*" >&2
    exit 2
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
        --seconds) SECONDS_MEASURED=${2:?--seconds needs a value}; shift 2 ;;
        --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
        --layouts) LAYOUTS=${2:?--layouts needs a value}; shift 2 ;;
        --bin-dir) BIN_DIR=${2:?--bin-dir needs a value}; shift 2 ;;
        --conf-dir) CONF_SRC=${2:?--conf-dir needs a value}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
for n in "$ROUNDS" "$SECONDS_MEASURED" "$WARMUP"; do
    [[ "$n" =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
[[ "$ROUNDS" -ge 1 && "$SECONDS_MEASURED" -ge 1 ]] || die "--rounds and --seconds must be at least 1"
for layout in $LAYOUTS; do
    [[ -d "$CONF_SRC/$layout" ]] || die "no layout $layout in $CONF_SRC"
done
for prog in mqcluster mqadmin mqbench mqbroker mqnamesrv; do
    [[ -x "$BIN_DIR/$prog" ]] ||
        die "no $BIN_DIR/$prog: cargo build --release -p broker -p nameserver -p client -p mqcluster --bins, or --bin-dir DIR"
done
command -v python3 >/dev/null || die "python3 is needed to read mqadmin's JSON and compute medians"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftmq-layouts.XXXXXX")
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# The data dir of the cluster that is up now, and the pid of the mqbench that runs now.
CURRENT_DATA=""
BENCH_PID=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$BENCH_PID" ]]; then
        kill "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    if [[ -n "$CURRENT_DATA" ]]; then
        "$BIN_DIR/mqcluster" down --data-dir "$CURRENT_DATA" --grace 5s >/dev/null 2>&1 || true
    fi
    if [[ "$KEEP" == 1 ]]; then
        echo "layouts.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A base port P with P..P+49 free on 127.0.0.1 (mqcluster uses P..P+41 for four brokers),
# below the ephemeral port range.
free_base_port() {
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 31000, 50)
    held = []
    try:
        for p in range(base, base + 50):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            held.append(s)
    except OSError:
        continue
    finally:
        for s in held:
            s.close()
    print(base)
    break
else:
    raise SystemExit("no 50 free consecutive ports in 20000..31000")
EOF
}

# Shape of each layout: groups, brokers per group, classic (in-sync set and witness).
shape_of() {
    case "$1" in
        dledger) echo "1 3 0" ;;
        2m-noslave) echo "2 1 1" ;;
        2m-2s-*) echo "2 2 1" ;;
        *) echo "" ;;
    esac
}

# Reads `mqadmin clusterList --json` on stdin; prints the cluster's name once every group of
# the expected shape has a leader, all its brokers, and (classic) every slave in sync and a
# voting witness; prints nothing (exit 1) until then.
cluster_ready() {
    python3 -c '
import json, sys
groups, members, classic = (int(x) for x in sys.argv[1:4])
rows = json.load(sys.stdin)
by_group = {}
for r in rows:
    by_group.setdefault(r["broker_name"], []).append(r)
if len(by_group) != groups:
    sys.exit(1)
for name, rs in by_group.items():
    brokers = [r for r in rs if r["broker_id"] is not None and not str(r["role"]).startswith("WITNESS")]
    if len(brokers) != members or sum(1 for r in brokers if r["leader"]) != 1:
        sys.exit(1)
    if classic and members > 1:
        if any(r["in_sync"] is not True for r in brokers if not r["leader"]):
            sys.exit(1)
        if not any(r["role"] == "WITNESS" for r in rs):
            sys.exit(1)
print(rows[0]["cluster"])
' "$@"
}

# Reads `mqadmin topicRoute --json` on stdin: exit 0 once `$1` groups host the topic.
topic_routed() {
    python3 -c '
import json, sys
route = json.load(sys.stdin)
sys.exit(0 if len({q["broker_name"] for q in route["queue_datas"]}) >= int(sys.argv[1]) else 1)
' "$@"
}

# Runs `mqbench producer` for $2 seconds into file $3 (in the background, so a signal to the
# script stops it at once); returns its status.
run_producer() {
    local ns=$1 secs=$2 out=$3 topic=$4
    "$BIN_DIR/mqbench" producer -n "$ns" -t "$topic" -s 1024 -w 64 --duration "${secs}s" \
        >"$out" 2>&1 &
    BENCH_PID=$!
    local status=0
    wait "$BENCH_PID" || status=$?
    BENCH_PID=""
    return "$status"
}

# Prints the last lines of every log of the run in $1, for a failed run.
show_logs() {
    local log
    for log in "$1"/data/logs/*.log "$1"/*.out; do
        [[ -f "$log" ]] || continue
        echo "---- $log (last 15 lines) ----" >&2
        tail -n 15 "$log" >&2
    done
}

# One run of layout $1 in round $2; appends "layout round msgs_per_s p99_ms failed" to
# $RESULTS. Returns 1 (after printing why) if the run failed.
run_one() {
    local layout=$1 round=$2
    local run="$WORK/$layout-$round"
    local conf="$run/conf" data="$run/data"
    mkdir -p "$conf"
    # A private conf/: the nameserver's witness store goes to the run's dir, never to the
    # default under $HOME (an mqcluster that sets witnessStorePath itself overrides this).
    cp -r "$CONF_SRC/$layout" "$conf/"
    cp "$CONF_SRC/namesrv.properties" "$conf/"
    printf '\nwitnessStorePath=%s\n' "$run/witness" >>"$conf/namesrv.properties"

    local base
    base=$(free_base_port) || { echo "layouts.sh: $layout: no free ports" >&2; return 1; }
    local ns="127.0.0.1:$base"
    CURRENT_DATA="$data"
    if ! "$BIN_DIR/mqcluster" up --layout "$layout" --base-port "$base" --data-dir "$data" \
        --conf-dir "$conf" >"$run/up.out" 2>&1; then
        echo "layouts.sh: $layout: mqcluster up failed:" >&2
        tail -n 5 "$run/up.out" >&2
        return 1
    fi

    # mqcluster up may return before the slaves are in sync: wait for the routes to say so.
    local shape cluster="" deadline=$((SECONDS + READY_TIMEOUT))
    shape=$(shape_of "$layout")
    [[ -n "$shape" ]] || { echo "layouts.sh: unknown layout shape: $layout" >&2; return 1; }
    # shellcheck disable=SC2086 # three words: groups, brokers per group, classic
    until cluster=$("$BIN_DIR/mqadmin" -n "$ns" --json clusterList 2>/dev/null |
        cluster_ready $shape); do
        if ((SECONDS > deadline)); then
            echo "layouts.sh: $layout: not ready within ${READY_TIMEOUT}s; clusterList:" >&2
            "$BIN_DIR/mqadmin" -n "$ns" clusterList >&2 || true
            return 1
        fi
        sleep 0.2
    done

    local topic="LayoutBench"
    local groups=${shape%% *}
    if ! "$BIN_DIR/mqadmin" -n "$ns" updateTopic -t "$topic" -c "$cluster" >"$run/topic.out" 2>&1; then
        echo "layouts.sh: $layout: updateTopic failed: $(tail -n 1 "$run/topic.out")" >&2
        return 1
    fi
    deadline=$((SECONDS + READY_TIMEOUT))
    until "$BIN_DIR/mqadmin" -n "$ns" --json topicRoute -t "$topic" 2>/dev/null |
        topic_routed "$groups"; do
        if ((SECONDS > deadline)); then
            echo "layouts.sh: $layout: $topic not on $groups groups within ${READY_TIMEOUT}s" >&2
            return 1
        fi
        sleep 0.2
    done

    if [[ "$WARMUP" -gt 0 ]] && ! run_producer "$ns" "$WARMUP" "$run/warmup.out" "$topic"; then
        echo "layouts.sh: $layout: warm-up run failed:" >&2
        tail -n 5 "$run/warmup.out" >&2
        return 1
    fi
    if ! run_producer "$ns" "$SECONDS_MEASURED" "$run/bench.out" "$topic"; then
        echo "layouts.sh: $layout: mqbench failed:" >&2
        tail -n 5 "$run/bench.out" >&2
        return 1
    fi
    local result
    result=$(grep '^RESULT role=producer' "$run/bench.out" | tail -n 1)
    [[ -n "$result" ]] || { echo "layouts.sh: $layout: no RESULT line from mqbench" >&2; return 1; }
    local rate p99 failed
    rate=$(sed -n 's/.* msgs_per_s=\([^ ]*\).*/\1/p' <<<"$result")
    p99=$(sed -n 's/.* p99_ms=\([^ ]*\).*/\1/p' <<<"$result")
    failed=$(sed -n 's/.* failed=\([^ ]*\).*/\1/p' <<<"$result")
    printf '%s\t%s\t%s\t%s\t%s\n' "$layout" "$round" "$rate" "$p99" "$failed" >>"$RESULTS"
    printf '[round %d/%d] %-12s %9.0f msgs/s  p99 %7.3f ms  failed %s\n' \
        "$round" "$ROUNDS" "$layout" "$rate" "$p99" "$failed" >&2
}

# Stops the cluster of the current run and removes its dir (kept with --keep if it failed).
finish_run() {
    local run=$1 failed=$2
    if [[ -n "$CURRENT_DATA" ]]; then
        "$BIN_DIR/mqcluster" down --data-dir "$CURRENT_DATA" --grace 5s >/dev/null 2>&1 || {
            echo "layouts.sh: mqcluster down --data-dir $CURRENT_DATA failed" >&2
        }
        CURRENT_DATA=""
    fi
    if [[ "$failed" == 1 ]]; then
        show_logs "$run"
        [[ "$KEEP" == 1 ]] && return
    fi
    rm -rf "$run"
}

echo "layouts.sh: $ROUNDS round(s) of ${WARMUP}s warm-up + ${SECONDS_MEASURED}s, 1 KiB, 64 in flight;" \
    "layouts: $LAYOUTS; binaries: $BIN_DIR" >&2
FAILED_RUNS=0
for round in $(seq 1 "$ROUNDS"); do
    for layout in $LAYOUTS; do
        if run_one "$layout" "$round"; then
            finish_run "$WORK/$layout-$round" 0
        else
            FAILED_RUNS=$((FAILED_RUNS + 1))
            finish_run "$WORK/$layout-$round" 1
        fi
    done
done

# shellcheck disable=SC2086 # one argument per layout
python3 - "$RESULTS" $LAYOUTS <<'EOF'
import statistics, sys
path, layouts = sys.argv[1], sys.argv[2:]
runs = {l: [] for l in layouts}
for line in open(path):
    layout, _round, rate, p99, _failed = line.split("\t")
    runs[layout].append((float(rate), float(p99)))
med = {l: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
       for l, v in runs.items() if v}
base = med.get("dledger", (0, 0))[0]
print(f"{'layout':<13} {'runs':>4} {'msgs/s(median)':>15} {'p99_ms(median)':>15} {'vs_dledger':>10}")
for l in layouts:
    if l not in med:
        print(f"{l:<13} {0:>4} {'-':>15} {'-':>15} {'-':>10}")
        continue
    rate, p99 = med[l]
    ratio = f"{rate / base:.2f}" if base > 0 else "-"
    print(f"{l:<13} {len(runs[l]):>4} {rate:>15.0f} {p99:>15.3f} {ratio:>10}")
EOF

if [[ "$FAILED_RUNS" -gt 0 ]]; then
    echo "layouts.sh: $FAILED_RUNS run(s) failed" >&2
    exit 1
fi
