//! Tests of loading, checking and rendering the broker configuration, including every
//! shipped `conf/` layout.

use std::collections::HashSet;

use raftmq_properties::parse_str;

use super::*;

const LABEL: &str = "conf/broker-a.properties";

fn test_env() -> Environment {
    Environment {
        hostname: Some("testhost".into()),
        home: Some(PathBuf::from("/home/test")),
    }
}

fn load_text(text: &str, overrides: &[&str]) -> Result<(BrokerConfig, Vec<Warning>), ConfigError> {
    load_text_in(text, overrides, &test_env())
}

fn load_text_in(
    text: &str,
    overrides: &[&str],
    env: &Environment,
) -> Result<(BrokerConfig, Vec<Warning>), ConfigError> {
    let file = parse_str(text, Path::new(LABEL)).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    BrokerConfig::from_properties(&file, &overrides, env)
}

/// Loads text that must produce neither an error nor a warning.
fn clean(text: &str) -> BrokerConfig {
    let (config, warnings) = load_text(text, &[]).unwrap();
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
    config
}

fn error(text: &str, overrides: &[&str]) -> String {
    load_text(text, overrides).unwrap_err().to_string()
}

fn warnings(text: &str, overrides: &[&str]) -> Vec<String> {
    let (_, warnings) = load_text(text, overrides).unwrap();
    warnings.iter().map(ToString::to_string).collect()
}

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf")
}

/// Every broker file shipped in conf/, by layout.
const LAYOUTS: [(&str, &[&str]); 4] = [
    ("2m-noslave", &["broker-a", "broker-b"]),
    (
        "2m-2s-async",
        &["broker-a", "broker-a-s", "broker-b", "broker-b-s"],
    ),
    (
        "2m-2s-sync",
        &["broker-a", "broker-a-s", "broker-b", "broker-b-s"],
    ),
    ("dledger", &["broker-n0", "broker-n1", "broker-n2"]),
];

fn load_conf(layout: &str, node: &str) -> BrokerConfig {
    let path = conf_dir().join(layout).join(format!("{node}.properties"));
    let file = read_file(&path).unwrap();
    let (config, warnings) = BrokerConfig::from_properties(&file, &[], &test_env())
        .unwrap_or_else(|e| panic!("{layout}/{node}: {e}"));
    assert!(warnings.is_empty(), "{layout}/{node}: {warnings:?}");
    config
}

#[test]
fn every_conf_file_loads_without_error_or_warning() {
    let mut count = 0;
    for (layout, nodes) in LAYOUTS {
        for node in nodes {
            load_conf(layout, node);
            count += 1;
        }
    }
    assert_eq!(count, 13);
}

#[test]
fn each_conf_layout_runs_on_one_machine() {
    for (layout, nodes) in LAYOUTS {
        let configs: Vec<BrokerConfig> = nodes.iter().map(|node| load_conf(layout, node)).collect();
        let mut ports = HashSet::new();
        let mut stores = HashSet::new();
        for config in &configs {
            assert_eq!(config.broker_ip1, "127.0.0.1", "{layout}");
            assert_eq!(joined(&config.namesrv_addr), "127.0.0.1:9876", "{layout}");
            assert!(
                config.store_path_root_dir.is_relative(),
                "{layout}: tests override a relative path"
            );
            assert!(
                stores.insert(config.store_path_root_dir.clone()),
                "{layout}: shared store dir"
            );
            let replication = match &config.dledger {
                Some(dledger) => dledger.self_peer().map(|p| p.addr.port).unwrap(),
                None => config.ha_listen_port,
            };
            for port in [config.listen_port, replication] {
                assert!(ports.insert(port), "{layout}: port {port} used twice");
            }
        }
    }
}

