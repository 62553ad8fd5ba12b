//! Defences of a server on localhost, which every web page the user opens can reach:
//! a random token per start (from the printed URL, then a cookie), loopback Host names only
//! (DNS rebinding), and no cross-origin requests.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::error::api_error;

/// The cookie that carries the token after the first page load.
pub const COOKIE: &str = "relsim_token";
/// The header API clients may send the token in instead.
pub const TOKEN_HEADER: &str = "x-relsim-token";

/// What requests must match.
#[derive(Debug, Clone)]
pub struct Guard {
    pub token: String,
    /// Host names (without port) the server answers to.
    pub hosts: Vec<String>,
    pub port: u16,
    /// Listening on every address: any IP literal is a fine Host (rebinding needs a name).
    pub any_ip: bool,
}

/// A fresh random token (128 bits, hex).
pub fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without an early exit, so response time says nothing about how much matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Guard {
    /// The host names of loopback, plus `extra` when the user asked to listen elsewhere.
    pub fn new(token: String, port: u16, extra: Option<String>) -> Self {
        let mut hosts: Vec<String> = ["127.0.0.1", "localhost", "[::1]"].map(String::from).to_vec();
        let any_ip = extra.as_deref().and_then(|h| h.parse::<std::net::IpAddr>().ok()).is_some_and(|ip| ip.is_unspecified());
        hosts.extend(extra.map(|h| if h.contains(':') { format!("[{h}]") } else { h }));
        Guard { token, hosts, port, any_ip }
    }

    /// Whether `host` (a Host header value) names this server.
    fn host_allowed(&self, host: &str) -> bool {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) if !name.is_empty() && !host.ends_with(']') => (name, Some(port)),
            _ => (host, None),
        };
        let port_ok = match port {
            Some(p) => p.parse::<u16>().ok() == Some(self.port),
            None => self.port == 80,
        };
        let ip_literal = name.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok();
        port_ok && (self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name)) || (self.any_ip && ip_literal))
    }

    /// The token a request carries, from the header or the cookie.
    fn token_of(headers: &HeaderMap) -> Option<&str> {
        if let Some(v) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
            return Some(v);
        }
        if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
            return Some(v);
        }
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v)
    }

    fn token_in_query(uri: &Uri) -> Option<&str> {
        uri.query()?.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "token").map(|(_, v)| v)
    }
}

/// Paths any client may fetch without the token: nothing in them is private.
fn public(path: &str) -> bool {
    path == "/api/health" || path == "/favicon.svg" || path == "/sw.js"
}

/// The middleware: refuses foreign hosts and origins, then requires the token.
pub async fn guard(State(guard): State<std::sync::Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !guard.host_allowed(host) {
        return api_error(StatusCode::FORBIDDEN, format!("Host `{host}` is not this server (only loopback names are answered)"));
    }
    // Browsers send Origin on cross-origin requests and on same-origin POSTs: it must be ours.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ours = format!("http://{host}");
        if origin.as_bytes() != ours.as_bytes() {
            return api_error(StatusCode::FORBIDDEN, "cross-origin requests are refused");
        }
    }
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site") {
        return api_error(StatusCode::FORBIDDEN, "cross-site requests are refused");
    }
    let path = request.uri().path().to_string();
    if public(&path) {
        return next.run(request).await;
    }
    if Guard::token_of(headers).is_some_and(|t| same(t, &guard.token)) {
        return next.run(request).await;
    }
    // The printed URL carries the token once: store it in a cookie and drop it from the address bar.
    if let Some(token) = Guard::token_in_query(request.uri()) {
        if same(token, &guard.token) && request.method() == axum::http::Method::GET {
            // Everything else in the query (a shared view, a classroom lesson) survives.
            let rest: Vec<&str> = request.uri().query().unwrap_or("").split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("token=")).collect();
            let target = if rest.is_empty() { path.clone() } else { format!("{path}?{}", rest.join("&")) };
            let mut response = Redirect::to(&target).into_response();
            let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", guard.token);
            response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("hex token"));
            return response;
        }
    }
    if path.starts_with("/api/") || path.starts_with("/v1/") {
        api_error(StatusCode::UNAUTHORIZED, "missing or wrong token: open the URL that `relsim serve` printed")
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><title>relsim</title><p>Open the link that <code>relsim serve</code> printed (it carries this session's token).</p>",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_on_our_port_are_hosts() {
        let g = Guard::new("t".into(), 8737, None);
        for ok in ["127.0.0.1:8737", "localhost:8737", "LOCALHOST:8737", "[::1]:8737"] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example:8737", "127.0.0.1:80", "127.0.0.1", "", "localhost.evil.example:8737", "[::1]", "127.0.0.1:8737:1"] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let lan = Guard::new("t".into(), 8737, Some("192.168.1.5".into()));
        assert!(lan.host_allowed("192.168.1.5:8737"));
        assert!(!lan.host_allowed("10.0.0.1:8737"));
        let all = Guard::new("t".into(), 8737, Some("0.0.0.0".into()));
        assert!(all.host_allowed("10.0.0.1:8737") && !all.host_allowed("evil.example:8737"));
    }

    #[test]
    fn tokens_come_from_header_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; relsim_token=abc; c=d"));
        assert_eq!(Guard::token_of(&h), Some("abc"));
        h.insert(TOKEN_HEADER, HeaderValue::from_static("xyz"));
        assert_eq!(Guard::token_of(&h), Some("xyz"));
        let mut b = HeaderMap::new();
        b.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        assert_eq!(Guard::token_of(&b), Some("k"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert_eq!(new_token().len(), 32);
        assert_ne!(new_token(), new_token());
    }
}
