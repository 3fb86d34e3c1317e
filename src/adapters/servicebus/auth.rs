//! Authorization for the Service Bus REST API: a shared access signature (SAS) signed from a
//! connection string's key, a ready-made SAS from a connection string, or a Microsoft Entra ID
//! bearer token from any `azure_identity` credential.
//!
//! Secrets (keys, signatures, tokens) never appear in `Debug` output or error messages.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_core::credentials::TokenCredential;
use azure_core::http::Url;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;
use tokio::sync::Mutex;

use crate::adapters::connection_string::Pairs;

/// The Entra ID scope of every Service Bus namespace.
pub const SERVICE_BUS_SCOPE: &str = "https://servicebus.azure.net/.default";

/// How long a SAS signed here stays valid.
const SAS_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// A cached Entra ID token is replaced this long before it expires.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Everything but `A-Z a-z 0-9 - _ . ~` is escaped (upper-case hex), as `encodeURIComponent`
/// and the documented samples do. The service checks the signature over `sr` exactly as sent,
/// so any consistent escaping works; this one is the common form.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why authorization could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid Service Bus connection string: {0}")]
    ConnectionString(String),
    /// Getting a token failed (the identity endpoint may be down): retrying can help.
    #[error("getting a Microsoft Entra ID token for Service Bus failed: {0}")]
    Token(String),
}

/// What a connection string holds. Its `Debug` output hides the key and the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// `https://{namespace}.servicebus.windows.net` (no trailing slash); `sb://` is mapped to
    /// `https://`, and `http://` is kept for a loopback host only (test servers).
    pub endpoint: String,
    pub key_name: Option<String>,
    pub key: Option<String>,
    pub shared_access_signature: Option<String>,
    pub entity_path: Option<String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint)
            .field("key_name", &self.key_name)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field(
                "shared_access_signature",
                &self.shared_access_signature.as_ref().map(|_| "<redacted>"),
            )
            .field("entity_path", &self.entity_path)
            .finish()
    }
}

impl ConnectionString {
    /// Parses `Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..`
    /// (or `SharedAccessSignature=..`, optionally `EntityPath=..`) with the crate's one
    /// connection-string parser; other settings (`UseDevelopmentEmulator`, `TransportType`…) do
    /// not apply to REST and are ignored. A plain `http://` endpoint is refused unless it is
    /// loopback: the key's signatures would cross the network in the clear. Errors name the
    /// missing or bad part, never the secret.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let bad = |what: &str| AuthError::ConnectionString(what.to_string());
        let pairs = Pairs::parse(text).map_err(|e| bad(&e.to_string()))?;
        let owned = |key: &str| pairs.get(key).map(str::to_string);
        let cs = ConnectionString {
            endpoint: endpoint(
                pairs
                    .get("endpoint")
                    .ok_or_else(|| bad("Endpoint is missing"))?,
            )?,
            key_name: owned("sharedaccesskeyname"),
            key: owned("sharedaccesskey"),
            shared_access_signature: owned("sharedaccesssignature"),
            entity_path: owned("entitypath"),
        };
        match (&cs.key_name, &cs.key, &cs.shared_access_signature) {
            (Some(name), Some(key), None) if !name.is_empty() && !key.is_empty() => Ok(cs),
            (None, None, Some(sas)) if sas.starts_with("SharedAccessSignature ") => Ok(cs),
            (None, None, Some(_)) => Err(bad(
                "SharedAccessSignature must start with 'SharedAccessSignature '",
            )),
            (_, _, Some(_)) => Err(bad(
                "use either SharedAccessKeyName/SharedAccessKey or SharedAccessSignature, not both",
            )),
            _ => Err(bad(
                "SharedAccessKeyName and SharedAccessKey are both required",
            )),
        }
    }

    /// The credential the connection string describes.
    pub fn credential(&self) -> Credential {
        match (&self.key_name, &self.key, &self.shared_access_signature) {
            (Some(name), Some(key), _) => Credential::SharedKey(SasKey::new(name, key)),
            (_, _, Some(sas)) => Credential::SharedAccessSignature(sas.clone()),
            _ => unreachable!("parse guarantees a key or a signature"),
        }
    }
}

