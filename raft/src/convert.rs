//! Conversions between the Raft wire format (`raftmq.v1` in `raft.proto`) and openraft's types:
//! the one place where a protobuf field becomes an openraft field and back.
//!
//! Encoding never fails. Decoding checks what openraft would otherwise trust blindly (a
//! missing vote, an entry without its payload, a committed vote that names no leader, a voter
//! without an address) and fails with a [`WireError`], which a server turns into
//! `INVALID_ARGUMENT`; nothing here panics on input from the network.
//!
//! Log ids: raftmq runs openraft with `single-term-leader`, where a committed leader id is the
//! term alone, so a log id is (term, index). The proto `LogId.node_id` is therefore written as 0
//! and ignored when read.

use std::collections::{BTreeMap, BTreeSet};

use openraft::error::{InstallSnapshotError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, LeaderId, SnapshotSegmentId};
use proto::v1 as pb;
use proto::v1::append_entries_response::Result as AppendResult;
use proto::v1::install_snapshot_response::Result as SnapshotResult;

use crate::typ::{
    Entry, EntryPayload, GroupTypes, LogId, Membership, Node, NodeId, SnapshotMeta,
    StoredMembership, Vote, WirePayload, WITNESS_NODE_ID,
};

/// A Raft message from the network that cannot be turned into its openraft counterpart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Raft message: {0}")]
pub struct WireError(String);

impl WireError {
    /// A message or entry that cannot be taken, and why.
    pub fn new(what: impl Into<String>) -> Self {
        WireError(what.into())
    }
}