#[test]
fn conf_roles_match_their_layout() {
    for (layout, nodes) in LAYOUTS {
        for node in nodes {
            let config = load_conf(layout, node);
            let expected = match (layout, node.ends_with("-s")) {
                (_, true) => BrokerRole::Slave,
                ("2m-2s-sync" | "dledger", false) => BrokerRole::SyncMaster,
                _ => BrokerRole::AsyncMaster,
            };
            assert_eq!(config.broker_role, expected, "{layout}/{node}");
            assert_eq!(
                config.broker_id,
                u64::from(node.ends_with("-s")),
                "{layout}/{node}"
            );
            assert_eq!(config.dledger.is_some(), layout == "dledger");
        }
    }
    for (n, node) in ["broker-n0", "broker-n1", "broker-n2"].iter().enumerate() {
        let config = load_conf("dledger", node);
        let dledger = config.dledger.unwrap();
        assert_eq!(
            (config.broker_name.as_str(), dledger.group.as_str()),
            ("RaftNode00", "RaftNode00")
        );
        assert_eq!(dledger.self_id, format!("n{n}"));
        assert_eq!(
            joined(&dledger.peers),
            "n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913"
        );
    }
}

#[test]
fn load_reads_a_file_and_applies_set_on_top() {
    let path = conf_dir().join("dledger/broker-n1.properties");
    let overrides = [
        "storePathRootDir=/tmp/raftmq-test/n1".to_owned(),
        "listenPort=0".to_owned(),
    ];
    let (config, warnings) = BrokerConfig::load(Some(&path), &overrides).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.store_path_root_dir, Path::new("/tmp/raftmq-test/n1"));
    assert_eq!(
        config.store_path_commit_log,
        Path::new("/tmp/raftmq-test/n1/commitlog")
    );
    assert_eq!((config.listen_port, config.ha_listen_port), (0, 0));
}

#[test]
fn load_without_file_uses_defaults_and_missing_file_names_it() {
    let (config, _) = BrokerConfig::load(None, &["brokerName=solo".to_owned()]).unwrap();
    assert_eq!(config.broker_name, "solo");
    let err = BrokerConfig::load(Some(Path::new("conf/nope.properties")), &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("conf/nope.properties: cannot read: "),
        "{err}"
    );
}

#[test]
fn defaults_are_rocketmqs_except_where_documented() {
    let config = clean("");
    let expected = BrokerConfig {
        broker_cluster_name: "DefaultCluster".into(),
        broker_name: "testhost".into(),
        broker_id: 0,
        broker_role: BrokerRole::AsyncMaster,
        flush_disk_type: FlushDiskType::AsyncFlush,
        namesrv_addr: vec![],
        listen_port: 10911,
        ha_listen_port: 10912,
        broker_ip1: "127.0.0.1".into(),
        broker_ip2: "127.0.0.1".into(),
        store_path_root_dir: "/home/test/store".into(),
        store_path_commit_log: "/home/test/store/commitlog".into(),
        mapped_file_size_commit_log: 1 << 30,
        mapped_file_size_consume_queue: 300_000 * 20,
        max_message_size: 4 << 20,
        flush_interval_commit_log: Duration::from_millis(500),
        page_cache_window_commit_log: 1 << 30,
        sync_flush_timeout: Duration::from_secs(5),
        slave_timeout: Duration::from_secs(3),
        duplicate_memory: crate::command::DedupSettings {
            window_ms: 120_000,
            max_keys: 2_000_000,
        },
        channel_expired_timeout: Duration::from_secs(10),
        ha_max_gap_not_in_sync: 256 << 20,
        enable_elect_unclean_master: false,
        witness_addr: None,
        delete_when: vec![4],
        file_reserved_time: Duration::from_secs(72 * 3600),
        disk_max_used_space_ratio: 75,
        auto_create_topic_enable: true,
        default_topic_queue_nums: 8,
        server_worker_threads: 0,
        register_name_server_period: Duration::from_secs(1),
        acl_enable: false,
        dledger: None,
    };
    assert_eq!(config, expected);
}

#[test]
fn broker_name_falls_back_like_rocketmq_without_a_host_name() {
    let env = Environment {
        hostname: None,
        home: Some("/h".into()),
    };
    let (config, _) = load_text_in("", &[], &env).unwrap();
    assert_eq!(config.broker_name, "DEFAULT_BROKER");
}

#[test]
fn bad_value_is_one_line_with_file_line_key_value_and_allowed() {
    let text = "# broker-a\n\nbrokerClusterName=DefaultCluster\nbrokerName=broker-a\nbrokerId=0\n\
                deleteWhen=04\nbrokerRole=MASTR\nflushDiskType=ASYNC_FLUSH\n";
    assert_eq!(
        error(text, &[]),
        "conf/broker-a.properties:7: brokerRole = MASTR is not allowed; \
         expected one of ASYNC_MASTER, SYNC_MASTER, SLAVE"
    );
}

