//! `groups.v1.EventService`: the change feed and the audit log.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::{Listing, Watch};
use super::limits::{AnswerLimit, check_answer};
use super::pb;
use super::pb::event_service_server::EventService;
use crate::domain::Service;
use crate::domain::model::TenantId;
use crate::domain::names::TenantName;
use crate::domain::repo::AuditFilter;

/// Items a follower may have sent ahead of the network: the feed waits beyond this.
const STREAM_BUFFER: usize = 64;

pub struct EventApi {
    service: Service,
    /// Becomes true when the server shuts down: open feeds end then (a follower resumes
    /// elsewhere from its cursor), so that the drain of calls in flight does not wait on them.
    stop: tokio::sync::watch::Receiver<bool>,
}

impl EventApi {
    pub fn new(service: Service, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        EventApi { service, stop }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for EventApi {
    type WatchEventsStream = WatchStream;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let caller = super::caller(&req)?;
        let limit = req.extensions().get::<AnswerLimit>().copied();
        let watch: Watch = req.into_inner().try_into()?;
        let feed = self
            .service
            .open_feed(caller, watch.tenant, watch.after)
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        tokio::spawn(feed.run(tx));
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let stream = ReceiverStream::new(rx)
            .map(move |item| {
                let event: pb::WatchEventsResponse = item.map(Into::into)?;
                check_answer(limit.as_ref(), &event)?;
                Ok(event)
            })
            .take_until(Box::pin(stopped));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_earliest_cursor(
        &self,
        req: Request<pb::GetEarliestCursorRequest>,
    ) -> Result<Response<pb::Cursor>, Status> {
        let caller = super::caller(&req)?;
        let limit = req.extensions().get::<AnswerLimit>().copied();
        let t: TenantName = req.into_inner().try_into()?;
        let cursor: pb::Cursor = self
            .service
            .earliest_cursor(&caller, t.tenant)
            .await?
            .into();
        check_answer(limit.as_ref(), &cursor)?;
        Ok(Response::new(cursor))
    }

    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = super::caller(&req)?;
        let limit = req.extensions().get::<AnswerLimit>().copied();
        let l: Listing<(TenantId, AuditFilter)> = req.into_inner().try_into()?;
        let (tenant, filter) = l.of;
        let out = self
            .service
            .list_audit_events(&caller, tenant, filter, l.page)
            .await?;
        let answer: pb::ListAuditEventsResponse = out.into();
        check_answer(limit.as_ref(), &answer)?;
        Ok(Response::new(answer))
    }
}
