//! Building the Cosmos DB client, setting up the container, and the gateway every request of the
//! store goes through: request-unit budget, per-attempt timeout, bounded retries (the shared
//! [`RetryPolicy`]), error classification, counters.
//!
//! Conditional outcomes are answers, not errors: 404 on a read is `Missing`; 409 on a create and
//! 412 (or 404) on a conditional replace are `Conflict`, for the caller to re-read and redo. A
//! write whose response was lost is retried with the same precondition, so if it had been
//! applied the retry reports `Conflict` and the caller's re-read sees the applied write: nothing
//! is applied twice and nothing is lost.

use std::sync::Arc;
use std::time::Duration;

use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::diagnostics::DiagnosticsContext;
use azure_data_cosmos::models::{
    ContainerProperties, IndexingMode, IndexingPolicy, ThroughputProperties, TimeToLive,
};
use azure_data_cosmos::options::{
    CreateContainerOptions, ItemWriteOptions, MaxItemCountHint, OperationOptionsBuilder,
    Precondition, QueryOptions, Region, ThrottlingRetryOptionsBuilder,
};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosClientBuilder, CosmosError, FeedScope,
    Query, RoutingStrategy,
};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::budget::{OpKind, RuBudget};
use super::settings::{CosmosAuth, CosmosSettings};
use super::stats::{CosmosStats, Operation};
use crate::infra_settings::infra_settings;
use crate::pipeline::ports::PortError;
use crate::pipeline::retry::{RetryPolicy, Verdict};

/// A failed Cosmos DB call, after its retries.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("Cosmos DB answered {status}{}: {message}", sub_status.map(|s| format!("/{s}")).unwrap_or_default())]
    Service {
        status: u16,
        sub_status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("Cosmos DB request timed out after {0:?}")]
    Timeout(Duration),
    #[error("a stored document is not valid: {0}")]
    Document(String),
}

impl CallError {
    fn from_sdk(e: &CosmosError) -> Self {
        let status = e.status();
        Self::Service {
            status: u16::from(status.status_code()),
            sub_status: status.sub_status().map(|s| s.value()),
            retry_after: e
                .response()
                .and_then(|r| r.headers().retry_after_ms)
                .map(Duration::from_millis),
            message: e.to_string(),
        }
    }

    fn verdict(&self) -> Verdict {
        match self {
            Self::Timeout(_) => Verdict::Transient { retry_after: None },
            Self::Document(_) => Verdict::Permanent,
            Self::Service {
                status,
                sub_status,
                retry_after,
                ..
            } => match status {
                429 => Verdict::Transient {
                    retry_after: *retry_after,
                },
                408 | 410 | 449 | 500 | 502 | 503 | 504 => Verdict::Transient { retry_after: None },
                // The managed identity's token could not be fetched: usually passing.
                401 if *sub_status == Some(20402) => Verdict::Transient { retry_after: None },
                _ => Verdict::Permanent,
            },
        }
    }

    /// The port error for this failure, transient or permanent by its verdict.
    pub fn into_port(self, context: impl Into<String>) -> PortError {
        PortError::classified(self.verdict(), context, self)
    }
}

/// A point read's answer.
pub enum Read<T> {
    Found { doc: T, etag: String },
    Missing,
}

/// The budget's class of an operation.
fn operation_kind(operation: Operation) -> OpKind {
    match operation {
        Operation::Read => OpKind::Read,
        Operation::Create | Operation::Replace | Operation::Delete => OpKind::Write,
        Operation::Query => OpKind::Query,
    }
}

/// A conditional write's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    Conflict,
}

/// One attempt's result before classification.
enum Attempt<T> {
    Ok(T),
    /// An answer that is an outcome, not a failure (404, 409, 412).
    Outcome(u16),
}

/// All requests of one store go through here.
pub struct Gateway {
    container: ContainerClient,
    budget: RuBudget,
    stats: Arc<CosmosStats>,
    retry: RetryPolicy,
    timeout: Duration,
}

impl Gateway {
    pub fn new(
        container: ContainerClient,
        settings: &CosmosSettings,
        stats: Arc<CosmosStats>,
    ) -> Self {
        Self {
            container,
            budget: RuBudget::new(settings.budget, stats.clone()),
            stats,
            retry: RetryPolicy {
                max_attempts: settings.max_attempts.max(1),
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(5),
            },
            timeout: settings.request_timeout,
        }
    }