#[test]
fn other_bad_values_say_what_is_allowed() {
    let cases = [
        ("diskMaxUsedSpaceRatio=99", "diskMaxUsedSpaceRatio = 99 is not allowed; expected an integer from 10 to 95"),
        ("listenPort=70000", "listenPort = 70000 is not allowed; expected an integer from 0 to 65535"),
        ("autoCreateTopicEnable=yes", "autoCreateTopicEnable = yes is not allowed; expected true or false"),
        ("flushDiskType=SYNC", "flushDiskType = SYNC is not allowed; expected one of ASYNC_FLUSH, SYNC_FLUSH"),
        (
            "namesrvAddr=127.0.0.1:9876;localhost",
            "namesrvAddr = 127.0.0.1:9876;localhost is not allowed; \
             expected host:port, separated by ';' (entry 2 is \"localhost\")",
        ),
        ("deleteWhen=4am", "deleteWhen = 4am is not allowed; expected hours 00 to 23, separated by ';' (entry 1 is \"4am\")"),
        ("brokerName=broker a", "brokerName = broker a is not allowed; expected a name without spaces"),
        ("brokerIP1=", "brokerIP1 = \"\" is not allowed; expected an IP address or host name"),
        (
            "mappedFileSizeCommitLog=1024",
            "mappedFileSizeCommitLog = 1024 is not allowed; expected an integer from 4096 to 2147483647",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(error(line, &[]), format!("{LABEL}:1: {message}"));
    }
}

#[test]
fn page_cache_window_takes_bytes_and_zero_turns_it_off() {
    assert_eq!(clean("").page_cache_window_commit_log, 1 << 30);
    let config = clean("pageCacheWindowCommitLog=268435456");
    assert_eq!(config.page_cache_window_commit_log, 256 << 20);
    assert_eq!(
        clean("pageCacheWindowCommitLog=0").page_cache_window_commit_log,
        0
    );
    assert!(error("pageCacheWindowCommitLog=-1", &[])
        .contains("pageCacheWindowCommitLog = -1 is not allowed"));
}

#[test]
fn legacy_maped_aliases_work() {
    let (config, warned) = load_text(
        "mapedFileSizeCommitLog=65536\nmapedFileSizeConsumeQueue=6001",
        &[],
    )
    .unwrap();
    assert_eq!(config.mapped_file_size_commit_log, 65536);
    // Rounded up to whole 20-byte units, as RocketMQ does.
    assert_eq!(config.mapped_file_size_consume_queue, 6020);
    // Consume queues have no files yet: the size is checked, shown, and said to be ignored.
    assert!(
        matches!(&warned[..], [Warning::Ignored { key, .. }] if key == "mapedFileSizeConsumeQueue"),
        "{warned:?}"
    );
    // Its default asks for nothing: `-p` output loads back without a warning.
    assert!(warnings("mappedFileSizeConsumeQueue=6000000", &[]).is_empty());
    assert_eq!(
        error("mapedFileSizeCommitLog=1", &[]),
        format!("{LABEL}:1: mapedFileSizeCommitLog = 1 is not allowed; expected an integer from 4096 to 2147483647")
    );
}

#[test]
fn register_period_accepts_rocketmq_keys() {
    assert_eq!(
        clean("registerNameServerPeriod=30000").register_name_server_period,
        Duration::from_secs(30)
    );
    assert_eq!(
        clean("brokerHeartbeatInterval=500").register_name_server_period,
        Duration::from_millis(500)
    );
}

#[test]
fn unknown_key_warning_suggests_the_nearest_key() {
    assert_eq!(
        warnings(
            "brokerRol=SLAVE\nnamesrvAdr=127.0.0.1:9876\nlistenport=1\nfooBarBaz=1",
            &[]
        ),
        [
            format!("{LABEL}:1: unknown key \"brokerRol\" is ignored; did you mean brokerRole?"),
            format!("{LABEL}:2: unknown key \"namesrvAdr\" is ignored; did you mean namesrvAddr?"),
            format!("{LABEL}:3: unknown key \"listenport\" is ignored; did you mean listenPort?"),
            format!("{LABEL}:4: unknown key \"fooBarBaz\" is ignored"),
        ]
    );
}

#[test]
fn rocketmq_tutorial_dledger_file_starts_unchanged() {
    // RocketMQ's own conf/dledger/broker-n0.conf, JVM-only key included.
    let text = "brokerClusterName = RaftCluster\nbrokerName=RaftNode00\nlistenPort=30911\n\
                namesrvAddr=127.0.0.1:9876\nstorePathRootDir=/tmp/rmqstore/node00\n\
                storePathCommitLog=/tmp/rmqstore/node00/commitlog\nenableDLegerCommitLog=true\n\
                dLegerGroup=RaftNode00\n\
                dLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913\n\
                dLegerSelfId=n0\nsendMessageThreadPoolNums=16\n";
    let (config, warnings) = load_text(text, &[]).unwrap();
    assert_eq!(config.broker_cluster_name, "RaftCluster");
    assert_eq!(
        config.store_path_commit_log,
        Path::new("/tmp/rmqstore/node00/commitlog")
    );
    let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [format!(
            "{LABEL}:11: sendMessageThreadPoolNums is ignored: a JVM thread-pool setting; \
             raftmq runs on an async runtime"
        )]
    );
}

