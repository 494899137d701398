//! Plain HTTP proxying: the client's request goes to the target with its body
//! streamed, and the target's response comes back the same way. Neither body is
//! ever held whole: hyper reads the next chunk only once the previous one is
//! written, so a slow reader on either end slows the other end down.

use axum::body::Body;
use axum::response::Response;
use http::header::EXPECT;
use http::{Request, Uri, Version};
use hyper::body::Incoming;

use super::client::Clients;
use super::errors::Failure;
use super::headers::{prepare_outgoing, strip_hop_by_hop};
use super::rules::RuleMatch;
use super::ProxyContext;

/// Sends `request` to the matched target and returns the target's response.
pub async fn forward(
    clients: &Clients,
    matched: &RuleMatch,
    request: Request<Body>,
    context: &ProxyContext<'_>,
) -> Result<Response, Failure> {
    let (parts, body) = request.into_parts();
    let uri = target_uri(&matched.target, parts.uri.query())?;
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // The front door already answered `100 Continue` (hyper does when the body is
    // read); the target gets the body straight away.
    headers.remove(EXPECT);
    prepare_outgoing(&mut headers, &matched.rule, context);

    let mut outgoing = Request::new(body);
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = uri;
    *outgoing.version_mut() = Version::HTTP_11;
    *outgoing.headers_mut() = headers;

    let response = clients
        .send(matched.rule.secure, outgoing, context.timeout)
        .await?;
    Ok(relay(response))
}

/// The target's response for the client: hop-by-hop headers removed, body streamed.
pub fn relay(response: http::Response<Incoming>) -> Response {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, Body::new(body))
}

/// `target` (an absolute URL without query) plus the client's query, kept exactly.
pub fn target_uri(target: &str, query: Option<&str>) -> Result<Uri, Failure> {
    let url = match query {
        Some(query) => format!("{target}?{query}"),
        None => target.to_owned(),
    };
    url.parse::<Uri>()
        .map_err(|error| Failure::BadUrl(error.to_string()))
}
