//! raftmq's system tests live in `tests/`: each starts nameservers and broker groups as
//! real processes (`mqnamesrv`, `mqbroker`) on free loopback ports in temporary
//! directories, drives them with the `client` library and the `mqadmin` / `mqbench`
//! tools, and kills every process it started. This library is empty on purpose: the
//! shared harness is `tests/common/mod.rs`.
