//! The state machine against a real log: entries are appended to a `LogStore` in a temp dir
//! exactly as the Raft log storage would (a Normal entry's body is the command's bytes), then
//! applied as openraft would apply them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use broker::command::{self, LogCommand};
use broker::raft::typ::{ApplyResult, Entry, EntryPayload, LogId, Membership, StoredMembership};
use broker::state::topics::default_topic_config as topic;
use broker::state::{BrokerState, CqUnit, QueueRange, StateMachine};
use bytes::Bytes;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{BasicNode, CommittedLeaderId};
use proto::v1::{StoredMessage, TopicConfig};
use raft_log::format::ENTRY_HEADER_LEN;
use raft_log::{EntryKind, FlushMode, LogConfig, LogStore, NewEntry};
use tempfile::TempDir;

/// A log in a temp dir and the entries appended to it so far.
struct Log {
    dir: TempDir,
    store: LogStore,
    entries: Vec<Entry>,
    term: u64,
}

fn open_store(dir: &TempDir) -> LogStore {
    // Small segments, so entries land in several files and positions cross segment bases.
    LogStore::open(
        LogConfig::new(dir.path())
            .segment_size(8 * 1024)
            .flush(FlushMode::Sync),
    )
    .unwrap()
}

impl Log {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir);
        Self {
            dir,
            store,
            entries: Vec::new(),
            term: 1,
        }
    }

    fn next_log_id(&self) -> LogId {
        LogId::new(
            CommittedLeaderId::new(self.term, 0),
            self.entries.len() as u64,
        )
    }

    /// Appends an entry as the Raft log storage lays it out, and returns it.
    fn append(&mut self, payload: EntryPayload) -> Entry {
        let log_id = self.next_log_id();
        let (kind, body) = match &payload {
            EntryPayload::Blank => (EntryKind::Blank, Vec::new()),
            EntryPayload::Normal(cmd) => (EntryKind::Normal, cmd.0.to_vec()),
            EntryPayload::Membership(m) => (EntryKind::Membership, serde_json::to_vec(m).unwrap()),
        };
        self.store
            .append(&[NewEntry {
                index: log_id.index,
                term: log_id.leader_id.term,
                kind,
                body: &body,
            }])
            .unwrap();
        let entry = Entry { log_id, payload };
        self.entries.push(entry.clone());
        entry
    }

    fn cmd(&mut self, cmd: LogCommand) -> Entry {
        self.append(EntryPayload::Normal(cmd))
    }

    fn entries(&self, range: std::ops::Range<usize>) -> Vec<Entry> {
        self.entries[range].to_vec()
    }
}

fn membership() -> Membership {
    Membership::new(
        vec![BTreeSet::from([0])],
        BTreeMap::from([(0, BasicNode::new("127.0.0.1:10912"))]),
    )
}

/// The leader's store time of every send in these logs, unless a test says otherwise.
const STORE_TIME_MS: u64 = 1_700_000_000_000;

fn message(topic: &str, queue_id: u32, tags: &str, body: &str) -> StoredMessage {
    StoredMessage {
        topic: topic.into(),
        queue_id: queue_id as i32,
        tags: tags.into(),
        body: Bytes::copy_from_slice(body.as_bytes()),
        store_timestamp_ms: 1_700_000_000_000,
        ..Default::default()
    }
}

fn send(topic: &str, queue_id: u32, tags: &str, bodies: &[&str]) -> LogCommand {
    let msgs: Vec<_> = bodies
        .iter()
        .map(|b| message(topic, queue_id, tags, b))
        .collect();
    LogCommand::send(topic, queue_id, STORE_TIME_MS, &msgs).unwrap()
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) -> Vec<ApplyResult> {
    sm.apply(entries).await.unwrap()
}

/// A state machine that applied all of `log` in one batch.
async fn replay(log: &Log) -> StateMachine {
    let mut sm = StateMachine::open(log.store.clone()).unwrap();
    apply(&mut sm, log.entries.clone()).await;
    sm
}

/// Reads a unit's message back from the log, checking its CRC.
fn read_back(log: &LogStore, unit: &CqUnit) -> StoredMessage {
    command::decode_record(log.read_at(unit.position, u64::from(unit.size)).unwrap()).unwrap()
}

/// A group's committed offsets: (topic, queue id, next offset).
type GroupOffsets = Vec<(String, u32, u64)>;