impl From<WireError> for tonic::Status {
    fn from(e: WireError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// Unwraps a message field that the sender must set.
fn required<T>(field: Option<T>, name: &str) -> Result<T, WireError> {
    field.ok_or_else(|| WireError::new(format!("{name} is missing")))
}

// ---- roles ----

/// A Raft server state as the wire names it.
pub fn raft_role(state: openraft::ServerState) -> pb::RaftRole {
    match state {
        openraft::ServerState::Leader => pb::RaftRole::Leader,
        openraft::ServerState::Candidate => pb::RaftRole::Candidate,
        openraft::ServerState::Learner => pb::RaftRole::Learner,
        openraft::ServerState::Follower => pb::RaftRole::Follower,
        openraft::ServerState::Shutdown => pb::RaftRole::Shutdown,
    }
}

// ---- log ids and votes ----

/// Encodes a log id; `node_id` is 0 (see the module docs).
pub fn log_id_to_pb(log_id: &LogId) -> pb::LogId {
    pb::LogId {
        term: log_id.leader_id.term,
        node_id: 0,
        index: log_id.index,
    }
}

/// Decodes a log id, ignoring `node_id` (see the module docs).
pub fn log_id_from_pb(log_id: &pb::LogId) -> LogId {
    LogId::new(CommittedLeaderId::new(log_id.term, 0), log_id.index)
}

fn opt_log_id_to_pb(log_id: &Option<LogId>) -> Option<pb::LogId> {
    log_id.as_ref().map(log_id_to_pb)
}

fn opt_log_id_from_pb(log_id: &Option<pb::LogId>) -> Option<LogId> {
    log_id.as_ref().map(log_id_from_pb)
}

/// Encodes a vote.
pub fn vote_to_pb(vote: &Vote) -> pb::Vote {
    pb::Vote {
        term: vote.leader_id.term,
        node_id: vote.leader_id.voted_for.unwrap_or(0),
        committed: vote.committed,
        no_node: vote.leader_id.voted_for.is_none(),
    }
}

/// Decodes a vote. A committed vote must name its leader: openraft relies on that.
pub fn vote_from_pb(vote: &pb::Vote) -> Result<Vote, WireError> {
    if vote.committed && vote.no_node {
        return Err(WireError::new(format!(
            "vote of term {} is committed but names no leader",
            vote.term
        )));
    }
    let voted_for = (!vote.no_node).then_some(vote.node_id);
    Ok(Vote {
        leader_id: LeaderId {
            term: vote.term,
            voted_for,
        },
        committed: vote.committed,
    })
}

fn required_vote(vote: &Option<pb::Vote>, name: &str) -> Result<Vote, WireError> {
    vote_from_pb(required(vote.as_ref(), name)?)
}

// ---- membership ----

/// Encodes a membership config.
pub fn membership_to_pb(membership: &Membership) -> pb::Membership {
    pb::Membership {
        configs: membership
            .get_joint_config()
            .iter()
            .map(|voters| pb::VoterSet {
                node_ids: voters.iter().copied().collect(),
            })
            .collect(),
        nodes: membership
            .nodes()
            .map(|(id, node)| {
                (
                    *id,
                    pb::RaftNode {
                        address: node.addr.clone(),
                    },
                )
            })
            .collect(),
    }
}

/// Decodes a membership config: every voter set non-empty, every voter with an address.
pub fn membership_from_pb(membership: &pb::Membership) -> Result<Membership, WireError> {
    let nodes: BTreeMap<NodeId, Node> = membership
        .nodes
        .iter()
        .map(|(id, node)| {
            (
                *id,
                Node {
                    addr: node.address.clone(),
                },
            )
        })
        .collect();
    let mut configs = Vec::with_capacity(membership.configs.len());
    for voters in &membership.configs {
        let set: BTreeSet<NodeId> = voters.node_ids.iter().copied().collect();
        if set.is_empty() {
            return Err(WireError::new("membership has an empty voter set"));
        }
        if let Some(missing) = set.iter().find(|id| !nodes.contains_key(id)) {
            return Err(WireError::new(format!(
                "membership voter {missing} has no address"
            )));
        }
        configs.push(set);
    }
    // Every voter is in `nodes`, so `new` keeps both exactly as sent.
    Ok(Membership::new(configs, nodes))
}

fn stored_membership_to_pb(stored: &StoredMembership) -> pb::StoredMembership {
    pb::StoredMembership {
        log_id: opt_log_id_to_pb(stored.log_id()),
        membership: Some(membership_to_pb(stored.membership())),
    }
}

fn stored_membership_from_pb(stored: &pb::StoredMembership) -> Result<StoredMembership, WireError> {
    let membership = match &stored.membership {
        Some(m) => membership_from_pb(m)?,
        None => Membership::default(),
    };
    Ok(StoredMembership::new(
        opt_log_id_from_pb(&stored.log_id),
        membership,
    ))
}

// ---- entries ----

/// Encodes an entry. A normal entry's payload is its wire bytes, shared, not copied; with
/// `omit_payload` (an entry for a witness) it is left out, and the entry says so.
pub fn entry_to_pb<C: GroupTypes>(entry: &Entry<C>, omit_payload: bool) -> pb::Entry {
    let mut out = pb::Entry {
        log_id: Some(log_id_to_pb(&entry.log_id)),
        ..Default::default()
    };
    match &entry.payload {
        EntryPayload::<C>::Blank => out.kind = pb::EntryKind::Blank as i32,
        EntryPayload::<C>::Normal(data) => {
            out.kind = pb::EntryKind::Normal as i32;
            if omit_payload {
                out.payload_omitted = true;
            } else {
                out.payload = data.to_wire();
            }
        }
        EntryPayload::<C>::Membership(membership) => {
            out.kind = pb::EntryKind::Membership as i32;
            out.membership = Some(membership_to_pb(membership));
        }
    }
    out
}

/// Decodes an entry. Whether an entry whose payload was left out (one meant for a witness) is
/// taken is the payload type's call ([`WirePayload::from_wire`]): a data replica refuses it,
/// for it must never store a message-less copy of a message.
pub fn entry_from_pb<C: GroupTypes>(entry: &pb::Entry) -> Result<Entry<C>, WireError> {
    let log_id = log_id_from_pb(required(entry.log_id.as_ref(), "entry.log_id")?);
    let at = log_id.index;
    let payload = match pb::EntryKind::try_from(entry.kind) {
        Ok(pb::EntryKind::Blank) => EntryPayload::<C>::Blank,
        Ok(pb::EntryKind::Normal) => EntryPayload::<C>::Normal(
            C::D::from_wire(entry.payload.clone(), entry.payload_omitted)
                .map_err(|why| WireError::new(format!("entry {at}: {}", why.0)))?,
        ),
        Ok(pb::EntryKind::Membership) => {
            let membership = required(entry.membership.as_ref(), "membership entry's config")?;
            let membership = membership_from_pb(membership)?;
            if membership.get_joint_config().is_empty() {
                return Err(WireError::new(format!(
                    "membership entry {at} has no voter set"
                )));
            }
            EntryPayload::<C>::Membership(membership)
        }
        Ok(pb::EntryKind::Unspecified) | Err(_) => {
            return Err(WireError::new(format!(
                "entry {at} has unknown kind {}",
                entry.kind
            )));
        }
    };
    Ok(Entry { log_id, payload })
}

// ---- append entries ----

/// Encodes an append-entries request addressed to `target` of `group`. Entries for the
/// witness ([`WITNESS_NODE_ID`]) go without their payloads.
pub fn append_request_to_pb<C: GroupTypes>(
    group: &str,
    target: NodeId,
    req: &AppendEntriesRequest<C>,
) -> pb::AppendEntriesRequest {
    let omit = target == WITNESS_NODE_ID;
    pb::AppendEntriesRequest {
        group: group.to_owned(),
        target_node_id: target,
        vote: Some(vote_to_pb(&req.vote)),
        prev_log_id: opt_log_id_to_pb(&req.prev_log_id),
        entries: req.entries.iter().map(|e| entry_to_pb(e, omit)).collect(),
        leader_commit: opt_log_id_to_pb(&req.leader_commit),
    }
}

/// Decodes an append-entries request (its addressing is checked by the service).
pub fn append_request_from_pb<C: GroupTypes>(
    req: &pb::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<C>, WireError> {
    let entries = req
        .entries
        .iter()
        .map(entry_from_pb::<C>)
        .collect::<Result<Vec<_>, _>>()?;
    // openraft appends without checking that the batch is contiguous.
    let mut expected = req
        .prev_log_id
        .as_ref()
        .map_or(0, |p| p.index.saturating_add(1));
    for entry in &entries {
        if entry.log_id.index != expected {
            return Err(WireError::new(format!(
                "entries are not contiguous: expected index {expected}, got {}",
                entry.log_id.index
            )));
        }
        expected = expected.saturating_add(1);
    }
    Ok(AppendEntriesRequest {
        vote: required_vote(&req.vote, "append_entries.vote")?,
        prev_log_id: opt_log_id_from_pb(&req.prev_log_id),
        entries,
        leader_commit: opt_log_id_from_pb(&req.leader_commit),
    })
}

/// Encodes an append-entries response.
pub fn append_response_to_pb(resp: &AppendEntriesResponse<NodeId>) -> pb::AppendEntriesResponse {
    let result = match resp {
        AppendEntriesResponse::Success => AppendResult::Success(pb::AppendSuccess {}),
        AppendEntriesResponse::PartialSuccess(matching) => {
            AppendResult::PartialSuccess(pb::AppendPartialSuccess {
                matching: opt_log_id_to_pb(matching),
            })
        }
        AppendEntriesResponse::Conflict => AppendResult::Conflict(pb::AppendConflict {}),
        AppendEntriesResponse::HigherVote(vote) => AppendResult::HigherVote(vote_to_pb(vote)),
    };
    pb::AppendEntriesResponse {
        result: Some(result),
    }
}

/// Decodes an append-entries response.
pub fn append_response_from_pb(
    resp: &pb::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<NodeId>, WireError> {
    Ok(
        match required(resp.result.as_ref(), "append_entries response result")? {
            AppendResult::Success(_) => AppendEntriesResponse::Success,
            AppendResult::PartialSuccess(p) => {
                AppendEntriesResponse::PartialSuccess(opt_log_id_from_pb(&p.matching))
            }
            AppendResult::Conflict(_) => AppendEntriesResponse::Conflict,
            AppendResult::HigherVote(vote) => {
                AppendEntriesResponse::HigherVote(vote_from_pb(vote)?)
            }
        },
    )
}

// ---- vote ----

/// Encodes a vote request addressed to `target` of `group`.
pub fn vote_request_to_pb(
    group: &str,
    target: NodeId,
    req: &VoteRequest<NodeId>,
) -> pb::VoteRequest {
    pb::VoteRequest {
        group: group.to_owned(),
        target_node_id: target,
        vote: Some(vote_to_pb(&req.vote)),
        last_log_id: opt_log_id_to_pb(&req.last_log_id),
    }
}

/// Decodes a vote request. A candidate always votes for itself, so the vote must name a node.
pub fn vote_request_from_pb(req: &pb::VoteRequest) -> Result<VoteRequest<NodeId>, WireError> {
    let vote = required_vote(&req.vote, "vote_request.vote")?;
    if vote.leader_id.voted_for.is_none() {
        return Err(WireError::new("vote request names no candidate"));
    }
    Ok(VoteRequest {
        vote,
        last_log_id: opt_log_id_from_pb(&req.last_log_id),
    })
}

/// Encodes a vote response.
pub fn vote_response_to_pb(resp: &VoteResponse<NodeId>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_pb(&resp.vote)),
        vote_granted: resp.vote_granted,
        last_log_id: opt_log_id_to_pb(&resp.last_log_id),
    }
}

/// Decodes a vote response.
pub fn vote_response_from_pb(resp: &pb::VoteResponse) -> Result<VoteResponse<NodeId>, WireError> {
    Ok(VoteResponse {
        vote: required_vote(&resp.vote, "vote_response.vote")?,
        vote_granted: resp.vote_granted,
        last_log_id: opt_log_id_from_pb(&resp.last_log_id),
    })
}

// ---- snapshots ----

fn snapshot_meta_to_pb(meta: &SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        last_log_id: opt_log_id_to_pb(&meta.last_log_id),
        last_membership: Some(stored_membership_to_pb(&meta.last_membership)),
        snapshot_id: meta.snapshot_id.clone(),
    }
}

fn snapshot_meta_from_pb(meta: &pb::SnapshotMeta) -> Result<SnapshotMeta, WireError> {
    let last_membership = match &meta.last_membership {
        Some(m) => stored_membership_from_pb(m)?,
        None => StoredMembership::default(),
    };
    Ok(SnapshotMeta {
        last_log_id: opt_log_id_from_pb(&meta.last_log_id),
        last_membership,
        snapshot_id: meta.snapshot_id.clone(),
    })
}

/// Encodes one snapshot chunk addressed to `target` of `group`.
pub fn snapshot_request_to_pb<C: GroupTypes>(
    group: &str,
    target: NodeId,
    req: &InstallSnapshotRequest<C>,
) -> pb::InstallSnapshotRequest {
    pb::InstallSnapshotRequest {
        group: group.to_owned(),
        target_node_id: target,
        vote: Some(vote_to_pb(&req.vote)),
        meta: Some(snapshot_meta_to_pb(&req.meta)),
        offset: req.offset,
        data: req.data.clone().into(),
        done: req.done,
    }
}

/// Decodes one snapshot chunk.
pub fn snapshot_request_from_pb<C: GroupTypes>(
    req: &pb::InstallSnapshotRequest,
) -> Result<InstallSnapshotRequest<C>, WireError> {
    Ok(InstallSnapshotRequest {
        vote: required_vote(&req.vote, "install_snapshot.vote")?,
        meta: snapshot_meta_from_pb(required(req.meta.as_ref(), "install_snapshot.meta")?)?,
        offset: req.offset,
        data: req.data.to_vec(),
        done: req.done,
    })
}

fn segment_to_pb(segment: &SnapshotSegmentId) -> pb::SnapshotSegmentId {
    pb::SnapshotSegmentId {
        snapshot_id: segment.id.clone(),
        offset: segment.offset,
    }
}

fn segment_from_pb(segment: &pb::SnapshotSegmentId) -> SnapshotSegmentId {
    SnapshotSegmentId {
        id: segment.snapshot_id.clone(),
        offset: segment.offset,
    }
}

/// Encodes the outcome of a snapshot chunk: the receiver's vote, or the chunk it expected.
pub fn snapshot_response_to_pb(
    resp: &Result<InstallSnapshotResponse<NodeId>, SnapshotMismatch>,
) -> pb::InstallSnapshotResponse {
    let result = match resp {
        Ok(r) => SnapshotResult::Vote(vote_to_pb(&r.vote)),
        Err(m) => SnapshotResult::SnapshotMismatch(pb::SnapshotMismatch {
            expect: Some(segment_to_pb(&m.expect)),
            got: Some(segment_to_pb(&m.got)),
        }),
    };
    pb::InstallSnapshotResponse {
        result: Some(result),
    }
}

/// Decodes the outcome of a snapshot chunk; the mismatch is openraft's remote API error.
pub fn snapshot_response_from_pb(
    resp: &pb::InstallSnapshotResponse,
) -> Result<Result<InstallSnapshotResponse<NodeId>, InstallSnapshotError>, WireError> {
    Ok(
        match required(resp.result.as_ref(), "install_snapshot response result")? {
            SnapshotResult::Vote(vote) => Ok(InstallSnapshotResponse {
                vote: vote_from_pb(vote)?,
            }),
            SnapshotResult::SnapshotMismatch(m) => {
                Err(InstallSnapshotError::SnapshotMismatch(SnapshotMismatch {
                    expect: segment_from_pb(required(
                        m.expect.as_ref(),
                        "snapshot_mismatch.expect",
                    )?),
                    got: segment_from_pb(required(m.got.as_ref(), "snapshot_mismatch.got")?),
                }))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::testing::{Payload, TestConfig};

    type Entry = crate::typ::Entry<TestConfig>;
    type EntryPayload = crate::typ::EntryPayload<TestConfig>;

    fn lid(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 0), index)
    }

    fn membership() -> Membership {
        let nodes: BTreeMap<NodeId, Node> = [
            (0, "127.0.0.1:1"),
            (1, "127.0.0.1:2"),
            (2, "127.0.0.1:3"),
            (7, "h:9"),
        ]
        .into_iter()
        .map(|(id, a)| (id, Node { addr: a.into() }))
        .collect();
        Membership::new(
            vec![BTreeSet::from([0, 1, 2]), BTreeSet::from([1, 2])],
            nodes,
        )
    }

    /// Encodes to bytes and back, as the wire does.
    fn wire<M: prost::Message + Default>(m: &M) -> M {
        M::decode(m.encode_to_vec().as_slice()).expect("decodes what it encoded")
    }

    #[test]
    fn log_ids_carry_term_and_index_only() {
        let id = lid(5, 42);
        let pb = log_id_to_pb(&id);
        assert_eq!(
            pb,
            pb::LogId {
                term: 5,
                node_id: 0,
                index: 42
            }
        );
        assert_eq!(
            log_id_from_pb(&pb::LogId {
                term: 5,
                node_id: 9,
                index: 42
            }),
            id
        );
    }

    #[test]
    fn votes_round_trip_including_node_zero_and_no_node() {
        for vote in [
            Vote::default(),
            Vote::new(3, 0),
            Vote::new(3, 2),
            Vote::new_committed(4, 0),
            Vote::new_committed(u64::MAX, u64::MAX),
            Vote {
                leader_id: LeaderId {
                    term: 8,
                    voted_for: None,
                },
                committed: false,
            },
        ] {
            assert_eq!(vote_from_pb(&wire(&vote_to_pb(&vote))), Ok(vote), "{vote}");
        }
        let bad = pb::Vote {
            term: 2,
            node_id: 0,
            committed: true,
            no_node: true,
        };
        assert!(vote_from_pb(&bad).is_err());
    }

    #[test]
    fn entries_round_trip_and_share_payload_bytes() {
        let payload = Bytes::from_static(b"\x01command bytes");
        let entries = vec![
            Entry {
                log_id: lid(1, 0),
                payload: EntryPayload::Membership(membership()),
            },
            Entry {
                log_id: lid(1, 1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: lid(2, 2),
                payload: EntryPayload::Normal(Payload(payload.clone())),
            },
            Entry {
                log_id: lid(2, 3),
                payload: EntryPayload::Normal(Payload(Bytes::new())),
            },
        ];
        for e in &entries {
            let pb = entry_to_pb(e, false);
            if let EntryPayload::Normal(cmd) = &e.payload {
                assert_eq!(
                    pb.payload.as_ptr(),
                    cmd.0.as_ptr(),
                    "payload is not re-encoded"
                );
            }
            assert_eq!(entry_from_pb::<TestConfig>(&wire(&pb)), Ok(e.clone()));
        }
    }

    #[test]
    fn malformed_entries_are_errors() {
        let good = entry_to_pb(
            &Entry {
                log_id: lid(1, 1),
                payload: EntryPayload::Normal(Payload(Bytes::from_static(b"x"))),
            },
            false,
        );
        let cases = [
            pb::Entry {
                log_id: None,
                ..good.clone()
            },
            pb::Entry {
                kind: 0,
                ..good.clone()
            },
            pb::Entry {
                kind: 99,
                ..good.clone()
            },
            pb::Entry {
                payload_omitted: true,
                ..good.clone()
            },
            pb::Entry {
                kind: pb::EntryKind::Membership as i32,
                membership: None,
                ..good.clone()
            },
            pb::Entry {
                kind: pb::EntryKind::Membership as i32,
                membership: Some(pb::Membership::default()),
                ..good.clone()
            },
            pb::Entry {
                kind: pb::EntryKind::Membership as i32,
                membership: Some(pb::Membership {
                    configs: vec![pb::VoterSet {
                        node_ids: vec![1, 2],
                    }],
                    nodes: BTreeMap::from([(
                        1,
                        pb::RaftNode {
                            address: "a:1".into(),
                        },
                    )]),
                }),
                ..good.clone()
            },
            pb::Entry {
                kind: pb::EntryKind::Membership as i32,
                membership: Some(pb::Membership {
                    configs: vec![pb::VoterSet { node_ids: vec![] }],
                    nodes: BTreeMap::new(),
                }),
                ..good.clone()
            },
        ];
        for (i, case) in cases.iter().enumerate() {
            assert!(
                entry_from_pb::<TestConfig>(case).is_err(),
                "case {i} accepted: {case:?}"
            );
        }
        assert!(entry_from_pb::<TestConfig>(&good).is_ok());
    }

    fn append_request() -> AppendEntriesRequest<TestConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(lid(2, 9)),
            entries: vec![
                Entry {
                    log_id: lid(3, 10),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: lid(3, 11),
                    payload: EntryPayload::Normal(Payload(Bytes::from_static(b"m"))),
                },
            ],
            leader_commit: Some(lid(2, 8)),
        }
    }

    #[test]
    fn append_requests_round_trip_with_addressing() {
        let req = append_request();
        let pb = wire(&append_request_to_pb("broker-a", 2, &req));
        assert_eq!((pb.group.as_str(), pb.target_node_id), ("broker-a", 2));
        let back = append_request_from_pb::<TestConfig>(&pb).expect("decodes");
        assert_eq!(
            (
                back.vote,
                back.prev_log_id,
                back.entries,
                back.leader_commit
            ),
            (req.vote, req.prev_log_id, req.entries, req.leader_commit)
        );

        let heartbeat = AppendEntriesRequest::<TestConfig> {
            vote: Vote::new_committed(1, 0),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        let back =
            append_request_from_pb::<TestConfig>(&wire(&append_request_to_pb("g", 0, &heartbeat)))
                .expect("decodes");
        assert_eq!(
            (back.prev_log_id, back.leader_commit, back.entries.len()),
            (None, None, 0)
        );
    }

    #[test]
    fn malformed_append_requests_are_errors() {
        let pb = append_request_to_pb("g", 1, &append_request());
        assert!(
            append_request_from_pb::<TestConfig>(&pb::AppendEntriesRequest {
                vote: None,
                ..pb.clone()
            })
            .is_err()
        );
        let mut gap = pb.clone();
        gap.entries[1].log_id = Some(pb::LogId {
            term: 3,
            node_id: 0,
            index: 13,
        });
        assert!(append_request_from_pb::<TestConfig>(&gap).is_err());
        let mut wrong_start = pb.clone();
        wrong_start.prev_log_id = None;
        assert!(append_request_from_pb::<TestConfig>(&wrong_start).is_err());
    }

    #[test]
    fn append_responses_round_trip() {
        for resp in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::PartialSuccess(Some(lid(4, 17))),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(9, 2)),
            AppendEntriesResponse::HigherVote(Vote::new_committed(9, 0)),
        ] {
            assert_eq!(
                append_response_from_pb(&wire(&append_response_to_pb(&resp))),
                Ok(resp)
            );
        }
        assert!(append_response_from_pb(&pb::AppendEntriesResponse { result: None }).is_err());
    }

