//! Raft for a broker group: the type config, and what a broker adds to the shared Raft glue
//! (`raftmq-raft`): noticing a dead leader and campaigning for its place, handing leadership
//! back to the preferred leader, and the replica's hooks on its replication port.

pub mod classic;
pub mod dropped;
pub mod failover;
pub mod handback;
pub mod hooks;
pub mod in_sync;
pub mod progress;
pub mod typ;