    pub fn budget(&self) -> &RuBudget {
        &self.budget
    }

    /// Runs one request under the budget, the timeout and the retry policy.
    async fn run<T, F, Fut>(
        &self,
        operation: Operation,
        outcomes: &[u16],
        call: F,
    ) -> Result<Attempt<T>, CallError>
    where
        F: Fn() -> Fut,
        Fut:
            std::future::Future<Output = Result<(T, Option<Arc<DiagnosticsContext>>), CosmosError>>,
    {
        let mut attempts = 0u64;
        let call = &call;
        let result = self
            .retry
            .run(
                || {
                    attempts += 1;
                    self.attempt(operation, outcomes, call)
                },
                CallError::verdict,
            )
            .await;
        self.stats
            .add(&self.stats.retries, attempts.saturating_sub(1));
        if result.is_err() {
            self.stats.add(&self.stats.failed, 1);
        }
        result
    }

    /// One attempt: reserve, call with a timeout, settle with the real charge, classify.
    async fn attempt<T, F, Fut>(
        &self,
        operation: Operation,
        outcomes: &[u16],
        call: &F,
    ) -> Result<Attempt<T>, CallError>
    where
        F: Fn() -> Fut,
        Fut:
            std::future::Future<Output = Result<(T, Option<Arc<DiagnosticsContext>>), CosmosError>>,
    {
        let kind = operation_kind(operation);
        let reservation = self.budget.reserve(kind).await;
        match tokio::time::timeout(self.timeout, call()).await {
            Err(_) => {
                self.budget.settle(reservation, 0.0, None);
                self.stats.add(&self.stats.requests, 1);
                Err(CallError::Timeout(self.timeout))
            }
            Ok(Ok((value, diagnostics))) => {
                let charge = self.account(diagnostics.as_deref());
                self.stats.add_operation(operation, charge);
                self.budget.settle(reservation, charge, None);
                Ok(Attempt::Ok(value))
            }
            Ok(Err(e)) => {
                let charge = self.account(e.diagnostics().as_deref());
                self.stats.add_operation(operation, charge);
                let error = CallError::from_sdk(&e);
                if let CallError::Service { status, .. } = &error
                    && outcomes.contains(status)
                {
                    if *status != 404 || kind != OpKind::Read {
                        self.stats.add_wasted_request_units(charge);
                    }
                    self.budget.settle(reservation, charge, None);
                    return Ok(Attempt::Outcome(*status));
                }
                let throttled = match &error {
                    CallError::Service {
                        status: 429,
                        retry_after,
                        ..
                    } => Some(*retry_after),
                    _ => None,
                };
                self.stats.add_wasted_request_units(charge);
                self.budget.settle(reservation, charge, throttled);
                Err(error)
            }
        }
    }

    /// Counts the wire requests of one attempt (the SDK's own retries included) and the 429s
    /// among them but the last, which the caller classifies; returns the attempt's charge.
    fn account(&self, diagnostics: Option<&DiagnosticsContext>) -> f64 {
        let Some(diagnostics) = diagnostics else {
            self.stats.add(&self.stats.requests, 1);
            return 0.0;
        };
        let requests = diagnostics.requests();
        let n = requests.len().max(1) as u64;
        self.stats.add(&self.stats.requests, n);
        self.stats.add(&self.stats.retries, n - 1);
        let hidden_throttles = requests
            .iter()
            .take(requests.len().saturating_sub(1))
            .filter(|r| r.status().is_throttled())
            .count() as u64;
        self.stats.add(&self.stats.throttled, hidden_throttles);
        diagnostics.total_request_charge().value()
    }

    /// Point read.
    pub async fn read<T: DeserializeOwned>(
        &self,
        pk: &str,
        id: &str,
    ) -> Result<Read<T>, CallError> {
        let attempt = self
            .run(Operation::Read, &[404], move || async move {
                let response = self.container.read_item(pk.to_string(), id, None).await?;
                let diagnostics = response.diagnostics();
                let etag = response.headers().etag().map(|e| e.to_string());
                let body = response.into_body().into_single::<serde_json::Value>();
                Ok(((etag, body), Some(diagnostics)))
            })
            .await?;
        match attempt {
            Attempt::Outcome(_) => Ok(Read::Missing),
            Attempt::Ok((etag, body)) => {
                let etag = etag.ok_or_else(|| CallError::Document(format!("{id}: no etag")))?;
                let value = body.map_err(|e| CallError::Document(format!("{id}: {e}")))?;
                let doc = serde_json::from_value(value)
                    .map_err(|e| CallError::Document(format!("{id}: {e}")))?;
                Ok(Read::Found { doc, etag })
            }
        }
    }