    #[test]
    fn votes_requests_and_responses_round_trip() {
        let req = VoteRequest {
            vote: Vote::new(7, 0),
            last_log_id: Some(lid(6, 100)),
        };
        let pb = wire(&vote_request_to_pb("g", 1, &req));
        assert_eq!((pb.group.as_str(), pb.target_node_id), ("g", 1));
        assert_eq!(vote_request_from_pb(&pb), Ok(req));
        let fresh = VoteRequest {
            vote: Vote::new(1, 2),
            last_log_id: None,
        };
        assert_eq!(
            vote_request_from_pb(&vote_request_to_pb("g", 0, &fresh)),
            Ok(fresh)
        );
        let no_candidate = pb::VoteRequest {
            vote: Some(pb::Vote {
                term: 1,
                node_id: 0,
                committed: false,
                no_node: true,
            }),
            ..Default::default()
        };
        assert!(vote_request_from_pb(&no_candidate).is_err());
        assert!(vote_request_from_pb(&pb::VoteRequest::default()).is_err());

        for resp in [
            VoteResponse {
                vote: Vote::new(7, 0),
                vote_granted: true,
                last_log_id: Some(lid(6, 100)),
            },
            VoteResponse {
                vote: Vote::new_committed(8, 2),
                vote_granted: false,
                last_log_id: None,
            },
            VoteResponse {
                vote: Vote::default(),
                vote_granted: false,
                last_log_id: None,
            },
        ] {
            assert_eq!(
                vote_response_from_pb(&wire(&vote_response_to_pb(&resp))),
                Ok(resp)
            );
        }
        assert!(vote_response_from_pb(&pb::VoteResponse::default()).is_err());
    }

