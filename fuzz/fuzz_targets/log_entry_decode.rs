#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::log_entry::log_entry_decode(data));
