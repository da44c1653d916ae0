//! The broker's key table: RocketMQ names, aliases, defaults and parsers, plus the RocketMQ
//! keys that are accepted and ignored.
//!
//! Defaults are RocketMQ's (`BrokerConfig`, `MessageStoreConfig`, `BrokerStartup`) unless a
//! comment says why raftmq differs. Keys whose default is derived from other keys or from
//! the host (`brokerName`, `brokerRole`, `brokerIP2`, `storePathCommitLog`, `haListenPort`)
//! have no constant default here; `BrokerConfig` computes them.

use std::path::PathBuf;

use raftmq_properties::value::{boolean, integer_in, list, non_empty, optional};
use raftmq_properties::{IgnoredKeys, Key, Schema, NETTY_SERVER_KEYS};

use super::values::{self, BrokerRole, DLedgerPeer, FlushDiskType, HostPort};

/// Java `int` settings cannot exceed this; accepting more would let a file mean something
/// here that RocketMQ refuses.
const JAVA_INT_MAX: u64 = i32::MAX as u64;

pub(crate) const BROKER_CLUSTER_NAME: Key<String> = Key {
    name: "brokerClusterName",
    aliases: &[],
    default: Some("DefaultCluster"),
    parse: values::name,
};
/// Default: the host name, as in RocketMQ (see `BrokerConfig::broker_name`).
pub(crate) const BROKER_NAME: Key<String> = Key {
    name: "brokerName",
    aliases: &[],
    default: None,
    parse: values::name,
};
/// In a classic group the Raft node id; below the witness's reserved id
/// ([`raftmq_raft::WITNESS_NODE_ID`]).
pub(crate) const BROKER_ID: Key<u64> = Key {
    name: "brokerId",
    aliases: &[],
    default: Some("0"),
    parse: |raw| integer_in(raw, 0, raftmq_raft::WITNESS_NODE_ID - 1),
};
/// Default: ASYNC_MASTER, or SYNC_MASTER in DLedger mode (DESIGN §4).
pub(crate) const BROKER_ROLE: Key<BrokerRole> = Key {
    name: "brokerRole",
    aliases: &[],
    default: None,
    parse: BrokerRole::parse,
};
pub(crate) const FLUSH_DISK_TYPE: Key<FlushDiskType> = Key {
    name: "flushDiskType",
    aliases: &[],
    default: Some("ASYNC_FLUSH"),
    parse: FlushDiskType::parse,
};
/// RocketMQ falls back to the `NAMESRV_ADDR` environment variable; that belongs to the
/// binary's command line handling (`-n`), not to the file.
pub(crate) const NAMESRV_ADDR: Key<Vec<HostPort>> = Key {
    name: "namesrvAddr",
    aliases: &[],
    default: Some(""),
    parse: |raw| list(raw, ';', HostPort::parse),
};
/// RocketMQ's `BrokerStartup` sets 10911 (the Java field's own 6888 is never used).
pub(crate) const LISTEN_PORT: Key<u16> = Key {
    name: "listenPort",
    aliases: &[],
    default: Some("10911"),
    parse: |raw| integer_in(raw, 0, u16::MAX),
};
/// 0 (the default) means `listenPort + 1`, as in RocketMQ's `BrokerStartup`.
pub(crate) const HA_LISTEN_PORT: Key<u16> = Key {
    name: "haListenPort",
    aliases: &[],
    default: Some("0"),
    parse: |raw| integer_in(raw, 0, u16::MAX),
};
/// RocketMQ defaults to the first non-loopback address; raftmq runs loopback-first (a whole
/// layout on one machine, `mqcluster`), and a broker that registers a LAN address by
/// surprise is harder to debug than one that must be told its address.
pub(crate) const BROKER_IP1: Key<String> = Key {
    name: "brokerIP1",
    aliases: &[],
    default: Some("127.0.0.1"),
    parse: |raw| values::host_name(raw).map(str::to_owned),
};
/// Default: brokerIP1 (RocketMQ uses it for the HA address).
pub(crate) const BROKER_IP2: Key<String> = Key {
    name: "brokerIP2",
    aliases: &[],
    default: None,
    parse: |raw| values::host_name(raw).map(str::to_owned),
};
/// `~` is expanded (RocketMQ's default is `$HOME/store`; its files cannot say `~`).
pub(crate) const STORE_PATH_ROOT_DIR: Key<PathBuf> = Key {
    name: "storePathRootDir",
    aliases: &[],
    default: Some("~/store"),
    parse: |raw| non_empty(raw).map(PathBuf::from),
};
/// Default: `<storePathRootDir>/commitlog`.
pub(crate) const STORE_PATH_COMMIT_LOG: Key<Option<PathBuf>> = Key {
    name: "storePathCommitLog",
    aliases: &[],
    default: Some(""),
    parse: |raw| optional(raw, |raw| Ok(PathBuf::from(raw))),
};
/// At least one 4 KiB page so tests can use tiny segments.
pub(crate) const MAPPED_FILE_SIZE_COMMIT_LOG: Key<u64> = Key {
    name: "mappedFileSizeCommitLog",
    aliases: &["mapedFileSizeCommitLog"],
    default: Some("1073741824"),
    parse: |raw| integer_in(raw, 4096, JAVA_INT_MAX),
};
/// 300 000 units of 20 bytes.
pub(crate) const MAPPED_FILE_SIZE_CONSUME_QUEUE: Key<u64> = Key {
    name: "mappedFileSizeConsumeQueue",
    aliases: &["mapedFileSizeConsumeQueue"],
    default: Some("6000000"),
    parse: values::consume_queue_file_size,
};
pub(crate) const MAX_MESSAGE_SIZE: Key<u32> = Key {
    name: "maxMessageSize",
    aliases: &[],
    default: Some("4194304"),
    parse: |raw| integer_in(raw, 1, i32::MAX as u32),
};
/// Milliseconds.
pub(crate) const FLUSH_INTERVAL_COMMIT_LOG: Key<u64> = Key {
    name: "flushIntervalCommitLog",
    aliases: &[],
    default: Some("500"),
    parse: |raw| integer_in(raw, 1, JAVA_INT_MAX),
};
/// Bytes at the end of the commitlog kept in the page cache; data further behind is written
/// out and dropped from it, so new writes reuse just-freed pages instead of pulling in memory
/// the machine has not touched (slow on VMs that hand free memory back to the host). A
/// consumer reading further back faults its pages in from disk. 0 leaves caching to the
/// kernel. raftmq's own key: RocketMQ keeps everything mapped.
pub(crate) const PAGE_CACHE_WINDOW_COMMIT_LOG: Key<u64> = Key {
    name: "pageCacheWindowCommitLog",
    aliases: &[],
    default: Some("1073741824"),
    parse: |raw| integer_in(raw, 0, u64::MAX / 2),
};
/// Milliseconds a SYNC_FLUSH send waits for its fsync before FLUSH_DISK_TIMEOUT.
pub(crate) const SYNC_FLUSH_TIMEOUT: Key<u64> = Key {
    name: "syncFlushTimeout",
    aliases: &[],
    default: Some("5000"),
    parse: |raw| integer_in(raw, 1, JAVA_INT_MAX),
};
/// Milliseconds a SYNC_MASTER send waits for its replicas before FLUSH_SLAVE_TIMEOUT.
pub(crate) const SLAVE_TIMEOUT: Key<u64> = Key {
    name: "slaveTimeout",
    aliases: &[],
    default: Some("3000"),
    parse: |raw| integer_in(raw, 1, JAVA_INT_MAX),
};
/// Milliseconds of the log's clock a stored message's `UNIQ_KEY` is remembered, so that a
/// producer's retry within it is stored once (raftmq's own key; NATS JetStream's duplicate
/// window is 2 minutes too). The leader writes its value into the log, so every replica
/// remembers alike (a replica's own file does not decide).
pub(crate) const DUPLICATE_WINDOW_MS: Key<u64> = Key {
    name: "duplicateWindowMs",
    aliases: &[],
    default: Some("120000"),
    parse: |raw| integer_in(raw, 1_000, 24 * 3_600_000),
};
/// Most `UNIQ_KEY`s remembered (about 64 bytes of memory each); past it the oldest are
/// forgotten early, shortening the window at very high rates. raftmq's own key, written into
/// the log by the leader like `duplicateWindowMs`.
pub(crate) const DUPLICATE_MAX_KEYS: Key<u64> = Key {
    name: "duplicateMaxKeys",
    aliases: &[],
    default: Some("2000000"),
    parse: |raw| integer_in(raw, 1_000, 1_000_000_000),
};
/// Milliseconds a consumer group member stays without a heartbeat before it leaves its group
/// (RocketMQ's key for its idle client channels). RocketMQ: 120 000; raftmq's clients
/// heartbeat every few seconds, so a crashed member's queues move on after 10 s.
pub(crate) const CHANNEL_EXPIRED_TIMEOUT: Key<u64> = Key {
    name: "channelExpiredTimeout",
    aliases: &[],
    default: Some("10000"),
    parse: |raw| integer_in(raw, 1_000, JAVA_INT_MAX),
};
/// Bytes a slave may lag behind its master and still count as in sync (RocketMQ's key and
/// default, 256 MiB). A slave further behind, or silent for `slaveTimeout`, leaves the in-sync
/// set: `SYNC_MASTER` sends stop waiting for it (`SLAVE_NOT_AVAILABLE`) and it cannot become
/// master until it has caught up.
pub(crate) const HA_MAX_GAP_NOT_IN_SYNC: Key<u64> = Key {
    name: "haMaxGapNotInSync",
    aliases: &[],
    default: Some("268435456"),
    parse: |raw| integer_in(raw, 0, u64::MAX / 2),
};
/// RocketMQ 5's key: when a master dies while its slave is out of sync, elect the slave
/// anyway (losing what it lacks, which is logged) instead of waiting for the master.
pub(crate) const ENABLE_ELECT_UNCLEAN_MASTER: Key<bool> = Key {
    name: "enableElectUncleanMaster",
    aliases: &[],
    default: Some("false"),
    parse: boolean,
};
/// The nameserver that hosts this classic group's witness (`host:port`); raftmq's own key.
/// Default: the first `namesrvAddr` entry. Every broker of the group must name the same one.
pub(crate) const WITNESS_ADDR: Key<Option<HostPort>> = Key {
    name: "witnessAddr",
    aliases: &[],
    default: Some(""),
    parse: |raw| optional(raw, HostPort::parse),
};
pub(crate) const DELETE_WHEN: Key<Vec<u8>> = Key {
    name: "deleteWhen",
    aliases: &[],
    default: Some("04"),
    parse: values::parse_hours,
};
/// Hours.
pub(crate) const FILE_RESERVED_TIME: Key<u32> = Key {
    name: "fileReservedTime",
    aliases: &[],
    default: Some("72"),
    parse: |raw| integer_in(raw, 0, i32::MAX as u32),
};
/// RocketMQ silently clamps to 10..=95; a value outside is refused here instead, since the
/// operator clearly meant something the broker will not do.
pub(crate) const DISK_MAX_USED_SPACE_RATIO: Key<u8> = Key {
    name: "diskMaxUsedSpaceRatio",
    aliases: &[],
    default: Some("75"),
    parse: |raw| integer_in(raw, 10, 95),
};
pub(crate) const AUTO_CREATE_TOPIC_ENABLE: Key<bool> = Key {
    name: "autoCreateTopicEnable",
    aliases: &[],
    default: Some("true"),
    parse: boolean,
};
/// Worker threads of the broker's async runtime, which runs everything but disk flushes:
/// gRPC, Raft, applying. RocketMQ's key for its Netty worker threads (default 8); here 0,
/// the default, means one per CPU. Replicas sharing a host run best with fewer: every
/// hand-off between two workers of one process costs a wake-up, and co-located replicas
/// keep each other's cores busy anyway (conf/dledger sets 1).
pub(crate) const SERVER_WORKER_THREADS: Key<u32> = Key {
    name: "serverWorkerThreads",
    aliases: &[],
    default: Some("0"),
    parse: |raw| integer_in(raw, 0, 1024),
};
pub(crate) const DEFAULT_TOPIC_QUEUE_NUMS: Key<u32> = Key {
    name: "defaultTopicQueueNums",
    aliases: &[],
    default: Some("8"),
    parse: |raw| integer_in(raw, 1, u32::from(u16::MAX)),
};
/// Milliseconds between registrations with every nameserver (DESIGN §5). RocketMQ: 30 000
/// (clamped to 10..60 s); raftmq registers every second so that routes follow leader changes
/// within seconds even if an immediate registration is lost. RocketMQ 5's
/// `brokerHeartbeatInterval` (its light heartbeat, also 1 s) names the same thing here.
pub(crate) const REGISTER_NAME_SERVER_PERIOD: Key<u64> = Key {
    name: "registerNameServerPeriod",
    aliases: &["brokerHeartbeatInterval"],
    default: Some("1000"),
    parse: |raw| integer_in(raw, 100, 60_000),
};
/// Known (ACL is a later feature), but `true` is refused until it is enforced.
pub(crate) const ACL_ENABLE: Key<bool> = Key {
    name: "aclEnable",
    aliases: &[],
    default: Some("false"),
    parse: boolean,
};
pub(crate) const ENABLE_DLEGER_COMMIT_LOG: Key<bool> = Key {
    name: "enableDLegerCommitLog",
    aliases: &[],
    default: Some("false"),
    parse: boolean,
};
pub(crate) const DLEGER_GROUP: Key<Option<String>> = Key {
    name: "dLegerGroup",
    aliases: &[],
    default: Some(""),
    parse: |raw| optional(raw, values::name),
};
pub(crate) const DLEGER_PEERS: Key<Vec<DLedgerPeer>> = Key {
    name: "dLegerPeers",
    aliases: &[],
    default: Some(""),
    parse: values::parse_peers,
};
pub(crate) const DLEGER_SELF_ID: Key<Option<String>> = Key {
    name: "dLegerSelfId",
    aliases: &[],
    default: Some(""),
    parse: |raw| optional(raw, values::peer_id),
};
pub(crate) const PREFERRED_LEADER_ID: Key<Option<String>> = Key {
    name: "preferredLeaderId",
    aliases: &[],
    default: Some(""),
    parse: |raw| optional(raw, values::peer_id),
};

