//! Resumable HTTP(S) downloads into a `.partial` file: blocking `ureq` over rustls (no async
//! runtime, no system TLS library), proxies from the usual environment variables, progress
//! through an observer, and a stop flag checked after every chunk.
//!
//! The partial file only ever grows by appending what the server sent for the bytes after its
//! current end (HTTP `Range: bytes=N-`, RFC 9110 section 14), so at any moment, even after a
//! crash, it is a prefix of the remote file and the next attempt resumes from its length. A
//! server that ignores the range (status 200) restarts the file from zero.
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with an error status (404, 403, ...).
    #[error("HTTP {status} {reason}")]
    Status { status: u16, reason: String },
    /// The server sent a web page where a weight file was expected (Google Drive's "quota
    /// exceeded" or "cannot scan for viruses" pages).
    #[error("the server sent a web page instead of the file (quota exceeded or sign-in needed?)")]
    WebPage,
    /// No connection, DNS failure, TLS failure, a connection cut too often, ...
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The stop flag was set; the partial file is kept for a later resume.
    #[error("interrupted")]
    Interrupted,
}

/// Download progress, for a progress bar.
pub trait FetchObserver {
    /// A request got an answer: the transfer starts at `from` bytes of `total` (when known).
    fn started(&mut self, _url: &str, _from: u64, _total: Option<u64>) {}
    /// `done` bytes of the file are now in the partial file.
    fn progress(&mut self, _done: u64) {}
    /// The connection broke after some progress; the next request resumes from `done`.
    fn resuming(&mut self, _url: &str, _done: u64, _error: &str) {}
}

impl FetchObserver for () {}

/// Time limits of one request.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest silence while reading before the connection counts as broken (and is resumed).
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(30), read: Duration::from_secs(60) }
    }
}

/// Requests in a row that may fail without a single new byte before giving up.
const MAX_FAILED_ATTEMPTS: usize = 4;
/// The pause before the first retry of a request that brought nothing; it doubles with each
/// further failure (0.5 s, 1 s, 2 s), so a refused connection is not hammered.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const CHUNK: usize = 1 << 16;

/// Downloads `url` into `partial`, resuming from the bytes already there. Returns the file's
/// length once the server has sent all of it. On every error the partial file is kept.
pub fn fetch(
    url: &str,
    partial: &Path,
    observer: &mut dyn FetchObserver,
    stop: &AtomicBool,
    timeouts: Timeouts,
) -> Result<u64, FetchError> {
    let mut failures = 0;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(FetchError::Interrupted);
        }
        let before = file_len(partial);
        match fetch_once(url, partial, observer, stop, timeouts) {
            Ok(Some(len)) => return Ok(len),
            Ok(None) => failures = 0, // restarted from zero: try again at once
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(e)) => {
                let after = file_len(partial);
                if after > before {
                    failures = 0;
                } else {
                    failures += 1;
                }
                if failures >= MAX_FAILED_ATTEMPTS {
                    return Err(e);
                }
                observer.resuming(url, after, &e.to_string());
                if failures > 0 {
                    backoff(failures, stop)?;
                }
            }
        }
    }
}

/// Waits before asking a struggling server again: [`FIRST_BACKOFF`] doubled for each failure
/// after the first, checking the stop flag every 100 ms.
fn backoff(failures: usize, stop: &AtomicBool) -> Result<(), FetchError> {
    let pause = FIRST_BACKOFF * (1u32 << (failures - 1).min(6));
    let until = std::time::Instant::now() + pause;
    while std::time::Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return Err(FetchError::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(100).min(pause));
    }
    Ok(())
}

