//! Everything between the host and NATS: the client connection, the nats-server
//! the host starts when no URL is configured, and the JetStream streams that
//! runtime.toml declares.

mod acks;
mod barrier;
mod buckets;
mod connect;
mod consumers;
mod embedded;
pub mod objects;
mod startup;
mod stream_index;
mod streams;

pub use acks::Acks;
pub use barrier::barrier;
pub use buckets::ensure_buckets;
pub use connect::{client_options, connect, describe_failure};
pub use consumers::ensure_consumer;
pub use embedded::EmbeddedServer;
pub use startup::{Failure, retrying};
pub use stream_index::StreamIndex;
pub use streams::{ensure_dead_letter_stream, ensure_streams};
