//! The quarantine on Azure Blob Storage: one JSON blob per entry in a container of the app's
//! storage account, holding the original bytes, the reason, the source, the function and the
//! time. The blob's name derives from the entry's deterministic id and is written only if
//! absent, so a redelivered poison message never makes a second blob.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind as AzureErrorKind;
use azure_core::http::{RequestContent, Url};
use azure_storage_blob::BlobContainerClient;
use azure_storage_blob::models::BlockBlobClientUploadOptions;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::account::{AccountKey, sas_protocols};
use crate::pipeline::ports::{PortError, PortResult, Quarantine, QuarantineEntry};

/// Blob calls in flight at once for one `put` or `list`.
const PARALLEL_CALLS: usize = 8;
/// How long a SAS made from an account key is valid, and when a fresh one replaces it.
const SAS_LIFETIME: Duration = Duration::hours(24);
const SAS_RENEW_AFTER: Duration = Duration::hours(12);
/// Longest id kept readable in a blob name (Azure allows 1,024 characters).
const MAX_READABLE_ID: usize = 400;

/// How the quarantine authorizes.
#[derive(Clone)]
pub enum BlobAccess {
    /// An account key, turned into short-lived SAS tokens scoped to the quarantine container.
    AccountKey(AccountKey),
    /// Microsoft Entra ID (a managed identity in Azure); needs an https endpoint.
    Entra(Arc<dyn TokenCredential>),
}

struct CachedClient {
    client: Arc<BlobContainerClient>,
    renew_at: Option<DateTime<Utc>>,
}

/// The Blob quarantine.
pub struct BlobQuarantine {
    container_url: Url,
    /// The container's name, which a service SAS is scoped to.
    container: String,
    access: BlobAccess,
    cached: Mutex<Option<CachedClient>>,
}

/// An entry as stored: the body as text when it is UTF-8 (readable in Storage Explorer), as
/// base64 otherwise; either way exactly the original bytes.
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    id: String,
    at: DateTime<Utc>,
    function: String,
    source: String,
    reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
}

impl StoredEntry {
    fn from_entry(entry: &QuarantineEntry) -> Self {
        let (body, body_base64) = match std::str::from_utf8(&entry.body) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (None, Some(STANDARD.encode(&entry.body))),
        };
        Self {
            id: entry.id.clone(),
            at: entry.at,
            function: entry.function.clone(),
            source: entry.source.clone(),
            reason: entry.reason.clone(),
            body,
            body_base64,
        }
    }

    fn into_entry(self) -> Result<QuarantineEntry, base64::DecodeError> {
        let body = match (self.body, self.body_base64) {
            (_, Some(encoded)) => STANDARD.decode(encoded)?,
            (Some(text), None) => text.into_bytes(),
            (None, None) => Vec::new(),
        };
        Ok(QuarantineEntry {
            id: self.id,
            at: self.at,
            function: self.function,
            source: self.source,
            reason: self.reason,
            body,
        })
    }
}