    #[test]
    fn snapshot_chunks_round_trip() {
        let req = InstallSnapshotRequest::<TestConfig> {
            vote: Vote::new_committed(3, 1),
            meta: SnapshotMeta {
                last_log_id: Some(lid(3, 500)),
                last_membership: StoredMembership::new(Some(lid(1, 0)), membership()),
                snapshot_id: "3-500-1".into(),
            },
            offset: 4096,
            data: vec![1, 2, 3, 0, 255],
            done: true,
        };
        let pb = wire(&snapshot_request_to_pb("g", 2, &req));
        assert_eq!((pb.group.as_str(), pb.target_node_id), ("g", 2));
        assert_eq!(snapshot_request_from_pb::<TestConfig>(&pb), Ok(req.clone()));

        let empty = InstallSnapshotRequest::<TestConfig> {
            meta: SnapshotMeta::default(),
            offset: 0,
            data: vec![],
            done: false,
            ..req
        };
        assert_eq!(
            snapshot_request_from_pb::<TestConfig>(&wire(&snapshot_request_to_pb("g", 2, &empty))),
            Ok(empty)
        );
        assert!(
            snapshot_request_from_pb::<TestConfig>(&pb::InstallSnapshotRequest {
                meta: None,
                ..pb.clone()
            })
            .is_err()
        );
        assert!(
            snapshot_request_from_pb::<TestConfig>(&pb::InstallSnapshotRequest {
                vote: None,
                ..pb
            })
            .is_err()
        );
    }