    /// Creates the document only if no document has its id (409: `Conflict`).
    pub async fn create<T: Serialize + Sync>(
        &self,
        pk: &str,
        id: &str,
        doc: &T,
    ) -> Result<Written, CallError> {
        let attempt = self
            .run(Operation::Create, &[409], move || async move {
                let response = self
                    .container
                    .create_item(pk.to_string(), id, doc, None)
                    .await?;
                Ok(((), Some(response.diagnostics())))
            })
            .await?;
        Ok(self.written(attempt))
    }

    /// Replaces the document only if its etag is still `etag` (412 or 404: `Conflict`).
    pub async fn replace<T: Serialize + Sync>(
        &self,
        pk: &str,
        id: &str,
        doc: &T,
        etag: &str,
    ) -> Result<Written, CallError> {
        let attempt = self
            .run(Operation::Replace, &[404, 412], move || async move {
                let options = ItemWriteOptions::default()
                    .with_precondition(Precondition::if_match(etag.to_string()));
                let response = self
                    .container
                    .replace_item(pk.to_string(), id, doc, Some(options))
                    .await?;
                Ok(((), Some(response.diagnostics())))
            })
            .await?;
        Ok(self.written(attempt))
    }

    /// Deletes the document; one that is already gone counts as deleted (the documents deleted
    /// here are written once and never changed, so whoever deleted it deleted the same thing).
    pub async fn delete(&self, pk: &str, id: &str) -> Result<(), CallError> {
        self.run(Operation::Delete, &[404], move || async move {
            let response = self.container.delete_item(pk.to_string(), id, None).await?;
            Ok(((), Some(response.diagnostics())))
        })
        .await?;
        Ok(())
    }

    fn written(&self, attempt: Attempt<()>) -> Written {
        match attempt {
            Attempt::Ok(()) => Written::Done,
            Attempt::Outcome(_) => {
                self.stats.add(&self.stats.conflicts, 1);
                Written::Conflict
            }
        }
    }

    /// Runs a query to the end; each page is one budgeted request, and a failed page reruns the
    /// whole query (queries here are small).
    pub async fn query<T: DeserializeOwned + Send + 'static>(
        &self,
        query: &Query,
        scope: &FeedScope,
    ) -> Result<Vec<T>, CallError> {
        self.query_pages(query, scope, None).await
    }

    /// Runs a query until it has `limit` items, in pages of at most `limit` items per
    /// partition, and fetches no page after that: with a `TOP` and an `ORDER BY`, the first
    /// `limit` items in that order, for a bounded transfer however many match.
    pub async fn query_first<T: DeserializeOwned + Send + 'static>(
        &self,
        query: &Query,
        scope: &FeedScope,
        limit: usize,
    ) -> Result<Vec<T>, CallError> {
        self.query_pages(query, scope, Some(limit)).await
    }

    async fn query_pages<T: DeserializeOwned + Send + 'static>(
        &self,
        query: &Query,
        scope: &FeedScope,
        limit: Option<usize>,
    ) -> Result<Vec<T>, CallError> {
        let page_size = limit
            .and_then(|n| u32::try_from(n).ok())
            .and_then(std::num::NonZeroU32::new);
        let attempt = self
            .run(Operation::Query, &[], move || async move {
                let options = page_size.map(|n| {
                    QueryOptions::default().with_max_item_count(MaxItemCountHint::Limit(n))
                });
                let mut pages = self
                    .container
                    .query_items::<T>(query.clone(), scope.clone(), options)
                    .await?
                    .into_pages();
                let mut items = Vec::new();
                let mut last: Option<Arc<DiagnosticsContext>> = None;
                while let Some(page) = pages.next().await {
                    let page = page?;
                    if let Some(previous) = last.replace(page.diagnostics()) {
                        // Pages before the last: accounted as they come; the last one is
                        // settled against the budget by `run`.
                        let charge = self.account(Some(&previous));
                        self.stats.add_request_units(charge);
                        self.stats.add_operation(Operation::Query, charge);
                    }
                    let page = page.into_items();
                    self.stats
                        .add(&self.stats.query_documents, page.len() as u64);
                    items.extend(page);
                    if let Some(n) = limit
                        && items.len() >= n
                    {
                        items.truncate(n);
                        break;
                    }
                }
                Ok((items, last))
            })
            .await?;
        match attempt {
            Attempt::Ok(items) => Ok(items),
            Attempt::Outcome(status) => Err(CallError::Service {
                status,
                sub_status: None,
                retry_after: None,
                message: "unexpected answer to a query".into(),
            }),
        }
    }
}