/// Everything a state machine exposes, for comparing two of them.
#[derive(Debug, PartialEq)]
struct Dump {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    topics: Vec<TopicConfig>,
    queues: Vec<QueueRange>,
    units: Vec<(String, u32, Vec<CqUnit>)>,
    offsets: Vec<(String, GroupOffsets)>,
    client_addrs: Vec<(u64, Option<String>)>,
}

fn dump(state: &BrokerState) -> Dump {
    let queues = state.queues();
    Dump {
        last_applied: state.last_applied(),
        membership: state.membership(),
        topics: state.topics(),
        units: queues
            .iter()
            .map(|q| {
                (
                    q.topic.clone(),
                    q.queue_id,
                    state.units(&q.topic, q.queue_id, 0, u32::MAX),
                )
            })
            .collect(),
        queues,
        offsets: state
            .consumer_groups()
            .into_iter()
            .map(|g| (g.clone(), state.group_offsets(&g)))
            .collect(),
        client_addrs: (0..4).map(|id| (id, state.node_client_addr(id))).collect(),
    }
}

/// A log with a bit of everything: membership, blank, topics, sends to several queues (some
/// refused), offsets, a topic deleted and created again, node info.
fn busy_log() -> Log {
    let mut log = Log::new();
    log.append(EntryPayload::Membership(membership()));
    log.append(EntryPayload::Blank);
    log.cmd(LogCommand::node_info(0, "127.0.0.1:10911").unwrap());
    log.cmd(send("T", 0, "", &["refused: T does not exist yet"]));
    log.cmd(LogCommand::upsert_topic(&topic("T", 4)));
    log.cmd(LogCommand::upsert_topic(&topic("Gone", 1)));
    log.cmd(send("Gone", 0, "", &["lost"]));
    for i in 0..30u32 {
        let q = i % 3;
        let body = format!("message {i} {}", "x".repeat((i * 37 % 500) as usize));
        log.cmd(send(
            "T",
            q,
            if i % 2 == 0 { "TagA" } else { "TagB" },
            &[&body, "second"],
        ));
        if i == 10 {
            log.cmd(send("T", 4, "", &["refused: no queue 4"]));
            log.cmd(send("Nope", 0, "", &["refused: no topic"]));
            log.cmd(
                LogCommand::commit_offsets(
                    "g",
                    STORE_TIME_MS,
                    &[("T".into(), 0, 5), ("Gone".into(), 0, 1)],
                )
                .unwrap(),
            );
        }
        if i == 15 {
            // The same config again, then a send it refuses.
            log.cmd(LogCommand::upsert_topic(&topic("T", 4)));
            log.cmd(send("T", 5, "", &["refused: no queue 5"]));
        }
        if i == 21 {
            // A producer's retry of a keyed message (dropped when applied), then two sends
            // coalesced into one entry, one of them retrying the same message again.
            let keyed = |body: &str| {
                let mut m = message("T", 2, "", body);
                m.properties
                    .insert("UNIQ_KEY".into(), format!("key-{body}"));
                m
            };
            log.cmd(LogCommand::send("T", 2, STORE_TIME_MS, &[keyed("once")]).unwrap());
            log.cmd(LogCommand::send("T", 2, STORE_TIME_MS, &[keyed("once")]).unwrap());
            let a = send("T", 0, "", &["batched a"]);
            let b = LogCommand::send("T", 2, STORE_TIME_MS, &[keyed("batched b"), keyed("once")])
                .unwrap();
            log.cmd(LogCommand::batch([&a, &b].into_iter()).unwrap());
        }
        if i == 20 {
            log.cmd(LogCommand::delete_topic("Gone").unwrap());
            log.cmd(LogCommand::upsert_topic(&topic("Gone", 2)));
            log.cmd(send("Gone", 1, "again", &["back at offset 0"]));
        }
    }
    log.term = 2;
    log.append(EntryPayload::Blank);
    log.cmd(LogCommand::commit_offsets("g", STORE_TIME_MS, &[("T".into(), 1, 7)]).unwrap());
    log.cmd(send("T", 3, "late", &["after the new term"]));
    log
}

