//! The one parser of `Key=Value;…` connection strings, shared by the Service Bus, Blob Storage
//! and SQL Server adapters.
//!
//! It exists because those strings are secrets: one parser means one place that decides how
//! keys with `=` in them are read and one place that keeps values out of `Debug` output and
//! error messages. The rules are ADO.NET's (`DbConnectionStringBuilder`), which every Azure
//! service's form is a subset of:
//!
//! - pairs are separated by `;`; empty pairs (a trailing `;`) are ignored;
//! - a pair splits at its first single `=`, so a value may hold more `=` (base64 padding, the
//!   `sr=…&sig=…` of a shared access signature); `==` in a key is a literal `=`;
//! - keys are trimmed and matched case-insensitively (`AccountKey` is `accountkey`);
//! - an unquoted value runs to the next `;` and is trimmed; a value in `'…'` or `"…"` keeps its
//!   spaces and `;`, with the quote doubled to embed it; a value in `{…}` runs to the first `}`
//!   (the SQL Server drivers accept this form, so a string that works there works here);
//! - a key given twice is refused: ADO.NET keeps the last, but two `Endpoint`s or two
//!   `Password`s are a mistake worth reporting rather than a choice to guess at;
//! - keys the caller does not ask for are ignored: every service defines more settings than
//!   Eventide reads (`TransportType`, `QueueEndpoint`, `Connect Timeout`…), and a string copied
//!   from the portal must keep working.
//!
//! Errors name the part or the key at fault, never a value.

use std::collections::HashMap;
use std::fmt;

/// The pairs of one connection string, keys folded to lower case. `Debug` lists the keys only.
#[derive(Clone, PartialEq, Eq)]
pub struct Pairs {
    values: HashMap<String, String>,
}

/// Why a string is not a connection string. Carries key names and positions, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// Counted from 1, so the user can find it without the message quoting the part.
    #[error("part {part} is not Name=value (parts are separated by ';')")]
    NotKeyValue { part: usize },
    #[error("part {part} has no name before its '='")]
    EmptyKey { part: usize },
    #[error("the value of {key} has no closing {closing}")]
    Unclosed { key: String, closing: char },
    #[error("the value of {key} has text after its closing quote")]
    TextAfterQuote { key: String },
    #[error("{key} is given more than once")]
    Duplicate { key: String },
}

impl fmt::Debug for Pairs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&str> = self.values.keys().map(String::as_str).collect();
        keys.sort_unstable();
        f.debug_struct("Pairs")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl Pairs {
    /// Parses `text` by the rules in the module documentation.
    pub fn parse(text: &str) -> Result<Self, SyntaxError> {
        let mut cursor = Cursor { text, at: 0 };
        let mut values = HashMap::new();
        let mut part = 0;
        loop {
            cursor.skip(|c| c == ';' || c.is_whitespace());
            if cursor.at_end() {
                break;
            }
            part += 1;
            let key = cursor.key(part)?;
            let value = cursor.value(&key)?;
            if values.contains_key(&key) {
                return Err(SyntaxError::Duplicate { key });
            }
            values.insert(key, value);
        }
        Ok(Self { values })
    }

    /// The value of `key` (any case), if the string has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(&key.to_lowercase()).map(String::as_str)
    }

    /// The value of the first of `synonyms` the string has: several keys often name one
    /// setting (`User Id`, `UID`, `User`).
    pub fn first_of(&self, synonyms: &[&str]) -> Option<&str> {
        synonyms.iter().find_map(|key| self.get(key))
    }
}

/// A position in the text being parsed. Every delimiter is ASCII, so byte offsets found by
/// `find` always fall on character boundaries.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    fn skip(&mut self, skipped: impl Fn(char) -> bool) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start_matches(skipped).len();
    }

    /// The key up to its separating `=` (consumed), trimmed and lower-cased.
    fn key(&mut self, part: usize) -> Result<String, SyntaxError> {
        let mut key = String::new();
        loop {
            let rest = self.rest();
            let Some(end) = rest.find([';', '=']) else {
                return Err(SyntaxError::NotKeyValue { part });
            };
            key.push_str(&rest[..end]);
            if rest[end..].starts_with(';') {
                return Err(SyntaxError::NotKeyValue { part });
            }
            if rest[end..].starts_with("==") {
                key.push('=');
                self.at += end + 2;
            } else {
                self.at += end + 1;
                break;
            }
        }
        let key = key.trim().to_lowercase();
        if key.is_empty() {
            return Err(SyntaxError::EmptyKey { part });
        }
        Ok(key)
    }

    /// The value after `key=`, through the `;` that ends it (consumed).
    fn value(&mut self, key: &str) -> Result<String, SyntaxError> {
        self.skip(char::is_whitespace);
        let rest = self.rest();
        let value = match rest.chars().next() {
            Some(quote @ ('\'' | '"')) => self.quoted(key, quote)?,
            Some('{') => {
                let Some(end) = rest.find('}') else {
                    return Err(SyntaxError::Unclosed {
                        key: key.to_string(),
                        closing: '}',
                    });
                };
                self.at += end + 1;
                rest[1..end].to_string()
            }
            _ => {
                let end = rest.find(';').unwrap_or(rest.len());
                self.at += end;
                return Ok(rest[..end].trim().to_string());
            }
        };
        // After a closing quote or brace: only spaces up to the `;` or the end.
        self.skip(char::is_whitespace);
        if !(self.at_end() || self.rest().starts_with(';')) {
            return Err(SyntaxError::TextAfterQuote {
                key: key.to_string(),
            });
        }
        Ok(value)
    }

    /// A value in `quote`s, the quote doubled inside it; the cursor ends past the closing one.
    fn quoted(&mut self, key: &str, quote: char) -> Result<String, SyntaxError> {
        self.at += 1;
        let mut value = String::new();
        loop {
            let rest = self.rest();
            let Some(end) = rest.find(quote) else {
                return Err(SyntaxError::Unclosed {
                    key: key.to_string(),
                    closing: quote,
                });
            };
            value.push_str(&rest[..end]);
            if rest[end + 1..].starts_with(quote) {
                value.push(quote);
                self.at += end + 2;
            } else {
                self.at += end + 1;
                return Ok(value);
            }
        }
    }
}