/// Builds the client for the configured account and authentication. The SDK's own 429 retries
/// are capped at `sdk_throttle_retries` so that throttling reaches the budget.
pub async fn connect(settings: &CosmosSettings) -> anyhow::Result<CosmosClient> {
    let endpoint: AccountEndpoint = settings
        .endpoint
        .parse()
        .map_err(|e| anyhow::anyhow!("EVENTIDE_COSMOS_ENDPOINT is not a valid URL: {e}"))?;
    let account = match &settings.auth {
        CosmosAuth::Key(key) => AccountReference::with_authentication_key(endpoint, key.clone()),
        CosmosAuth::Entra(credential) => {
            AccountReference::with_credential(endpoint, credential.clone())
        }
    };
    client_builder(settings)
        .build(account, routing(settings))
        .await
        .map_err(|e| anyhow::anyhow!("connecting to Cosmos DB at {}: {e}", settings.endpoint))
}

/// Requests go to the preferred region first when one is configured.
pub fn routing(settings: &CosmosSettings) -> RoutingStrategy {
    match &settings.region {
        Some(region) => RoutingStrategy::ProximityTo(Region::from(region.clone())),
        None => RoutingStrategy::PreferredRegions(Vec::new()),
    }
}

/// A client builder with this adapter's operation defaults (tests add their runtime and fault
/// rules to it).
pub fn client_builder(settings: &CosmosSettings) -> CosmosClientBuilder {
    CosmosClientBuilder::new().with_default_operation_options(
        OperationOptionsBuilder::new()
            .with_throttling_retry_options(
                ThrottlingRetryOptionsBuilder::new()
                    .with_max_retry_count(settings.sdk_throttle_retries)
                    .with_max_retry_wait_time(settings.request_timeout)
                    .build(),
            )
            .build(),
    )
}

/// The indexing policy: only the header fields that queries filter on are indexed; the points
/// (the `p` payload) and everything else are excluded, so writes do not pay for indexing them.
/// The paths are the ones the deployment creates the container with
/// (`infra/eventide.settings.json`).
pub fn indexing_policy() -> IndexingPolicy {
    let paths = &infra_settings().cosmos.indexing_policy;
    let mut policy = IndexingPolicy::default().with_indexing_mode(IndexingMode::Consistent);
    policy.automatic = true;
    for included in &paths.included_paths {
        policy = policy.with_included_path(included.path.clone());
    }
    for excluded in &paths.excluded_paths {
        policy = policy.with_excluded_path(excluded.path.clone());
    }
    policy
}

/// Creates the database and the container (partition key `/seriesId`, default TTL, indexing
/// policy) when missing, then opens the container.
pub async fn open_container(
    client: &CosmosClient,
    settings: &CosmosSettings,
) -> anyhow::Result<ContainerClient> {
    if settings.create_if_missing {
        if let Err(e) = client.create_database(&settings.database, None).await
            && !e.status().is_conflict()
        {
            anyhow::bail!("creating Cosmos DB database {:?}: {e}", settings.database);
        }
        let ttl = u32::try_from(settings.ttl.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        let properties = ContainerProperties::new(
            settings.container.clone(),
            infra_settings().cosmos.partition_key_path.clone().into(),
        )
        .with_default_ttl(TimeToLive::Seconds(ttl))
        .with_indexing_policy(indexing_policy());
        let options = settings.provisioned_throughput.map(|ru| {
            CreateContainerOptions::default()
                .with_throughput(ThroughputProperties::manual(u64::from(ru)))
        });
        if let Err(e) = client
            .database_client(settings.database.as_str())
            .create_container(properties, options)
            .await
            && !e.status().is_conflict()
        {
            anyhow::bail!("creating Cosmos DB container {:?}: {e}", settings.container);
        }
    }
    client
        .database_client(settings.database.as_str())
        .container_client(settings.container.as_str(), None)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "opening Cosmos DB container {}/{}: {e}",
                settings.database,
                settings.container
            )
        })
}
