//! Storage connection strings and SAS tokens.
//!
//! `azure_storage_blob` authorizes with Microsoft Entra ID or with a SAS carried in the URL; it
//! has no Shared Key signing. An account key (a connection string, or Azurite's development
//! account) is therefore turned into short-lived SAS tokens here, scoped as narrowly as the
//! quarantine allows: a service SAS for the blobs of its one container, and an account SAS that
//! can only create containers, both usable over https only (but toward a loopback emulator).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

use azure_core::http::Url;

use crate::adapters::connection_string::{Pairs, SyntaxError};

/// The SAS version signed; 2020-12-06 and later sign the encryption scope line too.
const SAS_VERSION: &str = "2021-08-06";
/// What the quarantine does in its container: read, add, create, write, delete, list (a service
/// SAS's permissions, in their required order).
const CONTAINER_PERMISSIONS: &str = "racwdl";

/// Azurite's development account, as documented by Azurite (`UseDevelopmentStorage=true`).
/// The key is published; it guards nothing but a local emulator.
const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";
const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEVELOPMENT_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// Query values escaped the way SAS tokens are: everything but unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// A storage account's name and key. The key never appears in `Debug` output or errors.
#[derive(Clone)]
pub struct AccountKey {
    pub account: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Which protocols a SAS may be used over: https only, except toward a loopback emulator
/// (Azurite speaks plain http; `StorageConnection::parse` refuses http anywhere else).
pub fn sas_protocols(endpoint: &Url) -> &'static str {
    if endpoint.scheme() == "https" {
        "https"
    } else {
        "https,http"
    }
}

impl AccountKey {
    /// The string an account SAS signs (Create an account SAS, version 2020-12-06 and later):
    /// account, permissions, services, resource types, start, expiry, IP, protocol, version,
    /// encryption scope, each followed by a newline.
    fn account_string_to_sign(&self, expiry: &str, protocols: &str) -> String {
        [
            self.account.as_str(),
            "c",
            "b",
            "c",
            "",
            expiry,
            "",
            protocols,
            SAS_VERSION,
            "",
            "",
        ]
        .join("\n")
    }