#[tokio::test]
async fn sends_get_dense_offsets_and_positions_that_read_back() {
    let mut log = Log::new();
    let mut sm = StateMachine::open(log.store.clone()).unwrap();
    let state = sm.state();
    assert_eq!(sm.applied_state().await.unwrap().0, None);

    let mut batch = vec![
        log.append(EntryPayload::Membership(membership())),
        log.append(EntryPayload::Blank),
        log.cmd(LogCommand::upsert_topic(&topic("T", 4))),
    ];
    let mut sent: BTreeMap<u32, Vec<StoredMessage>> = BTreeMap::new();
    let mut expected_first = BTreeMap::new();
    for i in 0..40u32 {
        let q = [1, 2, 1, 3][i as usize % 4];
        let tags = ["", "TagA", "TagB"][i as usize % 3];
        let bodies: Vec<String> = (0..(i % 3 + 1))
            .map(|k| format!("m{i}.{k} {}", "y".repeat(i as usize * 13)))
            .collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let msgs = sent.entry(q).or_default();
        expected_first.insert(log.entries.len(), (q, msgs.len() as u64));
        msgs.extend(bodies.iter().map(|b| message("T", q, tags, b)));
        batch.push(log.cmd(send("T", q, tags, &refs)));
    }
    assert!(
        log.store.segments().len() > 2,
        "the test wants entries in several segments"
    );

    // A pull parked at the end of the queue wakes up when the batch is applied.
    let mut applied = state.subscribe();
    let waiter = tokio::spawn(async move { applied.changed().await.map(|()| *applied.borrow()) });
    tokio::task::yield_now().await;

    let last = batch.last().unwrap().log_id;
    let results = apply(&mut sm, batch.clone()).await;
    assert_eq!(results.len(), batch.len());
    assert_eq!(
        &results[..3],
        &[ApplyResult::Done, ApplyResult::Done, ApplyResult::Done]
    );
    for (i, result) in results.iter().enumerate().skip(3) {
        let (q, first) = expected_first[&i];
        let ApplyResult::Stored {
            queue_id,
            offsets,
            positions,
            ..
        } = result
        else {
            panic!("entry {i}: {result:?}")
        };
        assert_eq!((*queue_id, offsets[0]), (q, first), "entry {i}");
        // Each position points inside this very entry, past its header.
        let (entry_pos, entry_size) = log.store.locate(i as u64).unwrap();
        for p in positions {
            assert!(
                *p >= entry_pos + ENTRY_HEADER_LEN as u64 && *p < entry_pos + u64::from(entry_size)
            );
        }
    }
    let woke = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(woke, last.index);
    assert_eq!(state.last_applied(), Some(last));
    assert_eq!(
        sm.applied_state().await.unwrap(),
        (
            Some(last),
            StoredMembership::new(Some(log.entries[0].log_id), membership())
        )
    );

    for (q, msgs) in &sent {
        assert_eq!(state.queue_offsets("T", *q), Some((0, msgs.len() as u64)));
        let units = state.units("T", *q, 0, u32::MAX);
        assert_eq!(units.len(), msgs.len());
        for (offset, (unit, msg)) in units.iter().zip(msgs).enumerate() {
            assert_eq!(unit.queue_offset, offset as u64, "dense offsets");
            assert_eq!(unit.tags_hash, command::tags_hash(&msg.tags));
            assert_eq!(
                &read_back(&log.store, unit),
                msg,
                "queue {q} offset {offset}"
            );
            assert_eq!(
                state.queue_offset_of("T", *q, unit.position),
                Some(offset as u64)
            );
        }
        // A later page starts where it was asked to.
        let page = state.units("T", *q, 3, 2);
        assert_eq!(
            page.iter().map(|u| u.queue_offset).collect::<Vec<_>>(),
            [3, 4]
        );
    }
    assert_eq!(
        state.queue_offsets("T", 0),
        Some((0, 0)),
        "a queue of the topic with no message yet"
    );
    assert_eq!(state.queue_offsets("T", 4), None);
    assert!(state.units("T", 0, 0, 10).is_empty());

    // Entries applied one by one continue the same queues.
    let more = log.cmd(send("T", 2, "", &["one", "two"]));
    let result = apply(&mut sm, vec![more]).await;
    let max2 = sent[&2].len() as u64;
    let [ApplyResult::Stored {
        queue_id: 2,
        offsets,
        positions,
        ..
    }] = &result[..]
    else {
        panic!("{result:?}")
    };
    assert_eq!((offsets[0], positions.len()), (max2, 2));
    assert_eq!(state.queue_offsets("T", 2), Some((0, max2 + 2)));
}