/// Whether a service endpoint keeps keys and tokens off the wire in the clear: `https`, or plain
/// `http` to a loopback host (a local emulator or test server).
pub fn is_secure_or_loopback(url: &azure_core::http::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(|host| {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, key: &str) -> Option<String> {
        Pairs::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .get(key)
            .map(str::to_string)
    }

    #[test]
    fn values_keep_their_equals_signs() {
        assert_eq!(
            value("AccountName=a;AccountKey=c2VjcmV0cw==;", "AccountKey").as_deref(),
            Some("c2VjcmV0cw==")
        );
        assert_eq!(
            value(
                "Endpoint=sb://x/;SharedAccessSignature=SharedAccessSignature sr=a&sig=b%3D&se=1&skn=c",
                "sharedaccesssignature"
            )
            .as_deref(),
            Some("SharedAccessSignature sr=a&sig=b%3D&se=1&skn=c")
        );
        assert_eq!(value("k=a=b=c=", "k").as_deref(), Some("a=b=c="));
        // `==` in a key is a literal `=`; a value starting with `=` is read as it is.
        assert_eq!(value("a==b=c", "a=b").as_deref(), Some("c"));
        assert_eq!(value("k= =v", "k").as_deref(), Some("=v"));
    }

    #[test]
    fn keys_are_trimmed_and_matched_in_any_case() {
        let pairs = Pairs::parse("  AccountNAME = acct ; user id=app").unwrap();
        assert_eq!(pairs.get("accountname"), Some("acct"));
        assert_eq!(pairs.get("AccountName"), Some("acct"));
        assert_eq!(pairs.get("USER ID"), Some("app"));
        assert_eq!(pairs.first_of(&["uid", "User Id"]), Some("app"));
        assert_eq!(pairs.get("userid"), None);
    }

    #[test]
    fn quoted_values_follow_the_ado_net_rules() {
        assert_eq!(value("k=' a;b '", "k").as_deref(), Some(" a;b "));
        assert_eq!(
            value(r#"k="say ""hi""""#, "k").as_deref(),
            Some(r#"say "hi""#)
        );
        assert_eq!(value("k='it''s'", "k").as_deref(), Some("it's"));
        assert_eq!(value(r#"k='a"b'"#, "k").as_deref(), Some(r#"a"b"#));
        assert_eq!(
            value("k={p@ss;w=rd}  ;x=1", "k").as_deref(),
            Some("p@ss;w=rd")
        );
        // A quote inside an unquoted value is an ordinary character.
        assert_eq!(value("k=it's", "k").as_deref(), Some("it's"));
        assert_eq!(value("k=''", "k").as_deref(), Some(""));
        assert_eq!(value("k=   a b   ", "k").as_deref(), Some("a b"));
        assert_eq!(value("k=", "k").as_deref(), Some(""));
        assert_eq!(
            value("Name='Zürich – café'", "name").as_deref(),
            Some("Zürich – café")
        );
    }

    #[test]
    fn empty_parts_are_ignored() {
        let pairs = Pairs::parse(" ;;A=1;; B=2 ;").unwrap();
        assert_eq!((pairs.get("a"), pairs.get("b")), (Some("1"), Some("2")));
        assert_eq!(
            format!("{:?}", Pairs::parse("").unwrap()),
            "Pairs { keys: [], .. }"
        );
    }

    #[test]
    fn malformed_strings_are_refused_by_part_or_key() {
        for (text, want) in [
            (
                "Endpoint=sb://x/;garbage",
                SyntaxError::NotKeyValue { part: 2 },
            ),
            ("nonsense", SyntaxError::NotKeyValue { part: 1 }),
            ("k==v", SyntaxError::NotKeyValue { part: 1 }),
            ("=v", SyntaxError::EmptyKey { part: 1 }),
            (
                "Password='s3cret",
                SyntaxError::Unclosed {
                    key: "password".into(),
                    closing: '\'',
                },
            ),
            (
                "Password={s3cret",
                SyntaxError::Unclosed {
                    key: "password".into(),
                    closing: '}',
                },
            ),
            (
                "Password='s3c'ret",
                SyntaxError::TextAfterQuote {
                    key: "password".into(),
                },
            ),
            (
                "AccountKey=a;accountkey=b",
                SyntaxError::Duplicate {
                    key: "accountkey".into(),
                },
            ),
        ] {
            assert_eq!(Pairs::parse(text).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn debug_output_and_errors_never_hold_a_value() {
        let secret = "c2VjcmV0cw==";
        let pairs = Pairs::parse(&format!("AccountName=acct;AccountKey={secret}")).unwrap();
        let debug = format!("{pairs:?}");
        assert_eq!(
            debug,
            r#"Pairs { keys: ["accountkey", "accountname"], .. }"#
        );
        for text in [
            format!("AccountKey={secret};{secret}"),
            format!("AccountKey='{secret}"),
            format!("AccountKey='{secret}'{secret}"),
            format!("AccountKey={secret};AccountKey={secret}"),
        ] {
            let message = Pairs::parse(&text).unwrap_err().to_string();
            assert!(!message.contains(secret), "{message}");
            assert!(!message.contains("c2Vj"), "{message}");
        }
    }
}
