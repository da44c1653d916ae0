//! From checked settings to a [`BrokerConfig`]: derived defaults, `~` expansion, and the
//! rules that involve more than one key.
//!
//! Every value here was already parsed and checked on its own by the key table; what can
//! still be wrong is a combination. Such errors point at the line of the key that has to
//! change and mention the other key with where it was set, so the operator can fix the file
//! without reading code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use raftmq_properties::{Key, Settings, Warning};

use super::keys::*;
use super::values::{self, BrokerRole, DLedgerPeer};
use super::{BrokerConfig, ConfigError, DLedgerConfig, Environment};

/// RocketMQ's name for a broker whose host name cannot be found.
const UNKNOWN_HOST_BROKER_NAME: &str = "DEFAULT_BROKER";
/// Why `mappedFileSizeConsumeQueue` has no effect.
const CONSUME_QUEUES_IN_MEMORY: &str =
    "raftmq keeps consume queues in memory, built from the commitlog; there are no consume \
     queue files to size";

pub(super) fn assemble(
    settings: &Settings,
    env: &Environment,
    warnings: &mut Vec<Warning>,
) -> Result<BrokerConfig, ConfigError> {
    let broker_name = match settings.get(&BROKER_NAME)? {
        Some(name) => name,
        // RocketMQ's default: the host name, so that two unconfigured brokers on two hosts
        // never fall into one group (which here would make them one Raft group).
        None => env
            .hostname
            .as_deref()
            .and_then(|host| values::name(host).ok())
            .unwrap_or_else(|| UNKNOWN_HOST_BROKER_NAME.to_owned()),
    };
    let broker_id = settings.value(&BROKER_ID)?;
    let listen_port = settings.value(&LISTEN_PORT)?;
    let broker_ip1 = settings.value(&BROKER_IP1)?;
    let store_path_root_dir = expand_home(
        settings,
        &STORE_PATH_ROOT_DIR,
        settings.value(&STORE_PATH_ROOT_DIR)?,
        env,
    )?;
    let store_path_commit_log = match settings.value(&STORE_PATH_COMMIT_LOG)? {
        Some(path) => expand_home(settings, &STORE_PATH_COMMIT_LOG, path, env)?,
        None => store_path_root_dir.join("commitlog"),
    };
    let dledger = dledger(settings, &broker_name, listen_port, warnings)?;
    let consume_queue_file_size = settings.value(&MAPPED_FILE_SIZE_CONSUME_QUEUE)?;
    if let Some(set) = settings
        .property(&MAPPED_FILE_SIZE_CONSUME_QUEUE)
        .filter(|_| Some(consume_queue_file_size) != default_value(&MAPPED_FILE_SIZE_CONSUME_QUEUE))
    {
        // Checked and shown by `-p` (RocketMQ's files carry it, and it will size consume
        // queue files once they exist), but nothing uses it yet: a value other than the
        // default is reported with the ignored keys rather than believed to take effect.
        warnings.push(Warning::Ignored {
            at: set.at.clone(),
            key: set.key.clone(),
            why: CONSUME_QUEUES_IN_MEMORY,
        });
    }
    let broker_role = broker_role(settings, broker_id, dledger.is_some(), warnings)?;
    let acl_enable = settings.value(&ACL_ENABLE)?;
    if acl_enable {
        return Err(conflict(
            settings,
            &ACL_ENABLE,
            "aclEnable = true is not supported yet: raftmq does not enforce ACLs and would \
             serve every client; remove it or set it to false"
                .to_owned(),
        ));
    }

    Ok(BrokerConfig {
        broker_cluster_name: settings.value(&BROKER_CLUSTER_NAME)?,
        broker_name,
        broker_id,
        broker_role,
        flush_disk_type: settings.value(&FLUSH_DISK_TYPE)?,
        namesrv_addr: settings.value(&NAMESRV_ADDR)?,
        listen_port,
        ha_listen_port: ha_listen_port(settings, listen_port)?,
        broker_ip2: settings
            .get(&BROKER_IP2)?
            .unwrap_or_else(|| broker_ip1.clone()),
        broker_ip1,
        store_path_root_dir,
        store_path_commit_log,
        mapped_file_size_commit_log: settings.value(&MAPPED_FILE_SIZE_COMMIT_LOG)?,
        mapped_file_size_consume_queue: consume_queue_file_size,
        max_message_size: settings.value(&MAX_MESSAGE_SIZE)?,
        flush_interval_commit_log: Duration::from_millis(
            settings.value(&FLUSH_INTERVAL_COMMIT_LOG)?,
        ),
        page_cache_window_commit_log: settings.value(&PAGE_CACHE_WINDOW_COMMIT_LOG)?,
        sync_flush_timeout: Duration::from_millis(settings.value(&SYNC_FLUSH_TIMEOUT)?),
        slave_timeout: Duration::from_millis(settings.value(&SLAVE_TIMEOUT)?),
        duplicate_memory: crate::command::DedupSettings {
            window_ms: settings.value(&DUPLICATE_WINDOW_MS)?,
            max_keys: settings.value(&DUPLICATE_MAX_KEYS)?,
        },
        channel_expired_timeout: Duration::from_millis(settings.value(&CHANNEL_EXPIRED_TIMEOUT)?),
        ha_max_gap_not_in_sync: settings.value(&HA_MAX_GAP_NOT_IN_SYNC)?,
        enable_elect_unclean_master: settings.value(&ENABLE_ELECT_UNCLEAN_MASTER)?,
        witness_addr: settings.value(&WITNESS_ADDR)?,
        delete_when: settings.value(&DELETE_WHEN)?,
        file_reserved_time: Duration::from_secs(
            u64::from(settings.value(&FILE_RESERVED_TIME)?) * 3600,
        ),
        disk_max_used_space_ratio: settings.value(&DISK_MAX_USED_SPACE_RATIO)?,
        auto_create_topic_enable: settings.value(&AUTO_CREATE_TOPIC_ENABLE)?,
        default_topic_queue_nums: settings.value(&DEFAULT_TOPIC_QUEUE_NUMS)?,
        server_worker_threads: settings.value(&SERVER_WORKER_THREADS)?,
        register_name_server_period: Duration::from_millis(
            settings.value(&REGISTER_NAME_SERVER_PERIOD)?,
        ),
        acl_enable,
        dledger,
    })
}