#[test]
fn set_overrides_a_file_value() {
    let (config, warnings) = load_text(
        "listenPort=10911\nbrokerRole=ASYNC_MASTER",
        &["listenPort=20911", "brokerRole=SYNC_MASTER"],
    )
    .unwrap();
    assert!(warnings.is_empty());
    assert_eq!((config.listen_port, config.ha_listen_port), (20911, 20912));
    assert_eq!(config.broker_role, BrokerRole::SyncMaster);
}

#[test]
fn set_errors_name_set() {
    assert_eq!(
        error("", &["brokerRole=MASTR"]),
        "--set: brokerRole = MASTR is not allowed; expected one of ASYNC_MASTER, SYNC_MASTER, SLAVE"
    );
    assert_eq!(
        error("", &["brokerRole"]),
        "--set \"brokerRole\": expected key=value"
    );
    assert_eq!(
        warnings("", &["brokerNmae=x"]),
        ["--set: unknown key \"brokerNmae\" is ignored; did you mean brokerName?"]
    );
}

#[test]
fn repeated_key_last_wins_with_warning() {
    let (config, warnings) = load_text("brokerName=a\nbrokerName=b", &[]).unwrap();
    assert_eq!(config.broker_name, "b");
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0].to_string(),
        format!("{LABEL}:2: brokerName is set again; this value replaces the one at line 1")
    );
}

const DLEDGER: &str = "brokerName=RaftNode00\nlistenPort=30911\nenableDLegerCommitLog=true\n\
                       dLegerGroup=RaftNode00\n\
                       dLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913\n\
                       dLegerSelfId=n0\n";

#[test]
fn dledger_needs_group_peers_and_self_id() {
    assert_eq!(
        error("enableDLegerCommitLog=true\ndLegerGroup=g", &[]),
        format!(
            "{LABEL}:1: enableDLegerCommitLog = true needs dLegerGroup, dLegerPeers and \
             dLegerSelfId; not set: dLegerPeers, dLegerSelfId"
        )
    );
    assert_eq!(
        error("", &["enableDLegerCommitLog=true"]),
        "--set: enableDLegerCommitLog = true needs dLegerGroup, dLegerPeers and dLegerSelfId; \
         not set: dLegerGroup, dLegerPeers, dLegerSelfId"
    );
}

#[test]
fn dledger_self_and_preferred_ids_must_be_peers() {
    assert_eq!(
        error(DLEDGER, &["dLegerSelfId=n5"]),
        "--set: dLegerSelfId = n5 is not one of the dLegerPeers ids (n0, n1, n2)"
    );
    assert_eq!(
        error(&format!("{DLEDGER}preferredLeaderId=n9"), &[]),
        format!("{LABEL}:7: preferredLeaderId = n9 is not one of the dLegerPeers ids (n0, n1, n2)")
    );
    let config = clean(&format!("{DLEDGER}preferredLeaderId=n2"));
    assert_eq!(
        config.dledger.unwrap().preferred_leader_id.as_deref(),
        Some("n2")
    );
}

