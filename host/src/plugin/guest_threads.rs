//! Where guest code runs.
//!
//! A call starts on the task that asked for it: most calls finish in a few
//! microseconds, and handing each to another thread would cost more than the
//! call. A call still busy after a whole epoch tick (a guest that computes,
//! spins or sleeps) moves to the guest threads: a runtime of their own, one
//! thread fewer than cores (so one core is always free for the host), at the
//! lowest CPU priority (see [`lower_priority`]). A busy plugin then cannot hold
//! the threads that carry the NATS I/O and every other route's calls, and busy
//! guests yield to each other every tick. A pool whose last call moved starts
//! its next ones there directly (see [`super::Pool`]), so a plugin that is
//! always slow never runs a tick on the host's threads.
//!
//! A call that waits on the host instead (a key-value read, a request: see
//! [`host_io`]) stays where it is: it costs the thread nothing while it waits,
//! and the reply that wakes it arrives on the host's threads, so moving it
//! would only add a wake across runtimes to every host call (and put its
//! resumption behind busy guests).

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::OnceLock;
use std::task::Poll;

thread_local! {
    /// Set when the call being polled on this thread stopped to wait for a
    /// host function's I/O (read right after the poll, on the same thread:
    /// wasmtime runs the guest's fiber on the thread that polls it).
    static WAITING_ON_HOST: Cell<bool> = const { Cell::new(false) };
}

/// Wrap a host function's I/O (a round trip to NATS): while it is pending the
/// call is waiting, not busy, and [`run`] keeps it on its task.
pub(super) async fn host_io<F: Future>(io: F) -> F::Output {
    let mut io = pin!(io);
    poll_fn(|cx| {
        let polled = io.as_mut().poll(cx);
        if polled.is_pending() {
            WAITING_ON_HOST.set(true);
        }
        polled
    })
    .await
}

/// Run `call`, here first when `here_first`, moving it to the guest threads when
/// it yields for any other reason than waiting on a host function (it is busy,
/// or waits on a timer). Also says whether it moved, so the caller can start
/// the next call on the guest threads.
pub(super) async fn run<T: Send + 'static>(call: impl Future<Output = T> + Send + 'static, here_first: bool) -> (T, bool) {
    let mut call = Box::pin(call);
    if here_first {
        let done_here = poll_fn(|cx| {
            WAITING_ON_HOST.set(false);
            match call.as_mut().poll(cx) {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending if WAITING_ON_HOST.get() => Poll::Pending,
                Poll::Pending => Poll::Ready(None),
            }
        })
        .await;
        if let Some(out) = done_here {
            return (out, false);
        }
    }
    let Some(guest) = guest_runtime() else {
        // No guest threads could be started: run it here, as a last resort.
        return (call.await, true);
    };
    let moved = guest.spawn(async move {
        if here_first {
            return (call.await, true);
        }
        match futures::poll!(call.as_mut()) {
            Poll::Ready(out) => (out, false),
            Poll::Pending => (call.await, true),
        }
    });
    match moved.await {
        Ok(done) => done,
        // A host-side panic in the call: raise it here, as if it had run here.
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => unreachable!("the guest runtime lives as long as the process: {err}"),
    }
}

/// Built on first use and never dropped (a tokio runtime must not be dropped
/// from async code); its threads idle at no cost when no guest is busy.
fn guest_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static GUEST: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    GUEST
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, usize::from);
            let threads = cores.saturating_sub(1).max(1);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("switchyard-guest")
                .on_thread_start(lower_priority)
                .enable_all()
                .build()
                .inspect_err(|err| tracing::error!("cannot start the guest threads; busy plugins will share the host's: {err}"))
                .ok()
        })
        .as_ref()
}

/// Guest threads run under `SCHED_IDLE`, the lowest priority there is: when a
/// host thread wakes (a message arrived, a reply is due) the OS switches to it
/// at once instead of finishing a guest's time slice; when the host is idle
/// the guests have their cores. (At nice 19 a spinning guest still finished
/// its slice first: the healthy route's p99 in `make bench` "busy neighbour"
/// was about 4 × quiet; under `SCHED_IDLE`, with one core kept free, about
/// 2 ×.) A host saturated by fast routes leaves slow calls little CPU, and
/// they time out: fast routes first, by design. Best effort: a system that
/// forbids it leaves them at the host's priority.
fn lower_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(err) = thread_priority::set_thread_priority_and_policy(thread_priority::thread_native_id(), ThreadPriority::Min, idle) {
        tracing::debug!("guest threads keep the host's priority: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    /// A call that waits on a host function finishes where it started; one
    /// that yields for another reason (busy, a timer) moves.
    #[tokio::test]
    async fn only_a_call_that_yields_without_waiting_on_the_host_moves() {
        let waits = async {
            host_io(tokio::time::sleep(std::time::Duration::from_millis(5))).await;
            thread_name()
        };
        let (ran_on, moved) = run(waits, true).await;
        assert!(!moved && !ran_on.starts_with("switchyard-guest"), "{ran_on}");

        let busy = async {
            tokio::task::yield_now().await;
            thread_name()
        };
        let (ran_on, moved) = run(busy, true).await;
        assert!(moved && ran_on.starts_with("switchyard-guest"), "{ran_on}");
    }
}
