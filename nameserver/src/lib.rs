#![warn(missing_docs)]
//! The raftmq nameserver (DESIGN §5): a route registry that tracks every broker group's
//! members and Raft leader, and the topics they host.
//!
//! - Brokers call `RegisterBroker` on start, on every Raft role or term change, and as their
//!   heartbeat; a member that stops heartbeating is dropped after its timeout
//!   (`brokerExpiryMs`, 5 s by default). A leadership claim with a lower term than the one
//!   recorded never replaces the leader.
//! - Clients ask `QueryRoute` for one topic, or `WatchRoutes` for a snapshot followed by
//!   every change as it happens.
//! - Nameservers share nothing; a restarted one starts empty and is rebuilt from heartbeats.
//!
//! The rules live in [`route_table`], a pure structure tested without sockets or clocks;
//! [`serve`] runs it behind the gRPC `NameService`; `mqnamesrv` is [`serve`] plus
//! configuration ([`NamesrvConfig`]) and signal handling.
//!
//! ```no_run
//! # async fn run() -> Result<(), nameserver::Error> {
//! let config = nameserver::NamesrvConfig { listen_port: 0, ..Default::default() };
//! let listener = nameserver::bind(&config).await?;
//! println!("listening on {:?}", listener.local_addr());
//! nameserver::serve(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod config;
mod convert;
mod error;
mod registry;
pub mod route_table;
mod server;
mod service;
pub mod witness;

pub use config::NamesrvConfig;
pub use error::Error;
pub use raftmq_properties::Warning;
pub use server::{bind, serve};

/// The line `mqnamesrv` prints on stdout once it listens, followed by the address
/// (RocketMQ prints the same words; scripts and tests wait for it).
pub const BOOT_SUCCESS: &str = "The Name Server boot success. listen=";