#[tokio::test]
async fn refused_sends_topic_and_offset_commands() {
    let mut log = Log::new();
    let mut sm = StateMachine::open(log.store.clone()).unwrap();
    let state = sm.state();
    let entries = vec![
        log.cmd(send("T", 0, "", &["before the topic exists"])),
        log.cmd(LogCommand::upsert_topic(&topic("T", 2))),
        log.cmd(send("T", 2, "", &["queue 2 of 2"])),
        log.cmd(send("T", 1, "", &["accepted"])),
        log.cmd(LogCommand::upsert_topic(&TopicConfig {
            write_queue_nums: 1,
            ..topic("T", 2)
        })),
        log.cmd(send("T", 1, "", &["queue 1 is no longer writable"])),
        log.cmd(send("T", 0, "", &["accepted too"])),
        log.cmd(
            LogCommand::commit_offsets(
                "g",
                STORE_TIME_MS,
                &[("T".into(), 0, 1), ("T".into(), 1, 1)],
            )
            .unwrap(),
        ),
        log.cmd(LogCommand::commit_offsets("h", STORE_TIME_MS, &[("T".into(), 0, 0)]).unwrap()),
        log.cmd(LogCommand::commit_offsets("g", STORE_TIME_MS, &[("T".into(), 0, 0)]).unwrap()),
        log.cmd(LogCommand::node_info(3, "10.0.0.3:10911").unwrap()),
    ];
    let results = apply(&mut sm, entries).await;
    let refusal = |i: usize| match &results[i] {
        ApplyResult::Refused(why) => why.clone(),
        other => panic!("entry {i} not refused: {other:?}"),
    };
    assert!(refusal(0).contains("topic T does not exist"));
    assert!(refusal(2).contains("queue 2"));
    assert!(refusal(5).contains("queue 1"));
    assert!(matches!(
        results[3],
        ApplyResult::Stored {
            queue_id: 1,
            ref offsets,
            ..
        } if offsets[0] == 0
    ));
    assert!(matches!(
        results[6],
        ApplyResult::Stored {
            queue_id: 0,
            ref offsets,
            ..
        } if offsets[0] == 0
    ));
    for i in [1, 4, 7, 8, 9, 10] {
        assert_eq!(results[i], ApplyResult::Done, "entry {i}");
    }
    // Refused sends took no offset.
    assert_eq!(state.queue_offsets("T", 0), Some((0, 1)));
    assert_eq!(state.queue_offsets("T", 1), Some((0, 1)));
    assert_eq!(state.topic("T").map(|t| t.write_queue_nums), Some(1));
    assert_eq!(state.topics().len(), 1);
    assert_eq!(
        state.consumer_offset("g", "T", 0),
        Some(0),
        "a commit may move an offset back"
    );
    assert_eq!(state.consumer_offset("g", "T", 1), Some(1));
    assert_eq!(state.consumer_offset("g", "T", 2), None);
    assert_eq!(
        state.group_offsets("g"),
        [("T".to_string(), 0, 0), ("T".to_string(), 1, 1)]
    );
    assert_eq!(state.consumer_groups(), ["g", "h"]);
    assert_eq!(state.node_client_addr(3).as_deref(), Some("10.0.0.3:10911"));

    // Deleting the topic drops its queues and offsets; created again, it starts at 0.
    let entries = vec![
        log.cmd(LogCommand::delete_topic("T").unwrap()),
        log.cmd(send("T", 0, "", &["deleted"])),
        log.cmd(LogCommand::upsert_topic(&topic("T", 1))),
        log.cmd(send("T", 0, "", &["new life"])),
    ];
    let results = apply(&mut sm, entries).await;
    assert_eq!(results[0], ApplyResult::Done);
    assert!(matches!(results[1], ApplyResult::Refused(_)));
    assert!(matches!(
        results[3],
        ApplyResult::Stored { ref offsets, .. } if offsets[0] == 0
    ));
    assert_eq!(state.queue_offsets("T", 0), Some((0, 1)));
    assert_eq!(state.queue_offsets("T", 1), None);
    assert!(state.consumer_groups().is_empty());
    let unit = state.units("T", 0, 0, 1)[0];
    assert_eq!(read_back(&log.store, &unit).body, &b"new life"[..]);
}