/// The REST endpoint for a connection string's `Endpoint`: `sb://` becomes `https://`,
/// `https://` is kept, and `http://` is kept only for a loopback host (the tests' fake).
fn endpoint(value: &str) -> Result<String, AuthError> {
    let bad = |what: &str| AuthError::ConnectionString(what.to_string());
    let value = value.trim_end_matches('/');
    let endpoint = if let Some(host) = value.strip_prefix("sb://") {
        format!("https://{host}")
    } else if value.starts_with("https://") || value.starts_with("http://") {
        value.to_string()
    } else {
        return Err(bad("Endpoint must start with sb://, https:// or http://"));
    };
    // `http(s)` URLs without a host do not parse.
    let url = Url::parse(&endpoint).map_err(|_| bad("Endpoint is not a URL with a host"))?;
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(bad(
            "Endpoint may use http:// only on a loopback address; use sb:// or https://",
        ));
    }
    Ok(endpoint)
}

/// `localhost`, `127.0.0.0/8` or `::1`: traffic that never leaves the machine.
fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A named shared access key. The raw key text (not its base64 decoding) is the HMAC key, as
/// the documentation's samples use it.
#[derive(Clone)]
pub struct SasKey {
    name: String,
    key: String,
}

impl fmt::Debug for SasKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SasKey {
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
        }
    }

    /// `SharedAccessSignature sr=..&sig=..&se=..&skn=..` for `resource_uri`, valid until the
    /// Unix time `expiry`.
    pub fn token(&self, resource_uri: &str, expiry: u64) -> String {
        let sr = utf8_percent_encode(resource_uri, COMPONENT).to_string();
        self.token_for_encoded(&sr, expiry)
    }

    /// The token for an already URL-encoded resource: the signature is HMAC-SHA256 over
    /// `sr + "\n" + expiry`, base64, then URL-encoded into `sig`.
    pub fn token_for_encoded(&self, sr: &str, expiry: u64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(format!("{sr}\n{expiry}").as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        let sig = utf8_percent_encode(&signature, COMPONENT);
        format!(
            "SharedAccessSignature sr={sr}&sig={sig}&se={expiry}&skn={}",
            self.name
        )
    }
}

/// How requests are authorized.
#[derive(Clone)]
pub enum Credential {
    /// Sign a fresh SAS per request with a shared access key.
    SharedKey(SasKey),
    /// A ready-made SAS (it expires when its issuer decided).
    SharedAccessSignature(String),
    /// A Microsoft Entra ID token for the Service Bus scope, cached until shortly before expiry.
    EntraId(Arc<EntraToken>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SharedKey(key) => f.debug_tuple("SharedKey").field(key).finish(),
            Self::SharedAccessSignature(_) => f.write_str("SharedAccessSignature(<redacted>)"),
            Self::EntraId(_) => f.write_str("EntraId"),
        }
    }
}

impl Credential {
    /// Entra ID through an `azure_identity` credential (managed identity, developer tools…).
    pub fn entra_id(credential: Arc<dyn TokenCredential>) -> Self {
        Self::EntraId(Arc::new(EntraToken::new(credential)))
    }

    /// The `Authorization` header value for a request to `resource_uri` (the entity's URL).
    pub async fn authorization(&self, resource_uri: &str) -> Result<String, AuthError> {
        match self {
            Self::SharedKey(key) => {
                let expiry = unix_now() + SAS_LIFETIME.as_secs();
                Ok(key.token(resource_uri, expiry))
            }
            Self::SharedAccessSignature(sas) => Ok(sas.clone()),
            Self::EntraId(token) => Ok(format!("Bearer {}", token.get().await?)),
        }
    }
}

/// An Entra ID token source with a cache: one token serves every request until it is close to
/// expiry, so the identity endpoint is called about once an hour, not per message.
pub struct EntraToken {
    credential: Arc<dyn TokenCredential>,
    cached: Mutex<Option<(String, u64)>>,
}