/// The DLedger settings when `enableDLegerCommitLog=true`: all three of group, peers and
/// self id are required, the self id and preferred leader must be peers, and this broker's
/// replication port must not be its client port.
fn dledger(
    settings: &Settings,
    broker_name: &str,
    listen_port: u16,
    warnings: &mut Vec<Warning>,
) -> Result<Option<DLedgerConfig>, ConfigError> {
    let group = settings.value(&DLEGER_GROUP)?;
    let peers = settings.value(&DLEGER_PEERS)?;
    let self_id = settings.value(&DLEGER_SELF_ID)?;
    let preferred_leader_id = settings.value(&PREFERRED_LEADER_ID)?;

    if !settings.value(&ENABLE_DLEGER_COMMIT_LOG)? {
        let set = [
            (DLEGER_GROUP.name, group.is_some()),
            (DLEGER_PEERS.name, !peers.is_empty()),
            (DLEGER_SELF_ID.name, self_id.is_some()),
            (PREFERRED_LEADER_ID.name, preferred_leader_id.is_some()),
        ];
        for (key, is_set) in set {
            if is_set {
                warnings.push(note(
                    settings,
                    key,
                    format!("{key} has no effect while enableDLegerCommitLog is false"),
                ));
            }
        }
        return Ok(None);
    }

    let (Some(group), false, Some(self_id)) = (group.clone(), peers.is_empty(), self_id.clone())
    else {
        let missing: Vec<&str> = [
            (group.is_none(), DLEGER_GROUP.name),
            (peers.is_empty(), DLEGER_PEERS.name),
            (self_id.is_none(), DLEGER_SELF_ID.name),
        ]
        .into_iter()
        .filter_map(|(is_missing, key)| is_missing.then_some(key))
        .collect();
        return Err(conflict(
            settings,
            &ENABLE_DLEGER_COMMIT_LOG,
            format!(
                "enableDLegerCommitLog = true needs dLegerGroup, dLegerPeers and dLegerSelfId; \
                 not set: {}",
                missing.join(", ")
            ),
        ));
    };
    let ids = || {
        peers
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(self_peer) = peers.iter().find(|p| p.id == self_id) else {
        return Err(conflict(
            settings,
            &DLEGER_SELF_ID,
            format!(
                "dLegerSelfId = {self_id} is not one of the dLegerPeers ids ({})",
                ids()
            ),
        ));
    };
    if let Some(preferred) = &preferred_leader_id {
        if !peers.iter().any(|p| &p.id == preferred) {
            return Err(conflict(
                settings,
                &PREFERRED_LEADER_ID,
                format!(
                    "preferredLeaderId = {preferred} is not one of the dLegerPeers ids ({})",
                    ids()
                ),
            ));
        }
    }
    if self_peer.addr.port == listen_port {
        return Err(conflict(
            settings,
            &DLEGER_PEERS,
            same_port(self_peer, settings),
        ));
    }
    if group != broker_name {
        warnings.push(note(
            settings,
            DLEGER_GROUP.name,
            format!(
                "dLegerGroup = {group} differs from brokerName = {broker_name}; raftmq names \
                 the Raft group by brokerName"
            ),
        ));
    }
    Ok(Some(DLedgerConfig {
        group,
        peers,
        self_id,
        preferred_leader_id,
    }))
}

fn same_port(self_peer: &DLedgerPeer, settings: &Settings) -> String {
    format!(
        "dLegerPeers gives this broker ({self_peer}) port {}, which is also listenPort ({}); \
         the replication and client ports must differ",
        self_peer.addr.port,
        settings.source(&LISTEN_PORT).short()
    )
}

/// The effective role. Classic groups: brokerId 0 is the master and only the master
/// (RocketMQ's convention, which the nameserver's routes rely on). DLedger groups: the
/// election decides who leads, the role only chooses when sends are acked, and SYNC_MASTER
/// is the default (DESIGN §4).
fn broker_role(
    settings: &Settings,
    broker_id: u64,
    dledger: bool,
    warnings: &mut Vec<Warning>,
) -> Result<BrokerRole, ConfigError> {
    let role = settings.get(&BROKER_ROLE)?;
    if dledger {
        if role == Some(BrokerRole::Slave) {
            warnings.push(note(
                settings,
                BROKER_ROLE.name,
                "brokerRole = SLAVE has no effect with enableDLegerCommitLog = true (the Raft \
                 election picks the master); sends are acked as SYNC_MASTER"
                    .to_owned(),
            ));
        }
        return Ok(role
            .filter(|r| r.is_master())
            .unwrap_or(BrokerRole::SyncMaster));
    }
    let role = role.unwrap_or(BrokerRole::AsyncMaster);
    match (role, broker_id) {
        (BrokerRole::Slave, 0) => Err(conflict(
            settings,
            &BROKER_ROLE,
            format!(
                "brokerRole = SLAVE needs brokerId > 0 (0 is the master's id), but brokerId is 0 ({})",
                settings.source(&BROKER_ID).short()
            ),
        )),
        (master, id) if master.is_master() && id > 0 => Err(conflict(
            settings,
            &BROKER_ID,
            format!(
                "brokerId = {id} is a slave's id, but brokerRole is {master} ({}); set \
                 brokerRole=SLAVE or brokerId=0",
                settings.source(&BROKER_ROLE).short()
            ),
        )),
        _ => Ok(role),
    }
}

/// `haListenPort`, or `listenPort + 1` when it is 0 (RocketMQ's rule). With `listenPort=0`
/// (an ephemeral port, for tests) the derived port is 0 as well.
fn ha_listen_port(settings: &Settings, listen_port: u16) -> Result<u16, ConfigError> {
    match settings.value(&HA_LISTEN_PORT)? {
        0 if listen_port == 0 => Ok(0),
        0 => listen_port.checked_add(1).ok_or_else(|| {
            conflict(
                settings,
                &LISTEN_PORT,
                format!(
                    "listenPort = {listen_port} leaves no port for haListenPort (listenPort + 1); \
                     set haListenPort"
                ),
            )
        }),
        ha if ha == listen_port => Err(conflict(
            settings,
            &HA_LISTEN_PORT,
            format!(
                "haListenPort = {ha} is also listenPort ({}); the replication and client ports \
                 must differ",
                settings.source(&LISTEN_PORT).short()
            ),
        )),
        ha => Ok(ha),
    }
}

/// Expands a leading `~` to the home directory. RocketMQ's own default is `$HOME/store`,
/// and users write `~/store` expecting the shell's meaning (Java would create a directory
/// literally named `~`).
fn expand_home<T>(
    settings: &Settings,
    key: &Key<T>,
    path: PathBuf,
    env: &Environment,
) -> Result<PathBuf, ConfigError> {
    let Ok(rest) = path.strip_prefix("~") else {
        return Ok(path);
    };
    match &env.home {
        Some(home) => Ok(if rest == Path::new("") {
            home.clone()
        } else {
            home.join(rest)
        }),
        None => Err(raftmq_properties::Error::InvalidValue {
            at: settings.source(key),
            key: settings
                .property(key)
                .map_or(key.name, |p| p.key.as_str())
                .to_owned(),
            value: path.display().to_string(),
            expected: "a path without ~, since HOME is not set".to_owned(),
        }
        .into()),
    }
}

/// The key table's default of `key`, parsed.
fn default_value<T>(key: &Key<T>) -> Option<T> {
    key.default.and_then(|raw| (key.parse)(raw).ok())
}

fn conflict<T>(settings: &Settings, key: &Key<T>, message: String) -> ConfigError {
    ConfigError::Conflict {
        at: settings.source(key),
        key: key.name,
        message,
    }
}

fn note(settings: &Settings, key: &'static str, message: String) -> Warning {
    Warning::Note {
        at: settings.source_of(key),
        key,
        message,
    }
}