#[tokio::test]
async fn an_undecodable_command_is_applied_as_a_refusal_on_every_replica() {
    let mut log = Log::new();
    log.cmd(LogCommand::upsert_topic(&topic("T", 1)));
    // A send whose header is cut short, a batch whose second part's record overruns it, and
    // an unknown tag: each is refused, the good part of the batch is stored, and applying
    // goes on.
    log.cmd(LogCommand(Bytes::from_static(&[1, 0, 0])));
    let good = send("T", 0, "", &["good"]);
    let bad = send("T", 0, "", &["bad"]);
    let Ok(command::Command::Send { records_offset, .. }) = bad.decode() else {
        panic!("not a send")
    };
    let mut bad = bad.0.to_vec();
    // The record's length field now claims more bytes than the command has.
    bad[records_offset..records_offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let bad = LogCommand(Bytes::from(bad));
    log.cmd(LogCommand::batch([&good, &bad].into_iter()).unwrap());
    log.cmd(LogCommand(Bytes::from_static(&[99, 1, 2, 3])));
    log.cmd(send("T", 0, "", &["after"]));

    let mut sms = Vec::new();
    for _ in 0..2 {
        let mut sm = StateMachine::open(log.store.clone()).unwrap();
        let results = apply(&mut sm, log.entries.clone()).await;
        sms.push((sm, results));
    }
    let (sm, results) = &sms[0];
    let refusal = |r: &ApplyResult| match r {
        ApplyResult::Refused(why) => why.clone(),
        other => panic!("not refused: {other:?}"),
    };
    let why = refusal(&results[1]);
    assert!(
        why.contains("log entry 1") && why.contains("truncated send header"),
        "{why}"
    );
    let ApplyResult::Batch(parts) = &results[2] else {
        panic!("{:?}", results[2])
    };
    assert!(matches!(&parts[0], ApplyResult::Stored { offsets, .. } if offsets == &[0]));
    assert!(refusal(&parts[1]).contains("overruns"), "{:?}", parts[1]);
    assert!(refusal(&results[3]).contains("unknown command tag"));
    assert!(matches!(&results[4], ApplyResult::Stored { offsets, .. } if offsets == &[1]));
    assert_eq!(
        sm.state().last_applied().map(|l| l.index),
        Some(4),
        "applying went past the refusals"
    );
    // Both replicas refused alike.
    assert_eq!(results, &sms[1].1);
    assert_eq!(sm.state().digest(), sms[1].0.state().digest());

    // A send whose entry is not where the state machine looks is a storage error (this
    // replica's own log is wrong), not a wrong position.
    let mut other = Log::new();
    other.cmd(LogCommand::upsert_topic(&topic("T", 1)));
    other.cmd(LogCommand::upsert_topic(&topic("U", 1)));
    let not_in_log = Entry {
        log_id: other.next_log_id(),
        payload: EntryPayload::Normal(send("T", 0, "", &["x"])),
    };
    let mut sm = StateMachine::open(other.store.clone()).unwrap();
    let err = sm.apply(vec![not_in_log]).await.unwrap_err().to_string();
    assert!(
        err.contains("log entry 2") && err.contains("not in the log"),
        "{err}"
    );
    let mismatched = Entry {
        log_id: other.entries[1].log_id,
        payload: EntryPayload::Normal(send("T", 0, "", &["x"])),
    };
    let err = sm.apply(vec![mismatched]).await.unwrap_err().to_string();
    assert!(err.contains("must be the command bytes"), "{err}");
}

#[tokio::test]
async fn a_rebuilt_state_machine_equals_the_original() {
    let log = busy_log();
    let one = replay(&log).await;
    // Another replica of the same log, fed in different batches.
    let mut two = StateMachine::open(log.store.clone()).unwrap();
    for chunk in log.entries.chunks(7) {
        apply(&mut two, chunk.to_vec()).await;
    }
    let (a, b) = (dump(&one.state()), dump(&two.state()));
    assert_eq!(a, b);
    // The log really had something to say.
    assert_eq!(a.topics.len(), 2);
    assert!(a.units.iter().map(|(_, _, u)| u.len()).sum::<usize>() > 50);
    assert!(a.queues.contains(&QueueRange {
        topic: "Gone".into(),
        queue_id: 1,
        min_offset: 0,
        max_offset: 1
    }));
    assert_eq!(
        a.offsets,
        [(
            "g".to_string(),
            vec![("T".to_string(), 0, 5), ("T".to_string(), 1, 7)]
        )]
    );
    assert_eq!(a.client_addrs[0], (0, Some("127.0.0.1:10911".into())));
}

#[tokio::test]
async fn snapshot_install_carries_topics_offsets_and_queue_ends() {
    let log = busy_log();
    let mut leader = replay(&log).await;
    assert!(leader.get_current_snapshot().await.unwrap().is_none());
    let snap = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let source = dump(&leader.state());
    assert_eq!(snap.meta.last_log_id, source.last_applied);
    assert_eq!(snap.meta.last_membership, source.membership);
    let current = leader.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snap.meta);
    assert_eq!(
        current.snapshot.into_inner(),
        snap.snapshot.get_ref().clone()
    );

    // A follower far behind: an empty log of its own.
    let follower_log = Log::new();
    let mut follower = StateMachine::open(follower_log.store.clone()).unwrap();
    let rx = follower.state().subscribe();
    let mut received = follower.begin_receiving_snapshot().await.unwrap();
    received.write_all(snap.snapshot.get_ref()).unwrap();
    follower
        .install_snapshot(&snap.meta, received)
        .await
        .unwrap();
    assert!(rx.has_changed().unwrap(), "an install wakes long polls");

    let installed = dump(&follower.state());
    assert_eq!(installed.last_applied, source.last_applied);
    assert_eq!(installed.membership, source.membership);
    assert_eq!(installed.topics, source.topics);
    assert_eq!(installed.offsets, source.offsets);
    assert_eq!(installed.client_addrs, source.client_addrs);
    assert_eq!(
        follower.applied_state().await.unwrap(),
        (source.last_applied, source.membership.clone())
    );
    // Same queue ends; no message before them is readable on the follower.
    assert_eq!(installed.queues.len(), source.queues.len());
    for (got, want) in installed.queues.iter().zip(&source.queues) {
        assert_eq!(
            (&got.topic, got.queue_id, got.max_offset),
            (&want.topic, want.queue_id, want.max_offset)
        );
        assert_eq!(got.min_offset, got.max_offset);
        assert!(follower
            .state()
            .units(&got.topic, got.queue_id, 0, 10)
            .is_empty());
    }
    assert_eq!(
        follower.get_current_snapshot().await.unwrap().unwrap().meta,
        snap.meta
    );

    // The follower's queues continue from the snapshot: its log continues after the snapshot.
    let (max_t3, term) = (
        follower.state().queue_offsets("T", 3).unwrap().1,
        snap.meta.last_log_id.unwrap().leader_id.term,
    );
    let next = snap.meta.last_log_id.unwrap().index + 1;
    follower_log
        .store
        .purge_up_to(raft_log::LogId {
            term,
            index: next - 1,
        })
        .unwrap();
    let cmd = send("T", 3, "", &["after the snapshot"]);
    follower_log
        .store
        .append(&[NewEntry {
            index: next,
            term,
            kind: EntryKind::Normal,
            body: &cmd.0,
        }])
        .unwrap();
    let entry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 0), next),
        payload: EntryPayload::Normal(cmd),
    };
    let result = apply(&mut follower, vec![entry]).await;
    let [ApplyResult::Stored { offsets, .. }] = &result[..] else {
        panic!("{result:?}")
    };
    assert_eq!(offsets[0], max_t3);
    let unit = follower.state().units("T", 3, 0, 10)[0];
    assert_eq!(unit.queue_offset, max_t3);
    assert_eq!(
        read_back(&follower_log.store, &unit).body,
        &b"after the snapshot"[..]
    );

    // The installed snapshot survives a restart of the follower (its log is purged up to it).
    let before = dump(&follower.state());
    drop(follower);
    let Log { dir, store, .. } = follower_log;
    drop(store);
    let store = open_store(&dir);
    let mut restarted = StateMachine::open(store.clone()).unwrap();
    assert_eq!(
        restarted
            .get_current_snapshot()
            .await
            .unwrap()
            .unwrap()
            .meta,
        snap.meta
    );
    assert_eq!(restarted.state().last_applied(), snap.meta.last_log_id);
    // openraft re-applies the entry after the snapshot.
    let entry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 0), next),
        payload: EntryPayload::Normal(LogCommand(store.read(next).unwrap().body)),
    };
    apply(&mut restarted, vec![entry]).await;
    assert_eq!(dump(&restarted.state()), before);
}

