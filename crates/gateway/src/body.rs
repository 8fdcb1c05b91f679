//! Bodies on both sides of the proxy: one boxed type, a byte counter that lets a streamed body
//! pass frame by frame while counting it, reading a request body up to a limit, and reading what
//! is left of a refused request's body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body the gateway sends, to the caller and to the upstream.
pub struct GatewayBody {
    inner: UnsyncBoxBody<Bytes, BoxError>,
}

impl GatewayBody {
    pub fn new<B>(body: B) -> GatewayBody
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        GatewayBody {
            inner: body.map_err(Into::into).boxed_unsync(),
        }
    }

    pub fn full(bytes: Bytes) -> GatewayBody {
        GatewayBody::new(Full::new(bytes))
    }

    pub fn empty() -> GatewayBody {
        GatewayBody::new(Empty::<Bytes>::new())
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Passes a body through unchanged, adding the size of every data frame to `count`; `on_drop`
/// runs once when the body is dropped (finished, failed or abandoned by a disconnect).
pub struct Counted<B> {
    inner: B,
    count: Arc<AtomicU64>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Counted<B> {
        Counted {
            inner,
            count,
            on_drop: None,
        }
    }

    pub fn on_drop(mut self, f: impl FnOnce() + Send + 'static) -> Counted<B> {
        self.on_drop = Some(Box::new(f));
        self
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum ReadError {
    /// More than `limit` bytes (by `Content-Length` or as read).
    TooLarge,
    /// The caller's connection failed while sending it.
    Failed(String),
}

/// Reads a body whole, refusing it as soon as it passes `limit` bytes (it is never read beyond).
pub async fn read_limited<B>(mut body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Failed(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(ReadError::TooLarge);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// The most of a refused request's body [`drain`] reads, and how long it waits for it.
const DRAIN_LIMIT: u64 = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Reads and drops what the caller is still sending of a request the gateway refuses, before the
/// refusal goes out. An HTTP/2 response that ends while the request's body is still open is
/// followed by RST_STREAM(NO_ERROR); a client that has not finished sending then may report a
/// stream error instead of the refusal (curl 7.88 exits 92 without printing it). A body declared
/// larger than 64 KiB, or still arriving after a second, is left unread as before.
pub async fn drain<B>(mut body: B)
where
    B: Body<Data = Bytes> + Unpin,
{
    if body.is_end_stream() || body.size_hint().lower() > DRAIN_LIMIT {
        return;
    }
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                read += data.len() as u64;
                if read > DRAIN_LIMIT {
                    return;
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let body = Full::new(Bytes::from(vec![b'x'; 11]));
        assert!(matches!(
            read_limited(body, 10).await,
            Err(ReadError::TooLarge)
        ));
        let body = Full::new(Bytes::from(vec![b'x'; 10]));
        assert_eq!(read_limited(body, 10).await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn counted_counts_and_reports_once_dropped() {
        let count = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let body = Counted::new(Full::new(Bytes::from_static(b"hello")), count.clone())
            .on_drop(move || tx.send(()).unwrap());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(count.load(Ordering::Relaxed), 5);
        rx.try_recv().unwrap();
    }
}
