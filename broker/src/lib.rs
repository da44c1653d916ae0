//! The raftmq broker: one replica of one broker group (DESIGN §1, §4).
//!
//! A group is one openraft group whose log is the commitlog (`raft-log`):
//! - [`config`]: the broker's property file (RocketMQ keys and defaults);
//! - [`command`]: what the leader writes into the log (messages, topics, consumer offsets);
//! - [`limits`]: what a request may carry, checked where it enters the broker;
//! - [`raft`]: the openraft type config, the Raft network (gRPC on the replication port);
//! - [`state`]: the state machine every replica applies committed entries to: consume
//!   queues, topic configs, consumer offsets, metadata snapshots;
//! - [`service`]: the client-facing gRPC `BrokerService` (send, pull, offsets, admin);
//! - [`registration`]: registering with the nameservers (role, term, topics);
//! - [`node`]: one replica put together: store, Raft, servers, shutdown;
//! - [`Error`]: what the library's fallible functions return.

#![warn(clippy::unwrap_used)]
pub mod command;
pub mod config;
mod error;
pub mod layout;
pub mod limits;
pub mod namesrv;
pub mod node;
pub mod raft;
pub mod registration;
pub mod service;
pub mod state;

pub use config::{BrokerConfig, ConfigError};
pub use error::{Error, Result};
