//! `mqbroker -p -c FILE` on a RocketMQ 4.x tutorial's property file (written here, not taken
//! from conf/): it prints the effective configuration on stdout, honouring the old spellings
//! and the store and address keys, logs the keys it ignores in one warning line, and exits 0
//! without starting anything.

use std::collections::BTreeMap;
use std::process::Command;

const TUTORIAL: &str = "\
brokerClusterName=rocketmq-cluster
brokerName=broker-a
brokerId=0
namesrvAddr=rocketmq-nameserver1:9876;rocketmq-nameserver2:9876
brokerIP1=192.168.1.10
brokerIP2=10.0.0.10
listenPort=10911
haListenPort=10915
deleteWhen=04
fileReservedTime=120
mapedFileSizeCommitLog=1073741824
mapedFileSizeConsumeQueue=300000
storePathRootDir=/usr/local/rocketmq/store
storePathCommitLog=/data/rocketmq/commitlog
storePathConsumeQueue=/usr/local/rocketmq/store/consumequeue
storePathIndex=/usr/local/rocketmq/store/index
storeCheckpoint=/usr/local/rocketmq/store/checkpoint
abortFile=/usr/local/rocketmq/store/abort
maxMessageSize=65536
flushCommitLogLeastPages=4
brokerRole=SYNC_MASTER
flushDiskType=ASYNC_FLUSH
checkTransactionMessageEnable=false
autoCreateSubscriptionGroup=true
sendMessageThreadPoolNums=128
pullMessageThreadPoolNums=128
";

#[test]
fn t19_p_prints_the_effective_config_of_a_tutorial_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker-a.properties");
    std::fs::write(&file, TUTORIAL).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mqbroker"))
        .arg("-p")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let printed: BTreeMap<&str, &str> = stdout
        .lines()
        .map(|l| {
            l.split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {l}"))
        })
        .collect();
    for (key, value) in [
        ("brokerClusterName", "rocketmq-cluster"),
        ("brokerRole", "SYNC_MASTER"),
        (
            "namesrvAddr",
            "rocketmq-nameserver1:9876;rocketmq-nameserver2:9876",
        ),
        ("brokerIP1", "192.168.1.10"),
        ("brokerIP2", "10.0.0.10"),
        ("haListenPort", "10915"),
        ("storePathRootDir", "/usr/local/rocketmq/store"),
        ("storePathCommitLog", "/data/rocketmq/commitlog"),
        ("mappedFileSizeCommitLog", "1073741824"),
        ("mappedFileSizeConsumeQueue", "300000"),
        ("maxMessageSize", "65536"),
        ("fileReservedTime", "120"),
    ] {
        assert_eq!(printed.get(key), Some(&value), "{key} in:\n{stdout}");
    }
    // The old spellings and the ignored keys are not part of the effective configuration.
    for key in [
        "mapedFileSizeCommitLog",
        "storePathConsumeQueue",
        "sendMessageThreadPoolNums",
    ] {
        assert!(!printed.contains_key(key), "{key} printed:\n{stdout}");
    }

    // One warning line lists every ignored key; nothing else is warned about.
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("broker-a.properties: 10 RocketMQ keys ignored: "),
        "{}",
        warnings[0]
    );
    for key in [
        "storePathConsumeQueue",
        "storePathIndex",
        "storeCheckpoint",
        "abortFile",
        "flushCommitLogLeastPages",
        "checkTransactionMessageEnable",
        "autoCreateSubscriptionGroup",
        "sendMessageThreadPoolNums",
        "pullMessageThreadPoolNums",
        "mapedFileSizeConsumeQueue",
    ] {
        assert!(warnings[0].contains(key), "{key} missing: {}", warnings[0]);
    }
}
