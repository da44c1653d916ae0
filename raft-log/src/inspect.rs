//! Read-only inspection of a store directory: what `raft-log-dump` prints and checks. Unlike
//! opening a store, nothing here repairs anything.