/// The blob holding the entry with this id: the id itself where it is a plain name, otherwise
/// its plain characters plus a hash of the whole id, so any id maps to one valid name.
pub fn blob_name(id: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if id.len() <= MAX_READABLE_ID && !id.is_empty() && id.chars().all(plain) {
        return format!("{id}.json");
    }
    let readable: String = id
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .take(MAX_READABLE_ID)
        .collect();
    let hash = Sha256::digest(id.as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{readable}~{hex}.json")
}

fn is_transient(e: &azure_core::Error) -> bool {
    match e.http_status() {
        Some(status) => matches!(u16::from(status), 408 | 429 | 500..=599),
        None => matches!(
            e.kind(),
            AzureErrorKind::Io | AzureErrorKind::Connection | AzureErrorKind::Credential
        ),
    }
}

fn port_error(context: String, e: azure_core::Error) -> PortError {
    if is_transient(&e) {
        PortError::transient(context, e)
    } else {
        PortError::permanent(context, e)
    }
}

fn status_of(e: &azure_core::Error) -> Option<u16> {
    e.http_status().map(u16::from)
}

impl BlobQuarantine {
    /// Connects to `container` under the Blob service `endpoint` and creates the container if
    /// it does not exist.
    pub async fn connect(endpoint: &Url, container: &str, access: BlobAccess) -> PortResult<Self> {
        let mut container_url = endpoint.clone();
        container_url.set_query(None);
        container_url
            .path_segments_mut()
            .map_err(|()| {
                PortError::permanent(
                    "configuring the Blob quarantine",
                    format!("{endpoint} cannot be a Blob service endpoint"),
                )
            })?
            .pop_if_empty()
            .push(container);
        let quarantine = Self {
            container_url,
            container: container.to_string(),
            access,
            cached: Mutex::new(None),
        };
        match quarantine.creator()?.create(None).await {
            Ok(_) => Ok(quarantine),
            Err(e) if status_of(&e) == Some(409) => Ok(quarantine),
            // An identity allowed to write blobs but not to create containers: the container
            // was made with the infrastructure. If it was not, the first write says so.
            Err(e) if status_of(&e) == Some(403) => {
                tracing::warn!(
                    container,
                    "not allowed to create the quarantine container; assuming it exists"
                );
                Ok(quarantine)
            }
            Err(e) => Err(port_error(
                format!("creating the quarantine container {container:?}"),
                e,
            )),
        }
    }

    /// A client for creating the container: with an account key, under a SAS that can create
    /// containers and do nothing else (a service SAS cannot create its own container).
    fn creator(&self) -> PortResult<Arc<BlobContainerClient>> {
        let BlobAccess::AccountKey(key) = &self.access else {
            return self.client();
        };
        let mut url = self.container_url.clone();
        let protocols = sas_protocols(&url);
        url.set_query(Some(
            &key.container_creation_sas(Utc::now() + SAS_LIFETIME, protocols),
        ));
        BlobContainerClient::new(url, None, None)
            .map(Arc::new)
            .map_err(|e| port_error("configuring the Blob quarantine".into(), e))
    }

    /// The container client, with a fresh SAS when the current one is half-way to expiry: a
    /// service SAS for this container's blobs only, over https only (but to a loopback
    /// emulator).
    fn client(&self) -> PortResult<Arc<BlobContainerClient>> {
        let now = Utc::now();
        let mut cached = self
            .cached
            .lock()
            .expect("the client cache is never poisoned");
        if let Some(current) = cached.as_ref()
            && current.renew_at.is_none_or(|at| now < at)
        {
            return Ok(current.client.clone());
        }
        let (url, credential, renew_at) = match &self.access {
            BlobAccess::AccountKey(key) => {
                let mut url = self.container_url.clone();
                let protocols = sas_protocols(&url);
                url.set_query(Some(&key.container_sas(
                    &self.container,
                    now + SAS_LIFETIME,
                    protocols,
                )));
                (url, None, Some(now + SAS_RENEW_AFTER))
            }
            BlobAccess::Entra(credential) => {
                (self.container_url.clone(), Some(credential.clone()), None)
            }
        };
        let client = Arc::new(
            BlobContainerClient::new(url, credential, None)
                .map_err(|e| port_error("configuring the Blob quarantine".into(), e))?,
        );
        *cached = Some(CachedClient {
            client: client.clone(),
            renew_at,
        });
        Ok(client)
    }

    async fn put_one(
        &self,
        client: &BlobContainerClient,
        entry: &QuarantineEntry,
    ) -> PortResult<()> {
        let document = serde_json::to_vec(&StoredEntry::from_entry(entry))
            .map_err(|e| PortError::permanent("encoding a quarantine entry", e))?;
        let options = BlockBlobClientUploadOptions {
            blob_content_type: Some("application/json".into()),
            // Written only if absent: the first copy of a redelivered message is kept.
            if_none_match: Some("*".into()),
            ..Default::default()
        };
        match client
            .blob_client(&blob_name(&entry.id))
            .upload(RequestContent::from(document), Some(options))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(409 | 412)) => Ok(()),
            Err(e) => Err(port_error(
                format!("writing quarantine blob for {:?}", entry.id),
                e,
            )),
        }
    }

    async fn read_one(
        &self,
        client: &BlobContainerClient,
        name: &str,
    ) -> PortResult<Option<QuarantineEntry>> {
        let context = || format!("reading quarantine blob {name:?}");
        let response = match client.blob_client(name).download(None).await {
            Ok(response) => response,
            // Removed (replayed) since it was listed.
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(port_error(context(), e)),
        };
        let bytes = response
            .body
            .collect()
            .await
            .map_err(|e| port_error(context(), e))?;
        let stored: StoredEntry =
            serde_json::from_slice(&bytes).map_err(|e| PortError::permanent(context(), e))?;
        stored
            .into_entry()
            .map(Some)
            .map_err(|e| PortError::permanent(context(), e))
    }
}

