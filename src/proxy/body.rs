//! Bodies: the client's, read whole within the configured maximum; and every answer the
//! proxy writes, with the record of its request: hyper drops the answer body when it is
//! written or the connection is gone, and that is when the request is recorded, once.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::upstream::Payload;
use crate::error::Failure;
use crate::pipeline::{Exchange, Pipeline, Scan};

/// The body of every answer: ours, in memory, or UPS's, streamed. When hyper drops it
/// (written, or the connection gone) the request is recorded, once.
pub struct AnswerBody {
    inner: Payload,
    done: Done,
}

struct Done {
    pipeline: Arc<Pipeline>,
    ex: Option<Exchange>,
    scan: Option<Scan>,
    /// The last byte was handed to the connection.
    delivered: bool,
}

impl Drop for Done {
    fn drop(&mut self) {
        let Some(ex) = self.ex.take() else { return };
        if let Some(scan) = self.scan.take() {
            self.pipeline.stream_done(scan, &ex);
        }
        self.pipeline.finish(ex, self.delivered);
    }
}

impl AnswerBody {
    /// Our own answer, or UPS's streamed back (`Stream` without a tap: the scan sees it).
    /// `ex`: the request to record when the body is dropped (`None`: not a request of ours).
    pub(super) fn new(
        inner: Payload,
        pipeline: Arc<Pipeline>,
        ex: Option<Exchange>,
        scan: Option<Scan>,
    ) -> AnswerBody {
        AnswerBody {
            inner,
            done: Done {
                pipeline,
                ex,
                scan,
                delivered: false,
            },
        }
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(chunk), Some(scan)) = (f.data_ref(), this.done.scan.as_mut()) {
                    scan.answer_chunk(chunk);
                }
                this.done.delivered = this.inner.is_end_stream();
            }
            None => this.done.delivered = true,
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Read a whole request body, refusing more than `max` bytes.
pub(super) async fn read_whole(
    body: Incoming,
    headers: &http::HeaderMap,
    max: usize,
) -> Result<Bytes, Failure> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(Failure::TooLarge(max));
    }
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => match e.downcast::<hyper::Error>() {
            Ok(e) => Err(Failure::Malformed(format!("request body: {e}"))),
            Err(_) => Err(Failure::TooLarge(max)),
        },
    }
}
