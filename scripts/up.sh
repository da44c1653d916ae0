#!/usr/bin/env bash
# Starts a local raftmq cluster from conf/: a nameserver and a 3-node Raft broker group (the
# dledger layout), each a separate process on 127.0.0.1, and returns once the group's leader
# is registered at the nameserver. The processes keep running: `mqcluster status`,
# `mqcluster kill --leader RaftNode00`, `mqcluster restart NODE` and `mqcluster down` act on
# them; stores, logs and cluster.json are in data/dledger/.
#
# Builds the release binaries it needs first (needs only the Rust toolchain: protoc comes
# from crates.io). Arguments go to `mqcluster up`, e.g. --base-port 20000 --data-dir /tmp/c1,
# or --layout 2m-2s-sync for a classic layout (two groups of master + slave, the witness on the
# nameserver; see the README).
set -euo pipefail
cd "$(dirname "$0")/.."

# mqadmin and mqbench (client) are what the next steps mqcluster prints use.
packages=(-p broker -p nameserver -p mqcluster -p client)
cargo build --release --locked "${packages[@]}"
layout=(--layout dledger)
for arg in "$@"; do
    case "$arg" in
        --layout | --layout=*) layout=() ;;
    esac
done
exec "${CARGO_TARGET_DIR:-target}/release/mqcluster" up "${layout[@]}" "$@"