enum Attempt {
    Fatal(FetchError),
    Retry(FetchError),
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// One request. `Ok(Some(len))`: complete; `Ok(None)`: the partial file was reset to zero and
/// should be requested again.
fn fetch_once(
    url: &str,
    partial: &Path,
    observer: &mut dyn FetchObserver,
    stop: &AtomicBool,
    timeouts: Timeouts,
) -> Result<Option<u64>, Attempt> {
    let from = file_len(partial);
    let response = match request(url, from, partial, timeouts)? {
        Requested::Response(r) => *r,
        Requested::Done(result) => return Ok(result),
    };
    let Some((start, total)) = body_range(&response, from, partial)? else {
        return Ok(None);
    };
    observer.started(url, start, total);
    receive(response, partial, start, total, observer, stop)
}

/// What a request brought: a response whose body is to be read, or the end of the attempt.
enum Requested {
    Response(Box<ureq::Response>),
    /// `fetch_once`'s result without a body: complete (`Some`) or reset to zero (`None`).
    Done(Option<u64>),
}

/// Sends the request for the bytes after `from`; classifies refusals as fatal or worth a retry.
fn request(url: &str, from: u64, partial: &Path, timeouts: Timeouts) -> Result<Requested, Attempt> {
    let agent = agent_for(url, timeouts).map_err(Attempt::Fatal)?;
    let mut request = agent.get(url).set("Accept-Encoding", "identity");
    if from > 0 {
        request = request.set("Range", &format!("bytes={from}-"));
    }
    match request.call() {
        Ok(r) => Ok(Requested::Response(Box::new(r))),
        Err(ureq::Error::Status(416, r)) => {
            // Range not satisfiable: the partial file already holds the whole file, or more.
            let total = r.header("Content-Range").and_then(content_range_total);
            if total == Some(from) {
                return Ok(Requested::Done(Some(from)));
            }
            truncate(partial).map_err(|e| Attempt::Fatal(e.into()))?;
            Ok(Requested::Done(None))
        }
        Err(ureq::Error::Status(status, r)) => {
            let e = FetchError::Status { status, reason: r.status_text().to_string() };
            // Server trouble may pass; a missing or forbidden file will not.
            Err(if status >= 500 || status == 408 || status == 429 {
                Attempt::Retry(e)
            } else {
                Attempt::Fatal(e)
            })
        }
        Err(ureq::Error::Transport(t)) => {
            let e = FetchError::Network(one_line(&t.to_string()));
            Err(match t.kind() {
                ureq::ErrorKind::Dns
                | ureq::ErrorKind::InvalidUrl
                | ureq::ErrorKind::UnknownScheme
                | ureq::ErrorKind::InvalidProxyUrl
                | ureq::ErrorKind::ProxyUnauthorized => Attempt::Fatal(e),
                _ => Attempt::Retry(e),
            })
        }
    }
}

/// Where the response's body starts in the file and the file's total length, from its status
/// and headers; `None` when the partial file was reset and the request must be made again.
#[allow(clippy::type_complexity)]
fn body_range(
    response: &ureq::Response,
    from: u64,
    partial: &Path,
) -> Result<Option<(u64, Option<u64>)>, Attempt> {
    if response.content_type() == "text/html" {
        return Err(Attempt::Fatal(FetchError::WebPage));
    }
    let length: Option<u64> = response.header("Content-Length").and_then(|v| v.trim().parse().ok());
    let (start, total) = match response.status() {
        206 => {
            let range = response.header("Content-Range").and_then(content_range);
            match range {
                Some((s, total)) if s == from => (from, total.or(length.map(|l| from + l))),
                // A range we did not ask for: start over.
                _ => {
                    truncate(partial).map_err(|e| Attempt::Fatal(e.into()))?;
                    return Ok(None);
                }
            }
        }
        200 => {
            if from > 0 {
                truncate(partial).map_err(|e| Attempt::Fatal(e.into()))?;
            }
            (0, length)
        }
        other => {
            let e =
                FetchError::Status { status: other, reason: response.status_text().to_string() };
            return Err(Attempt::Fatal(e));
        }
    };
    Ok(Some((start, total)))
}

/// Appends the body to the partial file, checking the stop flag after every chunk.
fn receive(
    response: ureq::Response,
    partial: &Path,
    start: u64,
    total: Option<u64>,
    observer: &mut dyn FetchObserver,
    stop: &AtomicBool,
) -> Result<Option<u64>, Attempt> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(partial)
        .map_err(|e| Attempt::Fatal(e.into()))?;
    let mut reader = response.into_reader();
    let mut done = start;
    let mut buf = vec![0u8; CHUNK];
    loop {
        if stop.load(Ordering::SeqCst) {
            let _ = file.sync_all();
            return Err(Attempt::Fatal(FetchError::Interrupted));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = file.sync_all();
                return Err(Attempt::Retry(FetchError::Network(format!(
                    "connection broken after {done} bytes: {}",
                    one_line(&e.to_string())
                ))));
            }
        };
        file.write_all(&buf[..n]).map_err(|e| Attempt::Fatal(e.into()))?;
        done += n as u64;
        observer.progress(done);
    }
    file.sync_all().map_err(|e| Attempt::Fatal(e.into()))?;
    match total {
        Some(t) if done < t => Err(Attempt::Retry(FetchError::Network(format!(
            "connection closed after {done} of {t} bytes"
        )))),
        Some(t) if done > t => {
            truncate(partial).map_err(|e| Attempt::Fatal(e.into()))?;
            Err(Attempt::Retry(FetchError::Network(format!(
                "the server sent {done} bytes, more than the {t} it announced"
            ))))
        }
        _ => Ok(Some(done)),
    }
}