#[tokio::test]
async fn restart_from_a_snapshot_reindexes_the_retained_messages() {
    let log = busy_log();
    let n = log.entries.len();
    let k = n - 12; // the snapshot's last entry
    let mut sm = StateMachine::open(log.store.clone()).unwrap();
    apply(&mut sm, log.entries(0..k + 1)).await;
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log.entries[k].log_id));
    apply(&mut sm, log.entries(k + 1..n)).await;
    let original = dump(&sm.state());
    drop(sm);

    // The whole log is still there: the restart is exactly what the original built.
    let mut restarted = StateMachine::open(log.store.clone()).unwrap();
    assert_eq!(
        restarted.applied_state().await.unwrap().0,
        Some(log.entries[k].log_id)
    );
    apply(&mut restarted, log.entries(k + 1..n)).await;
    assert_eq!(dump(&restarted.state()), original);
    drop(restarted);

    // Purged up to entry 20: the first topic configs and some sends are gone; T is
    // configured again, and "Gone" deleted and created again, inside the retained part.
    // Every retained message is readable again, at the same offsets as before; the purged
    // ones are not.
    let purged = 20usize;
    let Log {
        dir,
        store,
        entries,
        ..
    } = log;
    let purge_id = entries[purged].log_id;
    store
        .purge_up_to(raft_log::LogId {
            term: purge_id.leader_id.term,
            index: purge_id.index,
        })
        .unwrap();
    drop(store);
    let store = open_store(&dir);
    assert_eq!(store.first_index(), Some(purged as u64 + 1));
    let mut restarted = StateMachine::open(store.clone()).unwrap();
    apply(&mut restarted, entries[k + 1..n].to_vec()).await;
    let rebuilt = dump(&restarted.state());
    assert_eq!(rebuilt.topics, original.topics);
    assert_eq!(rebuilt.offsets, original.offsets);
    assert_eq!(rebuilt.last_applied, original.last_applied);
    assert_eq!(rebuilt.membership, original.membership);
    let first_retained = store.locate(purged as u64 + 1).unwrap().0;
    assert_eq!(rebuilt.units.len(), original.units.len());
    for ((topic, queue_id, units), (_, _, all)) in rebuilt.units.iter().zip(&original.units) {
        let retained: Vec<CqUnit> = all
            .iter()
            .copied()
            .filter(|u| u.position >= first_retained)
            .collect();
        assert_eq!(units, &retained, "{topic}/{queue_id}");
        let range = rebuilt
            .queues
            .iter()
            .find(|q| &q.topic == topic && q.queue_id == *queue_id)
            .unwrap();
        assert_eq!(range.max_offset, all.len() as u64);
        assert_eq!(range.min_offset, all.len() as u64 - retained.len() as u64);
    }
    assert!(
        rebuilt
            .queues
            .iter()
            .any(|q| q.topic == "T" && q.min_offset > 0),
        "some messages were purged"
    );
    assert!(rebuilt
        .queues
        .iter()
        .any(|q| q.topic == "Gone" && q.min_offset == 0 && q.max_offset == 1));
    drop(restarted);

    // A log purged past its snapshot, or purged with no snapshot at all, cannot restart.
    let past = entries[k + 2].log_id;
    store
        .purge_up_to(raft_log::LogId {
            term: past.leader_id.term,
            index: past.index,
        })
        .unwrap();
    let err = StateMachine::open(store.clone()).err().unwrap().to_string();
    assert!(err.contains("past its snapshot"), "{err}");
    std::fs::remove_file(dir.path().join("snapshot.meta")).unwrap();
    let err = StateMachine::open(store).err().unwrap().to_string();
    assert!(err.contains("holds no snapshot"), "{err}");
}

