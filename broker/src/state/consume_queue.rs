//! A consume queue: the index of one (topic, queueId), from dense queue offsets to message
//! records in the commitlog.
//!
//! Each message takes one 20-byte unit, RocketMQ's layout (little-endian here, like every
//! other raftmq format):
//! ```text
//! position u64 (log position of the record's `len` field) | size u32 | tags_hash u64
//! ```
//! The unit at queue offset `o` lives at `units[o - base]`; `base` is the smallest offset this
//! replica can read (0, or what a snapshot install or a purge left behind). The queue is kept
//! in memory for now; the same units are what a consume-queue file will hold.

/// Bytes per unit, as in RocketMQ's consume queue files.
pub const CQ_UNIT_LEN: usize = 20;

/// One message as its consume queue indexes it (RocketMQ's `CqUnit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqUnit {
    /// Dense offset of the message within its queue.
    pub queue_offset: u64,
    /// Log position of the message record (see [`crate::command`]).
    pub position: u64,
    /// Size of the whole record, header included.
    pub size: u32,
    /// [`crate::command::tags_hash`] of the message's tag, so tag filters need no log read.
    pub tags_hash: u64,
}

/// The consume queue of one (topic, queueId).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumeQueue {
    /// Queue offset of `units[0]`: the smallest offset still readable here.
    base: u64,
    /// Encoded 20-byte units rather than a struct, which would be padded to 24 bytes.
    units: Vec<[u8; CQ_UNIT_LEN]>,
}

fn encode_unit(position: u64, size: u32, tags_hash: u64) -> [u8; CQ_UNIT_LEN] {
    let mut unit = [0u8; CQ_UNIT_LEN];
    unit[..8].copy_from_slice(&position.to_le_bytes());
    unit[8..12].copy_from_slice(&size.to_le_bytes());
    unit[12..].copy_from_slice(&tags_hash.to_le_bytes());
    unit
}

fn decode_unit(queue_offset: u64, unit: &[u8; CQ_UNIT_LEN]) -> CqUnit {
    let mut position = [0u8; 8];
    let mut size = [0u8; 4];
    let mut tags_hash = [0u8; 8];
    position.copy_from_slice(&unit[..8]);
    size.copy_from_slice(&unit[8..12]);
    tags_hash.copy_from_slice(&unit[12..]);
    CqUnit {
        queue_offset,
        position: u64::from_le_bytes(position),
        size: u32::from_le_bytes(size),
        tags_hash: u64::from_le_bytes(tags_hash),
    }
}

impl ConsumeQueue {
    /// An empty queue whose first message gets offset 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue whose first message gets offset `base`: what a replica has after
    /// installing a snapshot whose queue ended at `base`.
    pub fn starting_at(base: u64) -> Self {
        Self {
            base,
            units: Vec::new(),
        }
    }

    /// The smallest offset readable on this replica.
    pub fn min_offset(&self) -> u64 {
        self.base
    }

    /// The offset the next message gets (one past the last readable one).
    pub fn max_offset(&self) -> u64 {
        self.base + self.units.len() as u64
    }

    /// Number of readable units.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Appends a message's unit and returns the queue offset it got.
    pub fn push(&mut self, position: u64, size: u32, tags_hash: u64) -> u64 {
        let offset = self.max_offset();
        self.units.push(encode_unit(position, size, tags_hash));
        offset
    }

    /// The unit at `offset`, if it is readable here.
    pub fn get(&self, offset: u64) -> Option<CqUnit> {
        let i = usize::try_from(offset.checked_sub(self.base)?).ok()?;
        self.units.get(i).map(|u| decode_unit(offset, u))
    }

    /// Up to `max_count` units from `from` on. Offsets below [`Self::min_offset`] are not
    /// readable here, so the result then starts at the min offset: each unit carries its
    /// offset, and the caller sees the gap.
    pub fn units(&self, from: u64, max_count: usize) -> Vec<CqUnit> {
        let from = from.max(self.base);
        let Some(start) = usize::try_from(from - self.base)
            .ok()
            .filter(|&i| i < self.units.len())
        else {
            return Vec::new();
        };
        self.units[start..]
            .iter()
            .take(max_count)
            .zip(from..)
            .map(|(u, offset)| decode_unit(offset, u))
            .collect()
    }

    /// The queue offset of the message whose record is at `position` (a lookup by message id).
    ///
    /// Positions grow with the queue offsets because the log only grows and committed entries
    /// are never rewritten, so a binary search finds it.
    pub fn offset_of_position(&self, position: u64) -> Option<u64> {
        let i = self
            .units
            .partition_point(|u| decode_unit(0, u).position < position);
        let unit = self.units.get(i)?;
        (decode_unit(0, unit).position == position).then_some(self.base + i as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_dense_from_the_base() {
        let mut q = ConsumeQueue::new();
        assert_eq!((q.min_offset(), q.max_offset()), (0, 0));
        assert_eq!(q.push(100, 30, 7), 0);
        assert_eq!(q.push(130, 40, 8), 1);
        assert_eq!(q.push(u64::MAX, u32::MAX, u64::MAX), 2);
        assert_eq!((q.min_offset(), q.max_offset(), q.len()), (0, 3, 3));
        assert_eq!(
            q.get(1),
            Some(CqUnit {
                queue_offset: 1,
                position: 130,
                size: 40,
                tags_hash: 8
            })
        );
        let last = q.get(2).unwrap();
        assert_eq!(
            (last.position, last.size, last.tags_hash),
            (u64::MAX, u32::MAX, u64::MAX)
        );
        assert_eq!(q.get(3), None);

        let mut q = ConsumeQueue::starting_at(10);
        assert!(q.is_empty());
        assert_eq!((q.min_offset(), q.max_offset()), (10, 10));
        assert_eq!(q.push(5, 20, 0), 10);
        assert_eq!(q.get(9), None);
        assert_eq!(q.get(10).map(|u| u.position), Some(5));
    }

    #[test]
    fn units_from_an_offset() {
        let mut q = ConsumeQueue::starting_at(5);
        for i in 0..10u64 {
            q.push(1000 + i * 50, 50, i);
        }
        let got = q.units(7, 3);
        assert_eq!(
            got.iter().map(|u| u.queue_offset).collect::<Vec<_>>(),
            [7, 8, 9]
        );
        assert_eq!(got[0].position, 1100);
        assert_eq!(got[2].tags_hash, 4);
        // Below the base: starts at the base.
        assert_eq!(
            q.units(0, 2)
                .iter()
                .map(|u| u.queue_offset)
                .collect::<Vec<_>>(),
            [5, 6]
        );
        // Near, at and past the end.
        assert_eq!(q.units(13, 100).len(), 2);
        assert!(q.units(15, 100).is_empty());
        assert!(q.units(u64::MAX, 100).is_empty());
        assert!(q.units(7, 0).is_empty());
    }

    #[test]
    fn offset_by_position() {
        let mut q = ConsumeQueue::starting_at(3);
        for p in [64, 200, 201, 5000] {
            q.push(p, 1, 0);
        }
        assert_eq!(q.offset_of_position(64), Some(3));
        assert_eq!(q.offset_of_position(201), Some(5));
        assert_eq!(q.offset_of_position(5000), Some(6));
        assert_eq!(q.offset_of_position(65), None);
        assert_eq!(q.offset_of_position(0), None);
        assert_eq!(q.offset_of_position(6000), None);
        assert_eq!(ConsumeQueue::new().offset_of_position(0), None);
    }
}
