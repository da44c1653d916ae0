#!/usr/bin/env bash
# Starts a local raftmq cluster from conf/: a nameserver and a 3-node Raft broker group.
#
# The broker group (issue: "A 3-node Raft broker group") and `mqcluster` (issue: "Nameserver,
# client library, and the tools") have not landed yet. Until they do, this builds what
# exists and says what you can run.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --workspace
bin=target/release
if [[ -x "$bin/mqcluster" ]]; then
  exec "$bin/mqcluster" up --layout dledger "$@"
fi
cat <<MSG
raftmq: the cluster processes (mqnamesrv, mqbroker, mqcluster) are not built yet; this
checkout has the commitlog store and its tools:
  $bin/raft-log-bench            # store throughput vs plain file writes (RESULT lines)
  $bin/raft-log-dump DIR         # inspect a store; --verify checks every entry
MSG