/// A send of `keys` (one message each, its body the key) to queue 0 of T at `at_ms`.
fn keyed_send(keys: &[&str], at_ms: u64) -> LogCommand {
    let msgs: Vec<StoredMessage> = keys
        .iter()
        .map(|k| {
            let mut m = message("T", 0, "", k);
            m.properties.insert(command::UNIQ_KEY.into(), (*k).into());
            m
        })
        .collect();
    LogCommand::send("T", 0, at_ms, &msgs).unwrap()
}

/// The queue offsets a send was answered with (duplicates and all).
fn offsets_of(result: &ApplyResult) -> Vec<u64> {
    match result {
        ApplyResult::Stored { offsets, .. } => offsets.clone(),
        other => panic!("not stored: {other:?}"),
    }
}

#[tokio::test]
async fn replicas_restarted_from_snapshots_drop_the_same_retries_and_agree_on_the_digest() {
    use broker::command::DedupSettings;
    const T0: u64 = 1_700_000_000_000;
    let mut log = Log::new();
    log.append(EntryPayload::Membership(membership()));
    log.cmd(LogCommand::upsert_topic(&topic("T", 1)));
    log.cmd(LogCommand::dedup(DedupSettings {
        window_ms: 60_000,
        max_keys: 1_000,
    }));
    for i in 0..20u64 {
        log.cmd(keyed_send(
            &[&format!("k{i}"), &format!("j{i}")],
            T0 + i * 1_000,
        ));
    }
    let k = log.entries.len() - 1; // the snapshot's last entry
                                   // After the snapshot: retries of keys stored before it (k3 within the window), a send
                                   // with a key twice, and, after the clock has moved past the window, a retry of k19 that
                                   // is still remembered and one of k0 that is not.
    log.cmd(keyed_send(&["k3", "new1"], T0 + 30_000));
    log.cmd(keyed_send(&["twice", "twice", "j7"], T0 + 31_000));
    log.cmd(keyed_send(&["k19", "k0"], T0 + 70_000));
    log.cmd(keyed_send(&["twice"], T0 + 71_000));
    let n = log.entries.len();

    // A: applies everything straight through.
    let mut a = StateMachine::open(log.store.clone()).unwrap();
    apply(&mut a, log.entries(0..k + 1)).await;
    let snap = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let at_snapshot = a.state().digest();
    let after_a = apply(&mut a, log.entries(k + 1..n)).await;
    let offsets: Vec<Vec<u64>> = after_a.iter().map(offsets_of).collect();
    // k3 and j7 are retries (their original offsets), k19 too; k0 has left the window.
    assert_eq!(offsets[0], [6, 40]);
    assert_eq!(offsets[1], [41, 41, 15]);
    assert_eq!(offsets[2], [38, 42]);
    assert_eq!(offsets[3], [41], "twice is remembered from its first send");

    // B: restarts from the snapshot it built (its whole log is still there), then applies
    // the rest as openraft would.
    let restarted_digest = {
        let mut b = StateMachine::open(log.store.clone()).unwrap();
        assert_eq!(
            b.state().digest(),
            at_snapshot,
            "the restart is the snapshot's state"
        );
        let after_b = apply(&mut b, log.entries(k + 1..n)).await;
        assert_eq!(after_b.iter().map(offsets_of).collect::<Vec<_>>(), offsets);
        b.state().digest()
    };
    assert_eq!(restarted_digest, a.state().digest());

    // C: a new replica that installs A's snapshot (no messages, no log before it), then gets
    // the entries after it: it drops the same retries, from the snapshot's retry memory.
    let c_log = Log::new();
    let mut c = StateMachine::open(c_log.store.clone()).unwrap();
    let mut received = c.begin_receiving_snapshot().await.unwrap();
    received.write_all(snap.snapshot.get_ref()).unwrap();
    c.install_snapshot(&snap.meta, received).await.unwrap();
    assert_eq!(c.state().digest(), at_snapshot);
    let last = snap.meta.last_log_id.unwrap();
    c_log
        .store
        .purge_up_to(raft_log::LogId {
            term: last.leader_id.term,
            index: last.index,
        })
        .unwrap();
    let mut after_c = Vec::new();
    for entry in log.entries(k + 1..n) {
        let EntryPayload::Normal(cmd) = &entry.payload else {
            unreachable!()
        };
        c_log
            .store
            .append(&[NewEntry {
                index: entry.log_id.index,
                term: entry.log_id.leader_id.term,
                kind: EntryKind::Normal,
                body: &cmd.0,
            }])
            .unwrap();
        after_c.extend(apply(&mut c, vec![entry]).await);
    }
    assert_eq!(after_c.iter().map(offsets_of).collect::<Vec<_>>(), offsets);
    assert_eq!(c.state().digest(), a.state().digest());

    // The digests recorded at indexes that are multiples of 1024: only index 0 in so short a
    // log; and the digest does move with what is applied.
    let checkpoints: Vec<u64> = a
        .state()
        .digest_checkpoints()
        .iter()
        .map(|(l, _)| l.index)
        .collect();
    assert_eq!(checkpoints, [0]);
    assert_ne!(at_snapshot.1, a.state().digest().1);
}

#[tokio::test]
async fn a_snapshot_of_version_1_still_restores() {
    // What a broker of the previous version persisted: a JSON image without retry memory.
    let log = busy_log();
    let mut sm = replay(&log).await;
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let image = broker::state::SnapshotImage::decode(snap.snapshot.get_ref()).unwrap();
    let mut v1 = serde_json::to_value(&image).unwrap();
    v1["version"] = 1.into();
    let fields = v1.as_object_mut().unwrap();
    fields.remove("dedup");
    fields.remove("digest");
    let v1 = serde_json::to_vec(&v1).unwrap();
    let follower_log = Log::new();
    let mut follower = StateMachine::open(follower_log.store.clone()).unwrap();
    let mut received = follower.begin_receiving_snapshot().await.unwrap();
    received.write_all(&v1).unwrap();
    follower
        .install_snapshot(&snap.meta, received)
        .await
        .unwrap();
    assert_eq!(dump(&follower.state()).topics, dump(&sm.state()).topics);
}
