//! The openraft types the Raft log speaks: every openraft alias of the crate lives here.
//!
//! raftmq runs openraft 0.9 with `storage-v2` and `single-term-leader` (standard Raft: at most
//! one leader per term). Under `single-term-leader` a committed leader id is just a term, so an
//! openraft [`LogId`] is exactly the (term, index) pair that every entry header on disk records.
//! Without the feature a log id would also carry the leader's node id, which the log format has
//! no room for; `meta_codec` reads `Vote::leader_id.voted_for`, a field only that feature has, so
//! dropping it fails to compile instead of silently losing node ids.
//!
//! The application data type (`C::D`) is the broker's business; the log only needs to turn it
//! into entry bodies and back, which is what [`LogPayload`] asks of it.

use bytes::Bytes;
use openraft::RaftTypeConfig;

/// A replica's id inside its broker group (`dLegerSelfId`, or the brokerId of a classic group).
pub type NodeId = u64;
/// What membership entries carry about a replica: its address.
pub type Node = openraft::BasicNode;
/// An openraft log id: (term, index).
pub type LogId = openraft::LogId<NodeId>;
/// The vote a replica persists before answering a vote request.
pub type Vote = openraft::Vote<NodeId>;
/// The voter and learner sets of a group, as stored in membership entries.
pub type Membership = openraft::Membership<NodeId, Node>;
/// A membership and the log id of the entry that carried it (state machines keep the last one).
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// What a snapshot covers: last log id, last membership, snapshot id.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// What openraft expects every storage call to fail with.
pub type StorageError = openraft::StorageError<NodeId>;
/// The IO half of [`StorageError`]: which subject failed, how, and why.
pub type StorageIOError = openraft::StorageIOError<NodeId>;
/// An openraft log entry of type config `C`.
pub type Entry<C> = openraft::Entry<C>;
/// The payload of an [`Entry`].
pub type EntryPayload<C> = openraft::EntryPayload<C>;
/// Last purged and last present log id, as `get_log_state` reports them.
pub type LogState<C> = openraft::storage::LogState<C>;
/// The callback an append completes once its entries are durable.
pub type LogFlushed<C> = openraft::storage::LogFlushed<C>;

/// Why an entry body did not decode into a payload.
pub type DecodeError = Box<dyn std::error::Error + Send + Sync>;

/// How application data (a type config's `D`) is laid out in the body of a `Normal` entry.
///
/// `encode_into` appends to a buffer that holds every entry of one append, so a batch costs one
/// allocation. `decode` gets the body as [`Bytes`] pointing into the segment's page cache: a
/// payload may keep slices of it without copying. Bodies come back exactly as encoded (their
/// CRC is checked on every read), yet a body that does not decode must be an error, never a
/// panic: the adapter reports it to openraft as a storage error naming the entry's index.
pub trait LogPayload: Sized {
    /// Appends this payload's encoding to `buf`.
    fn encode_into(&self, buf: &mut Vec<u8>);

    /// Rebuilds a payload from a body that [`LogPayload::encode_into`] wrote.
    fn decode(body: Bytes) -> Result<Self, DecodeError>;

    /// The payload's encoding when it already holds it as bytes: appended from there, without
    /// a copy through [`LogPayload::encode_into`]. Must equal what `encode_into` writes.
    fn encoded(&self) -> Option<&[u8]> {
        None
    }

    /// An identity by which a proposer recognizes this payload while it is in flight, for an
    /// [`AppendObserver`] (the broker uses the address of the payload's buffer). `None`, the
    /// default, means nobody waits for this payload's local append.
    fn append_token(&self) -> Option<usize> {
        None
    }
}

/// An entry whose payload has an [`LogPayload::append_token`], now in the local log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedToken {
    pub token: usize,
    pub index: u64,
    /// Where the entry (its header) starts in the log.
    pub position: u64,
}

/// Told of entries with an append token once they are in the local log as durably as the
/// flush mode promises (after the fsync under `SYNC_FLUSH`), at the moment openraft is told.
/// A leader that acknowledges writes on its own append (RocketMQ's ASYNC_MASTER) waits for
/// this instead of the commit. Called on the flusher thread or the appending task: it must
/// not block.
pub type AppendObserver = std::sync::Arc<dyn Fn(&[AppendedToken]) + Send + Sync>;

/// Told that the entries from `from` to the end of the log are about to be removed: a Raft
/// conflict, a leader that does not have them (a deposed leader's uncommitted tail). Called on
/// openraft's storage task before the removal, so it may still read them from the store (to
/// count what is given up, say); it must not append or truncate.
pub type TruncateObserver = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// UTF-8 text (openraft's default `D`, handy in tests and tools).
impl LogPayload for String {
    fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.as_bytes());
    }

    fn encoded(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }

    fn decode(body: Bytes) -> Result<Self, DecodeError> {
        Ok(String::from_utf8(body.to_vec())?)
    }
}

/// Raw bytes, stored as they are.
impl LogPayload for Vec<u8> {
    fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self);
    }

    fn decode(body: Bytes) -> Result<Self, DecodeError> {
        Ok(body.to_vec())
    }
}

/// The type configs the Raft log can store: node ids are [`NodeId`], nodes are [`Node`],
/// entries are openraft's own [`Entry`], and the application data is a [`LogPayload`].
///
/// Implemented for every type config that fits; the broker declares its own with
/// `openraft::declare_raft_types!` and gets this for free.
pub trait LogTypeConfig:
    RaftTypeConfig<NodeId = NodeId, Node = Node, Entry = Entry<Self>, D: LogPayload>
{
}

impl<C> LogTypeConfig for C where
    C: RaftTypeConfig<NodeId = NodeId, Node = Node, Entry = Entry<C>, D: LogPayload>
{
}
