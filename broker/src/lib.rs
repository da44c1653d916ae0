//! The raftmq broker: one replica of one broker group (DESIGN §1, §4).

pub mod config;

pub use config::{BrokerConfig, ConfigError};
