//! `ingest`: validate a body item by item, chunk the valid observations per series and send the
//! chunks to the observations queue.

use crate::domain::message::chunk_observations;
use crate::domain::parse::{BodyError, BodyFormat, Rejection, parse_body};
use crate::domain::series_day::stamp_at;

use super::Pipeline;
use super::metrics::Metrics;
use super::ports::{OutgoingMessage, PortError};

/// What happened to one ingest request.
#[derive(Debug, serde::Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    pub rejected: Vec<Rejection>,
    /// Queue messages the accepted observations were packed into.
    pub messages: usize,
}

/// Why a whole request failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body could not be read at all (400).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The queue could not take the chunks (503; the caller retries, and duplicate detection
    /// drops chunks that did get through).
    #[error(transparent)]
    Queue(#[from] PortError),
}

impl Pipeline {
    pub async fn ingest(
        &self,
        format: BodyFormat,
        body: &[u8],
    ) -> Result<IngestReport, IngestError> {
        let parsed = parse_body(format, body)?;
        let accepted = parsed.accepted.len();
        let stamp = stamp_at(self.ports.clock.now());
        let chunks = chunk_observations(parsed.accepted, stamp, self.settings.max_chunk_bytes);
        let messages = chunks.len();
        let outgoing = chunks
            .into_iter()
            .map(|chunk| OutgoingMessage {
                message_id: chunk.message_id,
                session_id: Some(chunk.series.into()),
                body: chunk.body,
                scheduled_at: None,
            })
            .collect();
        if messages > 0 {
            self.ports.observations.send(outgoing).await?;
        }
        Metrics::add(&self.metrics.observations_accepted, accepted);
        Metrics::add(&self.metrics.observations_rejected, parsed.rejected.len());
        Metrics::add(&self.metrics.chunks_sent, messages);
        Ok(IngestReport {
            accepted,
            rejected: parsed.rejected,
            messages,
        })
    }
}
