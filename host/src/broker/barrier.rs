//! A round trip through the server on the host's own connection.
//!
//! async-nats sends SUB from a background task and `flush` only waits for the
//! socket write, so a subscription may not exist on the server yet when
//! `subscribe` returns. The server handles one connection's operations in order,
//! so once a message published after the SUBs comes back, they all exist: only
//! then may the host say it is ready (another client may publish at once).

use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;

/// Far beyond any healthy round trip: only a server that is gone takes this long.
const WITHIN: Duration = Duration::from_secs(10);

pub async fn barrier(client: &async_nats::Client) -> anyhow::Result<()> {
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, bytes::Bytes::new()).await?;
    tokio::time::timeout(WITHIN, echo.next())
        .await
        .ok()
        .flatten()
        .context("nats-server did not echo the host's own message: subscriptions may not be in place")?;
    Ok(())
}
