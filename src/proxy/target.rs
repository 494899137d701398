//! A rule's `target`: the base URL requests are sent to.

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};

/// A parsed, validated target base URL (`http://host:port/prefix`).
#[derive(Debug, Clone)]
pub struct TargetBase {
    /// `http` or `https` (`ws`/`wss` targets are stored as their HTTP equivalents,
    /// since a WebSocket handshake is an HTTP request).
    pub scheme: Scheme,
    /// `host[:port]` as written.
    pub authority: Authority,
    /// Path prefix without a trailing `/`; empty for none.
    pub prefix: String,
}

impl TargetBase {
    /// Parses a target after `${ENV}` substitution.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: Uri = text
            .parse()
            .map_err(|error| format!("target \"{text}\" is not a valid URL: {error}"))?;
        let scheme = match uri.scheme_str() {
            Some("http") | Some("ws") => Scheme::HTTP,
            Some("https") | Some("wss") => Scheme::HTTPS,
            Some(other) => {
                return Err(format!(
                    "target \"{text}\" has scheme \"{other}\"; use http, https, ws or wss"
                ))
            }
            None => {
                return Err(format!(
                    "target \"{text}\" needs a scheme and a host, like http://localhost:3000"
                ))
            }
        };
        let authority = uri
            .authority()
            .cloned()
            .filter(|authority| !authority.host().is_empty())
            .ok_or_else(|| format!("target \"{text}\" has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "target \"{text}\" has credentials in it; send them with `headers` instead"
            ));
        }
        if uri.query().is_some() || text.contains('#') {
            return Err(format!(
                "target \"{text}\" has a query or fragment; the client's query is sent on as is"
            ));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(TargetBase {
            scheme,
            authority,
            prefix,
        })
    }

    /// The absolute URL for `path` (the relative path after any rewrite).
    pub fn url_for(&self, path: &str) -> String {
        let mut url = String::with_capacity(
            self.scheme.as_str().len()
                + 3
                + self.authority.as_str().len()
                + self.prefix.len()
                + path.len()
                + 1,
        );
        url.push_str(self.scheme.as_str());
        url.push_str("://");
        url.push_str(self.authority.as_str());
        url.push_str(&self.prefix);
        if !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(path);
        url
    }

    /// The `Host` header value for `changeOrigin`.
    pub fn host_header(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(self.authority.as_str()).ok()
    }

    /// The `Origin` header value for `changeOrigin`: `scheme://authority`.
    pub fn origin_header(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!("{}://{}", self.scheme, self.authority)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_join_prefix_and_path() {
        let base = TargetBase::parse("http://127.0.0.1:9000/base/").unwrap();
        assert_eq!(base.url_for("/users"), "http://127.0.0.1:9000/base/users");
        assert_eq!(base.url_for(""), "http://127.0.0.1:9000/base/");
        let base = TargetBase::parse("wss://example.test").unwrap();
        assert_eq!(base.url_for("/x"), "https://example.test/x");
        assert_eq!(
            base.origin_header().unwrap(),
            HeaderValue::from_static("https://example.test")
        );
    }

    #[test]
    fn bad_targets_are_refused() {
        for bad in [
            "localhost:3000",
            "/relative",
            "ftp://host",
            "http://user:pw@host",
            "http://host/?q=1",
            "http://",
        ] {
            assert!(TargetBase::parse(bad).is_err(), "{bad}");
        }
    }
}