#[test]
fn dledger_replication_port_must_differ_from_listen_port() {
    assert_eq!(
        error(DLEDGER, &["listenPort=40911"]),
        format!(
            "{LABEL}:5: dLegerPeers gives this broker (n0-127.0.0.1:40911) port 40911, which is \
             also listenPort (from --set); the replication and client ports must differ"
        )
    );
}

#[test]
fn dledger_role_defaults_to_sync_master_and_async_master_is_honoured() {
    let config = clean(DLEDGER);
    assert_eq!(config.broker_role, BrokerRole::SyncMaster);
    assert_eq!(
        config
            .dledger
            .as_ref()
            .and_then(|d| d.self_peer())
            .map(|p| p.addr.port),
        Some(40911)
    );
    assert_eq!(
        clean(&format!("{DLEDGER}brokerRole=ASYNC_MASTER")).broker_role,
        BrokerRole::AsyncMaster
    );
}

#[test]
fn dledger_notes_settings_without_effect() {
    let (config, notes) = load_text(
        &format!("{DLEDGER}brokerRole=SLAVE"),
        &["dLegerGroup=other"],
    )
    .unwrap();
    assert_eq!(config.broker_role, BrokerRole::SyncMaster);
    let notes: Vec<String> = notes.iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        [
            "--set: dLegerGroup = other differs from brokerName = RaftNode00; raftmq names the \
             Raft group by brokerName"
                .to_owned(),
            format!(
                "{LABEL}:7: brokerRole = SLAVE has no effect with enableDLegerCommitLog = true \
                 (the Raft election picks the master); sends are acked as SYNC_MASTER"
            ),
        ]
    );
    assert_eq!(
        warnings_of_disabled_dledger(),
        [format!(
            "{LABEL}:1: dLegerPeers has no effect while enableDLegerCommitLog is false"
        )]
    );
    // Empty values mean "not set" (RocketMQ templates carry `dLegerGroup=`).
    assert!(warnings("dLegerGroup=\ndLegerPeers=\ndLegerSelfId=", &[]).is_empty());
}

fn warnings_of_disabled_dledger() -> Vec<String> {
    warnings("dLegerPeers=n0-127.0.0.1:40911", &[])
}

#[test]
fn classic_slave_needs_a_nonzero_broker_id() {
    assert_eq!(
        error("brokerName=broker-a\nbrokerRole=SLAVE", &[]),
        format!(
            "{LABEL}:2: brokerRole = SLAVE needs brokerId > 0 (0 is the master's id), but \
             brokerId is 0 (by default)"
        )
    );
    assert_eq!(
        error("brokerId=0\nbrokerRole=SLAVE", &[]),
        format!("{LABEL}:2: brokerRole = SLAVE needs brokerId > 0 (0 is the master's id), but brokerId is 0 (line 1)")
    );
}

#[test]
fn classic_master_needs_broker_id_zero() {
    assert_eq!(
        error("brokerId=1", &[]),
        format!(
            "{LABEL}:1: brokerId = 1 is a slave's id, but brokerRole is ASYNC_MASTER (by \
             default); set brokerRole=SLAVE or brokerId=0"
        )
    );
    assert!(error("brokerId=2\nbrokerRole=SYNC_MASTER", &[])
        .contains("brokerRole is SYNC_MASTER (line 2)"));
    assert_eq!(clean("brokerId=2\nbrokerRole=SLAVE").broker_id, 2);
}

#[test]
fn ha_listen_port_rules() {
    assert_eq!(
        clean("listenPort=20000\nhaListenPort=30000").ha_listen_port,
        30000
    );
    assert_eq!(
        error("listenPort=20000\nhaListenPort=20000", &[]),
        format!(
            "{LABEL}:2: haListenPort = 20000 is also listenPort (line 1); the replication and \
             client ports must differ"
        )
    );
    assert_eq!(
        error("listenPort=65535", &[]),
        format!("{LABEL}:1: listenPort = 65535 leaves no port for haListenPort (listenPort + 1); set haListenPort")
    );
    assert_eq!(
        clean("listenPort=65535\nhaListenPort=65534").ha_listen_port,
        65534
    );
}