/// Every known key, in the order `mqbroker -p`-style output lists them.
pub(crate) static SCHEMA: Schema = Schema {
    keys: &[
        &BROKER_CLUSTER_NAME,
        &BROKER_NAME,
        &BROKER_ID,
        &BROKER_ROLE,
        &FLUSH_DISK_TYPE,
        &NAMESRV_ADDR,
        &LISTEN_PORT,
        &HA_LISTEN_PORT,
        &BROKER_IP1,
        &BROKER_IP2,
        &STORE_PATH_ROOT_DIR,
        &STORE_PATH_COMMIT_LOG,
        &MAPPED_FILE_SIZE_COMMIT_LOG,
        &MAPPED_FILE_SIZE_CONSUME_QUEUE,
        &MAX_MESSAGE_SIZE,
        &FLUSH_INTERVAL_COMMIT_LOG,
        &PAGE_CACHE_WINDOW_COMMIT_LOG,
        &SYNC_FLUSH_TIMEOUT,
        &SLAVE_TIMEOUT,
        &DUPLICATE_WINDOW_MS,
        &DUPLICATE_MAX_KEYS,
        &CHANNEL_EXPIRED_TIMEOUT,
        &HA_MAX_GAP_NOT_IN_SYNC,
        &ENABLE_ELECT_UNCLEAN_MASTER,
        &WITNESS_ADDR,
        &DELETE_WHEN,
        &FILE_RESERVED_TIME,
        &DISK_MAX_USED_SPACE_RATIO,
        &AUTO_CREATE_TOPIC_ENABLE,
        &DEFAULT_TOPIC_QUEUE_NUMS,
        &SERVER_WORKER_THREADS,
        &REGISTER_NAME_SERVER_PERIOD,
        &ACL_ENABLE,
        &ENABLE_DLEGER_COMMIT_LOG,
        &DLEGER_GROUP,
        &DLEGER_PEERS,
        &DLEGER_SELF_ID,
        &PREFERRED_LEADER_ID,
    ],
    ignored: IGNORED,
};