    /// The string a Blob service SAS for one container signs (Create a service SAS, version
    /// 2020-12-06 and later): permissions, start, expiry, canonical resource, identifier, IP,
    /// protocol, version, resource, snapshot time, encryption scope, and the five response
    /// header overrides.
    fn container_string_to_sign(&self, container: &str, expiry: &str, protocols: &str) -> String {
        let resource = format!("/blob/{}/{container}", self.account);
        [
            CONTAINER_PERMISSIONS,
            "",
            expiry,
            &resource,
            "",
            "",
            protocols,
            SAS_VERSION,
            "c",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
        .join("\n")
    }

    fn sign(&self, string_to_sign: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(string_to_sign.as_bytes());
        escape(&STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// An account SAS that can do one thing: create containers (resource type container,
    /// permission create) — what the quarantine needs once, at start-up, before its container
    /// exists. Valid until `expiry`, over `protocols` (see [`sas_protocols`]).
    pub fn container_creation_sas(&self, expiry: DateTime<Utc>, protocols: &str) -> String {
        let expiry = expiry.to_rfc3339_opts(SecondsFormat::Secs, true);
        let signature = self.sign(&self.account_string_to_sign(&expiry, protocols));
        format!(
            "sv={SAS_VERSION}&ss=b&srt=c&sp=c&se={}&spr={}&sig={signature}",
            escape(&expiry),
            escape(protocols)
        )
    }

    /// A service SAS for the blobs of `container` and nothing else: the quarantine's everyday
    /// token. Valid until `expiry`, over `protocols` (see [`sas_protocols`]).
    pub fn container_sas(&self, container: &str, expiry: DateTime<Utc>, protocols: &str) -> String {
        let expiry = expiry.to_rfc3339_opts(SecondsFormat::Secs, true);
        let signature = self.sign(&self.container_string_to_sign(container, &expiry, protocols));
        format!(
            "sv={SAS_VERSION}&sr=c&sp={CONTAINER_PERMISSIONS}&se={}&spr={}&sig={signature}",
            escape(&expiry),
            escape(protocols)
        )
    }
}

/// Query values escaped the way SAS tokens are: everything but unreserved characters.
fn escape(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// What a storage connection string says about the Blob service.
#[derive(Debug, Clone)]
pub struct StorageConnection {
    pub blob_endpoint: Url,
    pub key: AccountKey,
}

/// Why a connection string was refused. Never carries the key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("AccountKey is not base64")]
    BadKey,
    #[error("{0} is not a URL")]
    BadUrl(&'static str),
    /// The key would travel in the clear: plain `http` only to a loopback emulator (Azurite).
    #[error("the Blob endpoint must use https (http only for a loopback emulator)")]
    Insecure,
}

impl StorageConnection {
    /// Parses `DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…;EndpointSuffix=…` or
    /// `…;BlobEndpoint=…`, and `UseDevelopmentStorage=true` (Azurite on its default port), with
    /// the crate's one connection-string parser. Settings of the other services
    /// (`QueueEndpoint`, `TableEndpoint`…) are ignored.
    pub fn parse(text: &str) -> Result<Self, ConnectionStringError> {
        let pairs = Pairs::parse(text)?;
        let development = pairs
            .get("usedevelopmentstorage")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let (account, key) = if development {
            (DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY)
        } else {
            (
                pairs
                    .get("accountname")
                    .ok_or(ConnectionStringError::Missing("AccountName"))?,
                pairs
                    .get("accountkey")
                    .ok_or(ConnectionStringError::Missing("AccountKey"))?,
            )
        };
        let endpoint = match pairs.get("blobendpoint") {
            Some(url) => url.to_string(),
            None if development => DEVELOPMENT_BLOB_ENDPOINT.to_string(),
            None => {
                let protocol = pairs.get("defaultendpointsprotocol").unwrap_or("https");
                let suffix = pairs.get("endpointsuffix").unwrap_or("core.windows.net");
                format!("{protocol}://{account}.blob.{suffix}")
            }
        };
        let blob_endpoint =
            Url::parse(&endpoint).map_err(|_| ConnectionStringError::BadUrl("BlobEndpoint"))?;
        if !crate::adapters::connection_string::is_secure_or_loopback(&blob_endpoint) {
            return Err(ConnectionStringError::Insecure);
        }
        Ok(Self {
            blob_endpoint,
            key: AccountKey {
                account: account.to_string(),
                key: STANDARD
                    .decode(key)
                    .map_err(|_| ConnectionStringError::BadKey)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str, key: &str) -> AccountKey {
        AccountKey {
            account: account.into(),
            key: STANDARD.decode(key).unwrap(),
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for insecure in [
            "AccountName=a;AccountKey=AAAA;BlobEndpoint=http://example.com/a;",
            "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=AAAA",
        ] {
            assert_eq!(
                StorageConnection::parse(insecure).unwrap_err(),
                ConnectionStringError::Insecure
            );
        }
        for loopback in [
            "http://127.0.0.1:10000/a",
            "http://localhost:10000/a",
            "http://[::1]:1/a",
        ] {
            let text = format!("AccountName=a;AccountKey=AAAA;BlobEndpoint={loopback};");
            assert!(StorageConnection::parse(&text).is_ok(), "{loopback}");
        }
    }

    #[test]
    fn the_strings_to_sign_have_the_documented_lines() {
        let k = key("acct", "AAAA");
        assert_eq!(
            k.account_string_to_sign("2026-11-26T00:00:00Z", "https"),
            "acct\nc\nb\nc\n\n2026-11-26T00:00:00Z\n\nhttps\n2021-08-06\n\n"
        );
        assert_eq!(
            k.container_string_to_sign("quarantine", "2026-11-26T00:00:00Z", "https"),
            "racwdl\n\n2026-11-26T00:00:00Z\n/blob/acct/quarantine\n\n\nhttps\n2021-08-06\nc\n\n\n\n\n\n\n"
        );
    }

    /// The signature was computed independently with Python's `hmac` over the container string
    /// above for Azurite's account (`base64(hmac.new(b64decode(key), s.encode(),
    /// sha256).digest())`); Azurite accepting the token is the suite's `blob_quarantine` test.
    #[test]
    fn the_container_sas_is_scoped_signed_and_https_only() {
        let k = key("devstoreaccount1", DEVELOPMENT_KEY);
        let expiry = DateTime::parse_from_rfc3339("2026-11-26T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let sas = k.container_sas("quarantine", expiry, "https");
        assert_eq!(
            sas,
            format!(
                "sv=2021-08-06&sr=c&sp=racwdl&se=2026-11-26T00%3A00%3A00Z&spr=https&sig={}",
                escape(PYTHON_SIGNATURE)
            )
        );
        let https: Url = "https://acct.blob.core.windows.net".parse().unwrap();
        let azurite: Url = "http://127.0.0.1:10000/devstoreaccount1".parse().unwrap();
        assert_eq!(sas_protocols(&https), "https");
        assert_eq!(sas_protocols(&azurite), "https,http");
        let creation = k.container_creation_sas(expiry, "https");
        assert!(creation.contains("&srt=c&sp=c&"), "{creation}");
    }
    const PYTHON_SIGNATURE: &str = "/OpHOx9jPM9QekdqB/RtIm7xs+CgQc8WnoH83FBrQRs=";

    #[test]
    fn connection_strings() {
        let c = StorageConnection::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=AAAA;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(
            c.blob_endpoint.as_str(),
            "https://acct.blob.core.windows.net/"
        );
        assert_eq!(c.key.account, "acct");

        let c = StorageConnection::parse(
            "AccountName=a;AccountKey=AAAA;BlobEndpoint=http://127.0.0.1:10000/a;",
        )
        .unwrap();
        assert_eq!(c.blob_endpoint.as_str(), "http://127.0.0.1:10000/a");

        let c = StorageConnection::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c.key.account, "devstoreaccount1");
        assert_eq!(c.blob_endpoint.port(), Some(10000));

        assert_eq!(
            StorageConnection::parse("AccountName=a").unwrap_err(),
            ConnectionStringError::Missing("AccountKey")
        );
        assert_eq!(
            StorageConnection::parse("AccountName=a;AccountKey=not base64!").unwrap_err(),
            ConnectionStringError::BadKey
        );
        assert_eq!(
            StorageConnection::parse("nonsense").unwrap_err(),
            ConnectionStringError::Syntax(SyntaxError::NotKeyValue { part: 1 })
        );
        let debug = format!(
            "{:?}",
            StorageConnection::parse("UseDevelopmentStorage=true")
        );
        assert!(!debug.contains(DEVELOPMENT_KEY) && debug.contains("redacted"));
    }

    /// Account keys end in `==`; the padding must reach the base64 decoder, whatever the case
    /// of the keys and however the value is quoted.
    #[test]
    fn account_keys_keep_their_padding_in_any_case_and_quoted() {
        for text in [
            format!("AccountName=devstoreaccount1;AccountKey={DEVELOPMENT_KEY}"),
            format!("accountname=devstoreaccount1;ACCOUNTKEY={DEVELOPMENT_KEY};"),
            format!("AccountName = devstoreaccount1 ; AccountKey = \"{DEVELOPMENT_KEY}\" ;"),
        ] {
            let c = StorageConnection::parse(&text).unwrap();
            assert_eq!(
                c.key.key,
                STANDARD.decode(DEVELOPMENT_KEY).unwrap(),
                "{text}"
            );
            assert_eq!(
                c.blob_endpoint.as_str(),
                "https://devstoreaccount1.blob.core.windows.net/"
            );
        }
    }

    #[test]
    fn errors_never_hold_the_key() {
        for text in [
            format!("AccountName=a;AccountKey='{DEVELOPMENT_KEY}"),
            format!("AccountName=a;AccountKey={DEVELOPMENT_KEY};AccountKey={DEVELOPMENT_KEY}"),
            format!("AccountName=a;AccountKey={DEVELOPMENT_KEY};BlobEndpoint=not a url"),
            format!("AccountName=a;AccountKey={DEVELOPMENT_KEY}!"),
            format!("AccountName=a;{DEVELOPMENT_KEY}x"),
        ] {
            let err = StorageConnection::parse(&text).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("Eby8vdM02xNOcqFl"), "{shown}");
        }
    }
}