#[test]
fn acl_enable_is_known_and_true_is_refused_until_enforced() {
    assert!(!clean("aclEnable=false").acl_enable);
    assert_eq!(
        error("aclEnable=true", &[]),
        format!(
            "{LABEL}:1: aclEnable = true is not supported yet: raftmq does not enforce ACLs \
             and would serve every client; remove it or set it to false"
        )
    );
}

#[test]
fn tilde_expands_to_home() {
    let config = clean("storePathRootDir=~/rmq\nstorePathCommitLog=~");
    assert_eq!(config.store_path_root_dir, Path::new("/home/test/rmq"));
    assert_eq!(config.store_path_commit_log, Path::new("/home/test"));
    // Only `~` and `~/...`: another user's home is not looked up.
    assert_eq!(
        clean("storePathRootDir=~bob/x").store_path_root_dir,
        Path::new("~bob/x")
    );

    let no_home = Environment {
        hostname: Some("h".into()),
        home: None,
    };
    assert_eq!(
        load_text_in("storePathRootDir=~/rmq", &[], &no_home).err().unwrap().to_string(),
        format!("{LABEL}:1: storePathRootDir = ~/rmq is not allowed; expected a path without ~, since HOME is not set")
    );
    assert_eq!(
        load_text_in("", &[], &no_home).err().unwrap().to_string(),
        "default: storePathRootDir = ~/store is not allowed; expected a path without ~, since HOME is not set"
    );
    let (config, _) = load_text_in("storePathRootDir=/data/rmq", &[], &no_home).unwrap();
    assert_eq!(
        config.store_path_commit_log,
        Path::new("/data/rmq/commitlog")
    );
}

#[test]
fn effective_properties_list_every_key_once() {
    let rendered: Vec<&str> = clean("")
        .effective_properties()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let schema: Vec<&str> = SCHEMA.keys.iter().map(|spec| spec.name()).collect();
    assert_eq!(rendered, schema);
}

#[test]
fn rendered_text_loads_back_to_the_same_config() {
    let mut configs = vec![
        clean(""),
        clean(&format!(
            "{DLEDGER}preferredLeaderId=n1\nnamesrvAddr=[::1]:9876;ns:9877\ndeleteWhen=04;16"
        )),
        clean("storePathRootDir=/a path/with spaces \\ \nbrokerId=3\nbrokerRole=SLAVE"),
    ];
    for (layout, nodes) in LAYOUTS {
        configs.extend(nodes.iter().map(|node| load_conf(layout, node)));
    }
    for config in configs {
        let text = config.to_properties_text();
        assert_eq!(clean(&text), config, "rendered:\n{text}");
    }
}

