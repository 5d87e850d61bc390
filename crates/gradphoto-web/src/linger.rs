//! Lingering close: the rest of a request body that its handler answered without reading is read and dropped
//! after the answer goes out.
//!
//! A handler may answer before it reads the body — an upload to a photo already in review (409), a session that
//! has expired (sign in again), a roster sent by a teacher who is not the school's admin. hyper then closes the
//! connection with the unread bytes still arriving, and the kernel answers them with a reset that can destroy the
//! answer in the client's buffer before the client reads it: a phone sending 2 MB sees "network error" instead of
//! "the photo is in review". Found by the kill test, where an upload answered 409 came back as a failed send while
//! the server was up. The body is kept alive here so that hyper keeps reading it into this task, which drops it
//! (up to the body limit and a deadline), and the connection stays usable.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as _, Frame, SizeHint};

/// How long an unread body is read after its answer before the connection is given up.
const DEADLINE: Duration = Duration::from_secs(60);

type Slot = Arc<Mutex<Option<Body>>>;

/// The request's body as the handler sees it; the body itself stays in the slot when the handler drops this.
struct Shared(Slot);

impl http_body::Body for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|b| b.size_hint()).unwrap_or_default()
    }
}

/// Middleware: runs the request, then, if its body was not read to the end, reads the rest (at most `limit`
/// bytes) in a task of its own while the answer goes out.
pub async fn linger(limit: usize, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let slot: Slot = Arc::new(Mutex::new(Some(body)));
    let res = next.run(Request::from_parts(parts, Body::new(Shared(slot.clone())))).await;
    let rest = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(rest) = rest.filter(|b| !b.is_end_stream()) {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(DEADLINE, drain(rest, limit)).await;
        });
    }
    res
}

/// Reads and drops frames until the body ends, fails, or passes `limit` bytes.
async fn drain(body: Body, limit: usize) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            return;
        }
    }
}
