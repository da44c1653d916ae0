//! raftmq's Rust client: a [`Producer`], a [`PullConsumer`] (explicit queue and offset), a
//! [`GroupConsumer`] (clustering and broadcasting consumer groups) and an [`Admin`] API,
//! all on one [`Cluster`] connection that finds every broker group's leader through the
//! nameservers and follows leader changes as `WatchRoutes` reports them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::ClientError> {
//! use client::{Message, Producer, ProducerConfig};
//! let producer = Producer::start("127.0.0.1:9876", ProducerConfig::default()).await?;
//! let sent = producer.send(Message::new("TopicTest", "hello")).await?;
//! println!("{} stored in {} at offset {}", sent.msg_id, sent.queue, sent.queue_offset);
//! # Ok(()) }
//! ```
//!
//! Modules, by idea:
//! - [`namesrv_list`], [`nameserver`], [`route_table`], [`routes`]: finding groups and leaders;
//! - [`transport`], [`cluster`]: channels, deadlines, reaching a group's leader;
//! - [`message`], [`queue_selector`], [`retry`], [`producer`]: sending;
//! - [`pull_consumer`], [`allocate`], [`offset_store`], [`group_consumer`]: consuming;
//! - [`admin`]: what `mqadmin` shows and changes;
//! - [`bench`]: the message body and record file of `mqbench`, and its verification;
//! - [`cli`]: error reporting and flags shared by the tools.

#![warn(clippy::unwrap_used)]
#![warn(missing_docs)]

pub mod admin;
pub mod allocate;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod group_consumer;
pub mod message;
pub mod nameserver;
pub mod namesrv_list;
pub mod offset_store;
pub mod producer;
pub mod pull_consumer;
pub mod queue_selector;
pub mod retry;
pub mod route_table;
pub mod routes;
pub mod send_stream;
mod task;
pub mod transport;

pub use admin::Admin;
pub use cluster::{Cluster, ReadFrom};
pub use error::{ClientError, Result};
pub use group_consumer::{ConsumeFromWhere, GroupConsumer, GroupConsumerConfig, MessageModel};
pub use message::{Message, MessageQueue, SendResult, SendStatus};
pub use namesrv_list::NameServerList;
pub use producer::{PendingSend, Producer, ProducerConfig};
pub use pull_consumer::{PullConsumer, PullResult, PullStatus};
pub use retry::RetryPolicy;
pub use routes::Routes;
pub use transport::ClientOptions;