#[test]
fn rendered_text_reads_like_mqbroker_p() {
    let text = clean("").to_properties_text();
    for line in [
        "brokerClusterName=DefaultCluster\n",
        "brokerRole=ASYNC_MASTER\n",
        "listenPort=10911\n",
        "haListenPort=10912\n",
        "deleteWhen=04\n",
        "fileReservedTime=72\n",
        "registerNameServerPeriod=1000\n",
        "enableDLegerCommitLog=false\n",
        "dLegerPeers=\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert_eq!(text.lines().count(), SCHEMA.keys.len());
}

#[test]
fn classic_tutorial_file_starts_with_only_ignored_key_warnings() {
    // The shape of the 2m-2s broker-a.properties that many RocketMQ tutorials publish
    // (UTF-8 comments, legacy `maped` keys, store sub-paths, commented-out tuning).
    let text = "#所属集群名字\nbrokerClusterName=rocketmq-cluster\n#broker名字\nbrokerName=broker-a\n\
                #0 表示 Master，>0 表示 Slave\nbrokerId=0\n\
                namesrvAddr=rocketmq-nameserver1:9876;rocketmq-nameserver2:9876\n\
                defaultTopicQueueNums=4\nautoCreateTopicEnable=true\nautoCreateSubscriptionGroup=true\n\
                listenPort=10911\ndeleteWhen=04\nfileReservedTime=120\n\
                mapedFileSizeCommitLog=1073741824\nmapedFileSizeConsumeQueue=300000\n\
                #destroyMapedFileIntervalForcibly=120000\ndiskMaxUsedSpaceRatio=88\n\
                storePathRootDir=/usr/local/rocketmq/store\n\
                storePathCommitLog=/usr/local/rocketmq/store/commitlog\n\
                storePathConsumeQueue=/usr/local/rocketmq/store/consumequeue\n\
                storePathIndex=/usr/local/rocketmq/store/index\n\
                storeCheckpoint=/usr/local/rocketmq/store/checkpoint\n\
                abortFile=/usr/local/rocketmq/store/abort\nmaxMessageSize=65536\n\
                brokerRole=ASYNC_MASTER\nflushDiskType=ASYNC_FLUSH\n\
                #sendMessageThreadPoolNums=128\n";
    let (config, warnings) = load_text(text, &[]).unwrap();
    assert_eq!(config.broker_cluster_name, "rocketmq-cluster");
    assert_eq!(config.namesrv_addr.len(), 2);
    assert_eq!(config.mapped_file_size_consume_queue, 300_000);
    assert_eq!(config.disk_max_used_space_ratio, 88);
    let ignored: Vec<String> = warnings
        .iter()
        .map(|w| match w {
            Warning::Ignored { key, .. } => key.clone(),
            other => panic!("unexpected warning: {other}"),
        })
        .collect();
    assert_eq!(
        ignored,
        [
            "autoCreateSubscriptionGroup",
            "storePathConsumeQueue",
            "storePathIndex",
            "storeCheckpoint",
            "abortFile",
            "mapedFileSizeConsumeQueue"
        ]
    );
}

#[test]
fn server_worker_threads_sizes_the_runtime() {
    assert_eq!(clean("").server_worker_threads, 0);
    assert_eq!(clean("serverWorkerThreads=1").server_worker_threads, 1);
    assert_eq!(load_conf("dledger", "broker-n0").server_worker_threads, 1);
    let e = error("serverWorkerThreads=-1", &[]);
    assert!(
        e.contains(":1:") && e.contains("serverWorkerThreads"),
        "{e}"
    );
}

/// A RocketMQ 4.x tutorial's `broker-a.properties` (the 2m-2s-async master of the common
/// "cluster on three hosts" guides), every tuning key included.
const TUTORIAL_BROKER_A: &str = "\
#所属集群名字
brokerClusterName=rocketmq-cluster
#broker名字，注意此处不同的配置文件填写的不一样
brokerName=broker-a
#0 表示 Master，>0 表示 Slave
brokerId=0
#nameServer地址，分号分割
namesrvAddr=rocketmq-nameserver1:9876;rocketmq-nameserver2:9876
brokerIP1=192.168.1.10
brokerIP2=10.0.0.10
#在发送消息时，自动创建服务器不存在的topic，默认创建的队列数
defaultTopicQueueNums=4
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
#Broker 对外服务的监听端口
listenPort=10911
haListenPort=10915
fastListenPort=10909
deleteWhen=04
fileReservedTime=120
#commitLog每个文件的大小默认1G
mapedFileSizeCommitLog=1073741824
#ConsumeQueue每个文件默认存30W条，根据业务情况调整
mapedFileSizeConsumeQueue=300000
destroyMapedFileIntervalForcibly=120000
redeleteHangedFileInterval=120000
diskMaxUsedSpaceRatio=88
storePathRootDir=/usr/local/rocketmq/store
storePathCommitLog=/data/rocketmq/commitlog
storePathConsumeQueue=/usr/local/rocketmq/store/consumequeue
storePathIndex=/usr/local/rocketmq/store/index
storeCheckpoint=/usr/local/rocketmq/store/checkpoint
abortFile=/usr/local/rocketmq/store/abort
maxMessageSize=65536
flushCommitLogLeastPages=4
flushConsumeQueueLeastPages=2
flushCommitLogThoroughInterval=10000
flushConsumeQueueThoroughInterval=60000
brokerRole=ASYNC_MASTER
flushDiskType=ASYNC_FLUSH
checkTransactionMessageEnable=false
sendMessageThreadPoolNums=128
pullMessageThreadPoolNums=128
";

#[test]
fn rocketmq_4_tutorial_broker_file_starts_unchanged() {
    let (config, warned) = load_text(TUTORIAL_BROKER_A, &[]).unwrap();

    // Honoured: the keys that mean something here, old spellings included.
    assert_eq!(config.broker_cluster_name, "rocketmq-cluster");
    assert_eq!(config.broker_name, "broker-a");
    assert_eq!(config.broker_id, 0);
    assert_eq!(config.broker_role, BrokerRole::AsyncMaster);
    assert_eq!(config.namesrv_addr.len(), 2);
    assert_eq!(config.listen_port, 10911);
    // Replicas reach this broker at brokerIP2:haListenPort; clients at brokerIP1:listenPort.
    assert_eq!(config.broker_ip1, "192.168.1.10");
    assert_eq!(config.broker_ip2, "10.0.0.10");
    assert_eq!(config.ha_listen_port, 10915);
    assert_eq!(
        config.store_path_root_dir,
        Path::new("/usr/local/rocketmq/store")
    );
    // The commitlog (the Raft log) goes where storePathCommitLog says, not under the root.
    assert_eq!(
        config.store_path_commit_log,
        Path::new("/data/rocketmq/commitlog")
    );
    assert_eq!(config.mapped_file_size_commit_log, 1 << 30);
    assert_eq!(config.max_message_size, 65536);
    assert_eq!(config.default_topic_queue_nums, 4);
    assert!(config.auto_create_topic_enable);
    assert_eq!(config.delete_when, [4]);
    assert_eq!(config.file_reserved_time, Duration::from_secs(120 * 3600));
    assert_eq!(config.disk_max_used_space_ratio, 88);
    assert_eq!(config.flush_disk_type, FlushDiskType::AsyncFlush);

    // Ignored, each reported once and nothing else warned about.
    let ignored: Vec<&str> = warned
        .iter()
        .map(|w| match w {
            Warning::Ignored { key, .. } => key.as_str(),
            other => panic!("unexpected warning: {other}"),
        })
        .collect();
    assert_eq!(
        ignored,
        [
            "autoCreateSubscriptionGroup",
            "fastListenPort",
            "destroyMapedFileIntervalForcibly",
            "redeleteHangedFileInterval",
            "storePathConsumeQueue",
            "storePathIndex",
            "storeCheckpoint",
            "abortFile",
            "flushCommitLogLeastPages",
            "flushConsumeQueueLeastPages",
            "flushCommitLogThoroughInterval",
            "flushConsumeQueueThoroughInterval",
            "checkTransactionMessageEnable",
            "sendMessageThreadPoolNums",
            "pullMessageThreadPoolNums",
            "mapedFileSizeConsumeQueue",
        ]
    );

    // Logged as a single line naming the file and every ignored key with its line.
    let lines = warning_lines(&warned);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert!(
        line.starts_with(&format!("{LABEL}: 16 RocketMQ keys ignored: ")),
        "{line}"
    );
    for key in ignored {
        assert!(
            line.contains(&format!("{key} (line ")),
            "{key} missing: {line}"
        );
    }
    assert!(
        line.contains(
            "sendMessageThreadPoolNums (line 42), pullMessageThreadPoolNums (line 43) [a JVM \
             thread-pool setting; raftmq runs on an async runtime]"
        ),
        "{line}"
    );
}

#[test]
fn warning_lines_keep_other_warnings_apart_and_in_order() {
    let (_, warned) = load_text(
        "brokerRol=SLAVE\nrocketmqHome=/opt/rmq\nlistenPort=1\nlistenPort=2\n",
        &["traceOn=true"],
    )
    .unwrap();
    assert_eq!(
        warning_lines(&warned),
        [
            format!("{LABEL}:1: unknown key \"brokerRol\" is ignored; did you mean brokerRole?"),
            format!(
                "{LABEL}, --set: 2 RocketMQ keys ignored: rocketmqHome (line 2) [the Java \
                 installation directory]; traceOn [a RocketMQ feature raftmq does not implement]"
            ),
            format!("{LABEL}:4: listenPort is set again; this value replaces the one at line 3"),
        ]
    );
    assert!(warning_lines(&[]).is_empty());
}
