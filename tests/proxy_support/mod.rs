//! Targets for the proxy tests, started inside the test process on 127.0.0.1.

#![allow(dead_code)]

pub mod http_target;
pub mod tls;
pub mod ws_target;
