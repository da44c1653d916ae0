//! Raft for a broker group: the openraft type config and the network between replicas.

pub mod convert;
pub mod failover;
pub mod handback;
pub mod network;
pub mod rejoin;
pub mod service;
pub mod typ;