    #[test]
    fn snapshot_responses_round_trip() {
        let ok = || InstallSnapshotResponse {
            vote: Vote::new_committed(3, 1),
        };
        let back = snapshot_response_from_pb(&wire(&snapshot_response_to_pb(&Ok(ok()))));
        assert_eq!(back, Ok(Ok(ok())));

        let mismatch = SnapshotMismatch {
            expect: SnapshotSegmentId {
                id: "s1".into(),
                offset: 0,
            },
            got: SnapshotSegmentId {
                id: "s1".into(),
                offset: 8192,
            },
        };
        let back =
            snapshot_response_from_pb(&wire(&snapshot_response_to_pb(&Err(mismatch.clone()))));
        assert_eq!(
            back,
            Ok(Err(InstallSnapshotError::SnapshotMismatch(mismatch)))
        );

        assert!(snapshot_response_from_pb(&pb::InstallSnapshotResponse { result: None }).is_err());
        let half = pb::InstallSnapshotResponse {
            result: Some(SnapshotResult::SnapshotMismatch(pb::SnapshotMismatch {
                expect: None,
                got: None,
            })),
        };
        assert!(snapshot_response_from_pb(&half).is_err());
    }

    #[test]
    fn wire_errors_become_invalid_argument() {
        let status: tonic::Status = WireError::new("x").into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