impl EntraToken {
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            credential,
            cached: Mutex::new(None),
        }
    }

    async fn get(&self) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        let now = unix_now();
        if let Some((token, expires)) = cached.as_ref()
            && now + TOKEN_REFRESH_MARGIN.as_secs() < *expires
        {
            return Ok(token.clone());
        }
        let fresh = self
            .credential
            .get_token(&[SERVICE_BUS_SCOPE], None)
            .await
            .map_err(|e| AuthError::Token(e.to_string()))?;
        let token = fresh.token.secret().to_string();
        let expires = u64::try_from(fresh.expires_on.unix_timestamp()).unwrap_or(0);
        *cached = Some((token.clone(), expires));
        Ok(token)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A published worked example (Net::Azure::Authorization::SAS, t/11_sas_token.t, which
    /// encodes `sr` in lower case as .NET's `HttpUtility.UrlEncode` does). Independently
    /// reproduced with:
    /// `printf 'https%%3a%%2f%%2fmysvc.servicebus.windows.net%%2fmyentity%%2fmessages\n1476065410'
    ///  | openssl dgst -sha256 -hmac 'AexamplekeyAEXAMPLEKEYAexamplekeyAEXAMPLEKEY=' -binary | base64`
    #[test]
    fn sas_matches_the_worked_example() {
        let key = SasKey::new("mykey", "AexamplekeyAEXAMPLEKEYAexamplekeyAEXAMPLEKEY=");
        assert_eq!(
            key.token_for_encoded(
                "https%3a%2f%2fmysvc.servicebus.windows.net%2fmyentity%2fmessages",
                1_476_065_410
            ),
            "SharedAccessSignature sr=https%3a%2f%2fmysvc.servicebus.windows.net%2fmyentity%2fmessages&sig=nQDGh0YxA8O3SFO7SyrmnTK6BnP%2F33KShAbTXFjmYV0%3D&se=1476065410&skn=mykey"
        );
    }

    /// The form this client sends (upper-case escapes of the entity URL), checked against
    /// `printf 'https%%3A%%2F%%2Fmysvc.servicebus.windows.net%%2Fmyentity\n1476065410' |
    ///  openssl dgst -sha256 -hmac 'AexamplekeyAEXAMPLEKEYAexamplekeyAEXAMPLEKEY=' -binary | base64`.
    #[test]
    fn sas_encodes_the_resource_and_signs_it() {
        let key = SasKey::new("mykey", "AexamplekeyAEXAMPLEKEYAexamplekeyAEXAMPLEKEY=");
        assert_eq!(
            key.token(
                "https://mysvc.servicebus.windows.net/myentity",
                1_476_065_410
            ),
            "SharedAccessSignature sr=https%3A%2F%2Fmysvc.servicebus.windows.net%2Fmyentity&sig=VH%2BZh14eoSrYBPLec5Qshqg7wEupmXtavqQ9hLWiz7M%3D&se=1476065410&skn=mykey"
        );
    }

    #[test]
    fn connection_strings_parse_and_hide_secrets() {
        let cs = ConnectionString::parse(
            "Endpoint=sb://mysvc.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0;EntityPath=q",
        )
        .unwrap();
        assert_eq!(cs.endpoint, "https://mysvc.servicebus.windows.net");
        assert_eq!(cs.entity_path.as_deref(), Some("q"));
        let debug = format!("{cs:?} {:?}", cs.credential());
        assert!(!debug.contains("c2VjcmV0"), "{debug}");

        let sas = ConnectionString::parse(
            "Endpoint=sb://x.servicebus.windows.net;SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1&skn=c",
        )
        .unwrap();
        assert!(matches!(
            sas.credential(),
            Credential::SharedAccessSignature(_)
        ));

        for (bad, why) in [
            (
                "SharedAccessKeyName=a;SharedAccessKey=b",
                "Endpoint is missing",
            ),
            ("Endpoint=sb://x/;SharedAccessKeyName=a", "both required"),
            (
                "Endpoint=ftp://x/;SharedAccessKeyName=a;SharedAccessKey=b",
                "must start with",
            ),
            ("Endpoint=sb://x/;garbage", "Name=value"),
        ] {
            let err = ConnectionString::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    const EXAMPLE_KEY: &str = "AexamplekeyAEXAMPLEKEYAexamplekeyAEXAMPLEKEY=";

    /// The key's base64 padding survives parsing, in any key case and quoted: the credential
    /// signs exactly as the worked example above does.
    #[test]
    fn keys_keep_their_padding_in_any_case_and_quoted() {
        for text in [
            format!(
                "Endpoint=sb://mysvc.servicebus.windows.net/;SharedAccessKeyName=mykey;SharedAccessKey={EXAMPLE_KEY}"
            ),
            format!(
                "endpoint=sb://mysvc.servicebus.windows.net/;SHAREDACCESSKEYNAME=mykey;sharedaccesskey={EXAMPLE_KEY};"
            ),
            format!(
                "Endpoint = sb://mysvc.servicebus.windows.net/ ; SharedAccessKeyName = mykey ; SharedAccessKey = '{EXAMPLE_KEY}'"
            ),
        ] {
            let cs = ConnectionString::parse(&text).unwrap();
            let Credential::SharedKey(key) = cs.credential() else {
                panic!("{text}: not a shared key");
            };
            assert_eq!(
                key.token(
                    "https://mysvc.servicebus.windows.net/myentity",
                    1_476_065_410
                ),
                SasKey::new("mykey", EXAMPLE_KEY).token(
                    "https://mysvc.servicebus.windows.net/myentity",
                    1_476_065_410
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn plain_http_is_refused_unless_it_is_loopback() {
        let with = |endpoint: &str| {
            ConnectionString::parse(&format!(
                "Endpoint={endpoint};SharedAccessKeyName=a;SharedAccessKey=b"
            ))
        };
        for loopback in [
            "http://127.0.0.1:5000/",
            "http://127.1.2.3",
            "http://localhost:5000",
            "http://LOCALHOST",
            "http://[::1]:5000",
        ] {
            assert_eq!(
                with(loopback).unwrap().endpoint,
                loopback.trim_end_matches('/')
            );
        }
        for remote in [
            "http://mysvc.servicebus.windows.net/",
            "http://10.0.0.4:5000",
            "http://[2001:db8::1]",
            "http://localhost.example.com",
        ] {
            let err = with(remote).unwrap_err().to_string();
            assert!(
                err.contains("only on a loopback address"),
                "{remote}: {err}"
            );
        }
        assert_eq!(
            with("https://mysvc.servicebus.windows.net/")
                .unwrap()
                .endpoint,
            "https://mysvc.servicebus.windows.net"
        );
        for (hostless, why) in [
            ("https://", "must start with"),
            ("sb:///", "must start with"),
            ("https://:443", "not a URL with a host"),
        ] {
            let err = with(hostless).unwrap_err().to_string();
            assert!(err.contains(why), "{hostless}: {err}");
        }
    }

    #[test]
    fn errors_and_debug_output_never_hold_the_key() {
        let cs = ConnectionString::parse(&format!(
            "Endpoint=sb://x.servicebus.windows.net;SharedAccessKeyName=send;SharedAccessKey={EXAMPLE_KEY}"
        ))
        .unwrap();
        let debug = format!("{cs:?} {:?}", cs.credential());
        assert!(!debug.contains("Aexamplekey"), "{debug}");
        for bad in [
            format!("Endpoint=sb://x/;SharedAccessKeyName=a;SharedAccessKey='{EXAMPLE_KEY}"),
            format!(
                "Endpoint=sb://x/;SharedAccessKeyName=a;SharedAccessKey={EXAMPLE_KEY};SharedAccessKey={EXAMPLE_KEY}"
            ),
            format!("Endpoint=http://remote/;SharedAccessKeyName=a;SharedAccessKey={EXAMPLE_KEY}"),
            format!("Endpoint=sb://x/;SharedAccessKey={EXAMPLE_KEY}"),
            format!("Endpoint=sb://x/;{EXAMPLE_KEY}"),
        ] {
            let err = ConnectionString::parse(&bad).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("Aexamplekey"), "{shown}");
        }
    }
}