/// RocketMQ keys that tutorial files carry and that make no sense here, by reason. Each is
/// accepted and reported once, so such files start unchanged (DESIGN §7). `aclEnable` is
/// deliberately not here: it is a real setting.
const IGNORED: &[IgnoredKeys] = &[
    IgnoredKeys {
        why: "the Java installation directory",
        names: &["rocketmqHome"],
    },
    IgnoredKeys {
        why: "a JVM thread-pool setting; raftmq runs on an async runtime",
        names: &[
            "sendMessageThreadPoolNums",
            "putMessageFutureThreadPoolNums",
            "pullMessageThreadPoolNums",
            "litePullMessageThreadPoolNums",
            "ackMessageThreadPoolNums",
            "processReplyMessageThreadPoolNums",
            "queryMessageThreadPoolNums",
            "adminBrokerThreadPoolNums",
            "clientManageThreadPoolNums",
            "consumerManageThreadPoolNums",
            "loadBalanceProcessorThreadPoolNums",
            "heartbeatThreadPoolNums",
            "recoverThreadPoolNums",
            "endTransactionThreadPoolNums",
        ],
    },
    IgnoredKeys {
        why: "a JVM request-queue setting; raftmq bounds work per connection instead",
        names: &[
            "sendThreadPoolQueueCapacity",
            "putThreadPoolQueueCapacity",
            "pullThreadPoolQueueCapacity",
            "queryThreadPoolQueueCapacity",
            "clientManagerThreadPoolQueueCapacity",
            "consumerManagerThreadPoolQueueCapacity",
            "heartbeatThreadPoolQueueCapacity",
            "endTransactionPoolQueueCapacity",
            "brokerFastFailureEnable",
            "waitTimeMillsInSendQueue",
            "waitTimeMillsInPullQueue",
            "waitTimeMillsInHeartbeatQueue",
            "waitTimeMillsInTransactionQueue",
            "osPageCacheBusyTimeOutMills",
        ],
    },
    IgnoredKeys {
        why: "a JVM implementation choice",
        names: &["useReentrantLockWhenPutMessage", "transferMsgByHeap"],
    },
    NETTY_SERVER_KEYS,
    IgnoredKeys {
        why: "a Netty client setting; raftmq speaks gRPC",
        names: &[
            "clientWorkerThreads",
            "clientCallbackExecutorThreads",
            "clientChannelMaxIdleTimeSeconds",
            "clientSocketSndBufSize",
            "clientSocketRcvBufSize",
        ],
    },
    IgnoredKeys {
        why: "a tuning knob of RocketMQ's mmap store; raftmq's Raft log store manages this itself",
        names: &[
            "transientStorePoolEnable",
            "transientStorePoolSize",
            "fastFailIfNoBufferInStorePool",
            "warmMapedFileEnable",
            "flushLeastPagesWhenWarmMapedFile",
            "flushCommitLogLeastPages",
            "flushCommitLogThoroughInterval",
            "flushCommitLogTimed",
            "commitIntervalCommitLog",
            "commitCommitLogLeastPages",
            "commitCommitLogThoroughInterval",
            "flushIntervalConsumeQueue",
            "flushConsumeQueueLeastPages",
            "flushConsumeQueueThoroughInterval",
            "maxTransferBytesOnMessageInMemory",
            "maxTransferCountOnMessageInMemory",
            "maxTransferBytesOnMessageInDisk",
            "maxTransferCountOnMessageInDisk",
            "accessMessageInMemoryMaxRatio",
            "cleanResourceInterval",
            "deleteCommitLogFilesInterval",
            "deleteConsumeQueueFilesInterval",
            "destroyMapedFileIntervalForcibly",
            "redeleteHangedFileInterval",
            "cleanFileForciblyEnable",
            "diskSpaceWarningLevelRatio",
            "diskSpaceCleanForciblyRatio",
            "diskFallRecorded",
            "maxRecoveryCommitlogFiles",
            "messageIndexEnable",
            "messageIndexSafe",
            "maxHashSlotNum",
            "maxIndexNum",
            "enableConsumeQueueExt",
            "duplicationEnable",
            "debugLockEnable",
        ],
    },
    IgnoredKeys {
        why: "raftmq always checks checksums on recovery",
        names: &["checkCRCOnRecover"],
    },
    IgnoredKeys {
        why: "a RocketMQ store file location; raftmq keeps its files under storePathRootDir",
        names: &[
            "storePathConsumeQueue",
            "storePathIndex",
            "storeCheckpoint",
            "abortFile",
        ],
    },
    IgnoredKeys {
        why: "raftmq's commitlog is its Raft log, under storePathCommitLog",
        names: &["storePathDLedgerCommitLog"],
    },
    IgnoredKeys {
        why: "part of RocketMQ's master-slave HA transport; raftmq replicates through Raft",
        names: &[
            "enableBatchPush",
            "haSendHeartbeatInterval",
            "haHousekeepingInterval",
            "haTransferBatchSize",
        ],
    },
    IgnoredKeys {
        why: "a slave finds its master through the nameserver",
        names: &["haMasterAddress"],
    },
    IgnoredKeys {
        why: "RocketMQ 4's second client port (the VIP channel, listenPort - 2); raftmq has one \
              client port, listenPort",
        names: &["fastListenPort"],
    },
    IgnoredKeys {
        why: "RocketMQ 5 controller mode; raftmq elects masters with Raft",
        names: &[
            "enableControllerMode",
            "controllerAddr",
            "enableSlaveActingMaster",
        ],
    },
    IgnoredKeys {
        why: "a detail of RocketMQ's registration protocol",
        names: &[
            "compressedRegister",
            "forceRegister",
            "registerBrokerTimeoutMills",
            "fetchNamesrvAddrByAddressServer",
        ],
    },
    IgnoredKeys {
        why: "raftmq always long-polls",
        names: &["longPollingEnable", "shortPollingTimeMills"],
    },
    IgnoredKeys {
        why: "consumer offsets go through the Raft log",
        names: &[
            "flushConsumerOffsetInterval",
            "flushConsumerOffsetHistoryInterval",
        ],
    },
    IgnoredKeys {
        why: "raftmq followers always serve committed reads",
        names: &["slaveReadEnable"],
    },
    IgnoredKeys {
        why: "a RocketMQ feature raftmq does not implement",
        names: &[
            "traceOn",
            "traceTopicEnable",
            "msgTraceTopicName",
            "enablePropertyFilter",
            "enableCalcFilterBitMap",
            "filterSupportRetry",
            "messageDelayLevel",
            "timerWheelEnable",
            "rejectTransactionMessage",
            "checkTransactionMessageEnable",
            "transactionTimeOut",
            "transactionCheckMax",
            "transactionCheckInterval",
            "autoCreateSubscriptionGroup",
            "brokerPermission",
            "brokerTopicEnable",
            "clusterTopicEnable",
            "accountStatsEnable",
            "enableDetailStat",
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_properties::KeySpec;
    use std::collections::HashSet;

    /// All known spellings: canonical names and aliases.
    pub(crate) fn all_spellings() -> impl Iterator<Item = &'static str> {
        SCHEMA.keys.iter().flat_map(|spec: &&dyn KeySpec| {
            std::iter::once(spec.name()).chain(spec.aliases().iter().copied())
        })
    }

    #[test]
    fn every_constant_default_is_a_valid_value() {
        for spec in SCHEMA.keys {
            if let Some(default) = spec.default_text() {
                assert_eq!(spec.check(default), Ok(()), "default of {}", spec.name());
            }
        }
    }

    #[test]
    fn no_spelling_is_both_known_and_ignored_or_listed_twice() {
        let mut seen = HashSet::new();
        for name in all_spellings().chain(SCHEMA.ignored_names()) {
            assert!(seen.insert(name), "{name} is listed twice");
        }
    }

    #[test]
    fn acl_enable_is_known_not_ignored() {
        assert!(SCHEMA.lookup("aclEnable").is_some());
        assert!(SCHEMA.ignored("aclEnable").is_none());
    }
}
