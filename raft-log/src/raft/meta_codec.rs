//! Payloads of the two metadata files the adapter owns. Each file is replaced atomically by
//! [`crate::meta`], whose header carries a magic, a version and a CRC; the payloads are fixed
//! little-endian fields:
//!
//! ```text
//! vote.meta       term u64 | has_voted_for u8 (0/1) | voted_for u64 (0 if none) | committed u8
//!                 (18 bytes)
//! committed.meta  empty (no committed log id)  or  term u64 | index u64  (16 bytes)
//! ```

use super::typ::{NodeId, Vote};
use crate::store;

/// Name of the metadata file that holds the vote.
pub const VOTE_META: &str = "vote";
/// Name of the metadata file that holds the committed log id.
pub const COMMITTED_META: &str = "committed";

const VOTE_LEN: usize = 18;
const LOG_ID_LEN: usize = 16;

/// The payload of `vote.meta`.
pub fn encode_vote(vote: &Vote) -> [u8; VOTE_LEN] {
    let mut b = [0u8; VOTE_LEN];
    b[..8].copy_from_slice(&vote.leader_id.term.to_le_bytes());
    if let Some(node) = vote.leader_id.voted_for {
        b[8] = 1;
        b[9..17].copy_from_slice(&node.to_le_bytes());
    }
    b[17] = u8::from(vote.committed);
    b
}

/// Decodes the payload of `vote.meta`; `Err` says what is wrong with it.
pub fn decode_vote(b: &[u8]) -> Result<Vote, String> {
    if b.len() != VOTE_LEN {
        return Err(format!("{} bytes, a vote has {VOTE_LEN}", b.len()));
    }
    let term = u64_at(b, 0);
    let voted_for = match b[8] {
        0 => None,
        1 => Some(u64_at(b, 9) as NodeId),
        other => return Err(format!("voted-for flag is {other}, not 0 or 1")),
    };
    let committed = match b[17] {
        0 => false,
        1 => true,
        other => return Err(format!("committed flag is {other}, not 0 or 1")),
    };
    Ok(Vote {
        leader_id: openraft::LeaderId { term, voted_for },
        committed,
    })
}

/// The payload of `committed.meta`.
pub fn encode_committed(committed: Option<store::LogId>) -> Vec<u8> {
    match committed {
        None => Vec::new(),
        Some(id) => {
            let mut b = Vec::with_capacity(LOG_ID_LEN);
            b.extend_from_slice(&id.term.to_le_bytes());
            b.extend_from_slice(&id.index.to_le_bytes());
            b
        }
    }
}

/// Decodes the payload of `committed.meta`; `Err` says what is wrong with it.
pub fn decode_committed(b: &[u8]) -> Result<Option<store::LogId>, String> {
    match b.len() {
        0 => Ok(None),
        LOG_ID_LEN => Ok(Some(store::LogId {
            term: u64_at(b, 0),
            index: u64_at(b, 8),
        })),
        n => Err(format!(
            "{n} bytes, a committed log id has 0 or {LOG_ID_LEN}"
        )),
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_round_trip() {
        let votes = [
            Vote::default(),
            Vote::new(3, 2),
            Vote::new_committed(u64::MAX, u64::MAX),
        ];
        for vote in votes {
            assert_eq!(decode_vote(&encode_vote(&vote)).unwrap(), vote);
        }
    }

    #[test]
    fn committed_round_trips() {
        for id in [
            None,
            Some(store::LogId {
                term: 5,
                index: 1 << 40,
            }),
        ] {
            assert_eq!(decode_committed(&encode_committed(id)).unwrap(), id);
        }
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert!(decode_vote(&[0; 17]).is_err());
        let mut bad = encode_vote(&Vote::new(1, 1));
        bad[17] = 7;
        assert!(decode_vote(&bad).is_err());
        assert!(decode_committed(&[0; 8]).is_err());
    }
}