#[async_trait]
impl Quarantine for BlobQuarantine {
    async fn put(&self, entries: &[QuarantineEntry]) -> PortResult<()> {
        let client = self.client()?;
        let writes: Vec<_> = entries.iter().map(|e| self.put_one(&client, e)).collect();
        stream::iter(writes)
            .buffer_unordered(PARALLEL_CALLS)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Lists every blob name with its creation time (names carry no order), then reads the
    /// newest `limit`.
    async fn list(&self, limit: usize) -> PortResult<Vec<QuarantineEntry>> {
        let client = self.client()?;
        let context = || "listing the quarantine container".to_string();
        let mut blobs = client
            .list_blobs(None)
            .map_err(|e| port_error(context(), e))?;
        let mut names = Vec::new();
        while let Some(blob) = blobs
            .try_next()
            .await
            .map_err(|e| port_error(context(), e))?
        {
            let created = blob.properties.as_ref().and_then(|p| p.creation_time);
            if let Some(name) = blob.name {
                names.push((created, name));
            }
        }
        names.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        names.truncate(limit);
        let reads: Vec<_> = names
            .iter()
            .map(|(_, name)| self.read_one(&client, name))
            .collect();
        let mut entries: Vec<QuarantineEntry> = stream::iter(reads)
            .buffered(PARALLEL_CALLS)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        entries.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
        Ok(entries)
    }

    async fn remove(&self, id: &str) -> PortResult<bool> {
        let client = self.client()?;
        match client.blob_client(&blob_name(id)).delete(None).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(port_error(
                format!("removing quarantine blob for {id:?}"),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_are_deterministic_and_valid_for_any_id() {
        assert_eq!(blob_name("process:obs-1a2b:3"), "process:obs-1a2b:3.json");
        let odd = blob_name("summarize:a/b c?é");
        assert_eq!(odd, blob_name("summarize:a/b c?é"));
        assert!(odd.starts_with("summarize:a_b_c__~"), "{odd}");
        assert_ne!(
            blob_name("a/b"),
            blob_name("a?b"),
            "distinct ids, distinct blobs"
        );
        assert!(blob_name(&"x".repeat(5_000)).len() < 1_024);
    }

    #[test]
    fn stored_entries_keep_the_exact_bytes() {
        for body in [b"{\"series\":1}".to_vec(), vec![0xff, 0x00, 0xfe, b'\n']] {
            let entry = QuarantineEntry {
                id: "process:x".into(),
                at: Utc::now(),
                function: "process".into(),
                source: "m-1".into(),
                reason: "bad".into(),
                body: body.clone(),
            };
            let json = serde_json::to_vec(&StoredEntry::from_entry(&entry)).unwrap();
            let back: StoredEntry = serde_json::from_slice(&json).unwrap();
            assert_eq!(back.into_entry().unwrap(), entry);
        }
    }
}