fn truncate(path: &Path) -> std::io::Result<()> {
    File::create(path).map(|_| ())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`).
fn content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// The total of `bytes */TOTAL` (a 416 answer).
fn content_range_total(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

fn agent_for(url: &str, timeouts: Timeouts) -> Result<ureq::Agent, FetchError> {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(timeouts.connect)
        .timeout_read(timeouts.read)
        .redirects(10)
        .user_agent(concat!("pulse/", env!("CARGO_PKG_VERSION")));
    if let Some(proxy) = proxy_for(url, &|k| std::env::var(k).ok()) {
        let p = ureq::Proxy::new(&proxy).map_err(|e| {
            FetchError::Network(format!("proxy '{proxy}': {}", one_line(&e.to_string())))
        })?;
        builder = builder.proxy(p);
    }
    Ok(builder.build())
}

/// The proxy for `url` from the conventional variables: `https_proxy`/`HTTPS_PROXY` for https,
/// `http_proxy`/`HTTP_PROXY` for http, else `all_proxy`/`ALL_PROXY`; none when the host is
/// listed in `no_proxy`/`NO_PROXY` (comma-separated host names, domain suffixes such as
/// `.example.com` or `example.com`, IP addresses, optional `:port`, or `*`).
pub fn proxy_for(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let get = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.trim().is_empty()));
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    }
    .to_ascii_lowercase();
    if let Some(no_proxy) = get(&["no_proxy", "NO_PROXY"]) {
        for entry in no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                return None;
            }
            let entry = entry.trim_start_matches('[');
            let name = entry.split([']']).next().unwrap_or(entry);
            let name = if name.matches(':').count() == 1 {
                name.split(':').next().unwrap_or(name)
            } else {
                name
            };
            let name = name.trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase();
            if !name.is_empty() && (host == name || host.ends_with(&format!(".{name}"))) {
                return None;
            }
        }
    }
    let proxy = match scheme.to_ascii_lowercase().as_str() {
        "https" => get(&["https_proxy", "HTTPS_PROXY"]),
        "http" => get(&["http_proxy", "HTTP_PROXY"]),
        _ => None,
    };
    let proxy = proxy.or_else(|| get(&["all_proxy", "ALL_PROXY"]))?;
    Some(if proxy.contains("://") { proxy } else { format!("http://{proxy}") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn proxy(url: &str, vars: &[(&str, &str)]) -> Option<String> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        proxy_for(url, &|k| vars.get(k).cloned())
    }

    #[test]
    fn picks_the_proxy_by_scheme_and_honours_no_proxy() {
        let env = [("HTTPS_PROXY", "http://p:3128"), ("http_proxy", "q:8080")];
        assert_eq!(proxy("https://github.com/x", &env).as_deref(), Some("http://p:3128"));
        assert_eq!(proxy("http://example.org/x", &env).as_deref(), Some("http://q:8080"));
        assert_eq!(proxy("ftp://example.org/x", &env), None);
        assert_eq!(proxy("https://github.com/x", &[]), None);
        assert_eq!(
            proxy("https://a.b/x", &[("ALL_PROXY", "http://all:1")]).as_deref(),
            Some("http://all:1")
        );
        let no = |list: &str, url: &str| {
            proxy(
                url,
                &[("HTTPS_PROXY", "http://p:1"), ("HTTP_PROXY", "http://p:1"), ("NO_PROXY", list)],
            )
        };
        assert_eq!(no("github.com", "https://github.com/x"), None);
        assert_eq!(no("github.com", "https://api.github.com/x"), None);
        assert_eq!(no(".github.com", "https://api.github.com/x"), None);
        assert!(no("github.com", "https://notgithub.com/x").is_some());
        assert_eq!(no("localhost, 127.0.0.1:8080", "http://127.0.0.1:9/x"), None);
        assert_eq!(no("*", "https://anything/x"), None);
        assert_eq!(no("::1", "http://[::1]:80/x"), None);
        assert!(no("other", "https://user@github.com:443/x").is_some());
    }

    #[test]
    fn parses_content_ranges() {
        assert_eq!(content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(content_range("items 1-2/3"), None);
        assert_eq!(content_range_total("bytes */1234"), Some(1234));
    }
}
