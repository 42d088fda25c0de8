//! examples/content-filter end to end, on a real nats-server: the C plugin (written from
//! docs/ABI.md, built with zig cc) and its Rust twin serve the same route, in turn, and answer
//! the same traffic the same way: clean text passed on (published and, to a request, sent back),
//! a banned word refused with a 400 error reply and a dead letter.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use switchyard_tests::examples::{self, header, sample};
use switchyard_tests::js::count;
use switchyard_tests::{NatsServer, eventually, within};

const EXAMPLE: &str = "content-filter";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn the_c_plugin_and_its_rust_twin_filter_the_same_traffic_alike() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    for (n, config) in ["runtime.toml", "rust.toml"].into_iter().enumerate() {
        assert!(examples::check(EXAMPLE, config).contains("ok (1 plugin(s), 1 route(s), 0 stream(s))"));
        let host = examples::start(EXAMPLE, config, &nats).await;
        let mut clean = client.subscribe("content.clean").await.expect("subscribe");
        client.flush().await.expect("flush");

        let text = sample(EXAMPLE, "clean.txt");
        let reply = within(WAIT, "the reply", client.request("content.check.chat", text.clone().into())).await.expect("reply");
        assert_eq!(reply.payload, text.as_bytes(), "{config}: the text comes back");
        let passed = within(WAIT, "the clean copy", clean.next()).await.expect("a message");
        assert_eq!((passed.payload.as_ref(), header(&passed, "filtered-by")), (text.as_bytes(), "content-filter"), "{config}");

        let refused =
            within(WAIT, "the refusal", client.request("content.check.chat", sample(EXAMPLE, "spam.txt").into())).await.expect("reply");
        assert_eq!(header(&refused, "Nats-Service-Error-Code"), "400", "{config}: the sender's fault");
        assert_eq!(header(&refused, "Nats-Service-Error"), "contains the banned word `scam`", "{config}");
        eventually(WAIT, "the dead letter", || async { (count(&js, "SWITCHYARD_DLQ").await == n as u64 + 1).then_some(()) }).await;
        host.stop().await;
    }
}
