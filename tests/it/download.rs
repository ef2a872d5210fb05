//! `pulse download` against HTTP servers these tests start on 127.0.0.1 (nothing else is
//! reached): a connection cut half-way then resumed with a Range request, checksum mismatches,
//! a 404 then the next source, a slow server interrupted (library stop flag and SIGINT), proxy
//! variables, and an existing model in the way.

use crate::common::{fixture, pulse, s, TestDir};
use pulse::pipelines::download::{self, DownloadError, DownloadOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the server does with one request.
#[derive(Clone)]
enum Reply {
    /// The file, honouring `Range: bytes=N-` with 206.
    File(Arc<Vec<u8>>),
    /// Announces the whole file but closes the connection after `n` bytes.
    CutAfter(Arc<Vec<u8>>, usize),
    /// The file (honouring Range) in `chunk`-byte pieces `delay` apart.
    Slow(Arc<Vec<u8>>, usize, Duration),
    Status(u16),
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    range: Option<String>,
}

/// A one-thread HTTP/1.1 server on 127.0.0.1 that answers each request with `reply(path,
/// nth request of that path)` and stops accepting after a minute.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

type Handler = dyn Fn(&str, usize) -> Reply + Send + Sync;

impl Server {
    fn start(reply: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let reply: Arc<Handler> = Arc::new(reply);
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let (log, reply) = (log.clone(), reply.clone());
                        std::thread::spawn(move || serve(stream, &log, &*reply));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads a request head: the request line and the headers.
fn read_head(stream: &TcpStream) -> Option<(String, Vec<String>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" {
            break;
        }
        headers.push(h.trim_end().to_string());
    }
    Some((line.trim_end().to_string(), headers))
}

fn serve(mut stream: TcpStream, log: &Mutex<Vec<Seen>>, reply: &Handler) {
    let Some((line, headers)) = read_head(&stream) else { return };
    let range = headers
        .iter()
        .find(|h| h.to_ascii_lowercase().starts_with("range:"))
        .map(|h| h[6..].trim().to_string());
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let nth = {
        let mut log = log.lock().unwrap();
        log.push(Seen { line: line.clone(), range: range.clone() });
        log.iter().filter(|s| s.line.split(' ').nth(1) == Some(path.as_str())).count() - 1
    };
    let from = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    let head = |status: &str, len: usize, extra: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n{extra}\r\n")
    };
    let send_file =
        |stream: &mut TcpStream, data: &[u8], chunk: usize, delay: Duration, limit: usize| {
            let start = from.unwrap_or(0).min(data.len());
            let h = if from.is_some() {
                head(
                    "206 Partial Content",
                    data.len() - start,
                    &format!("Content-Range: bytes {start}-{}/{}\r\n", data.len() - 1, data.len()),
                )
            } else {
                head("200 OK", data.len(), "")
            };
            if stream.write_all(h.as_bytes()).is_err() {
                return;
            }
            let end = start.saturating_add(limit).min(data.len());
            for piece in data[start..end].chunks(chunk) {
                if stream.write_all(piece).and_then(|_| stream.flush()).is_err() {
                    return;
                }
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
            }
        };
    match reply(&path, nth) {
        Reply::File(data) => send_file(&mut stream, &data, 1 << 16, Duration::ZERO, usize::MAX),
        Reply::CutAfter(data, n) => send_file(&mut stream, &data, 1 << 16, Duration::ZERO, n),
        Reply::Slow(data, chunk, delay) => send_file(&mut stream, &data, chunk, delay, usize::MAX),
        Reply::Status(code) => {
            let body = b"no such file";
            let _ = stream.write_all(head(&format!("{code} Error"), body.len(), "").as_bytes());
            let _ = stream.write_all(body);
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// A forwarding proxy on 127.0.0.1 that records each request line it relays.
fn start_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = log.clone();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            client.set_nonblocking(false).unwrap();
            let log = log.clone();
            std::thread::spawn(move || {
                let Some((line, headers)) = read_head(&client) else { return };
                log.lock().unwrap().push(line.clone());
                // "GET http://127.0.0.1:PORT/path HTTP/1.1" -> origin-form to the origin.
                let mut parts = line.split(' ');
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let Some(rest) = target.strip_prefix("http://") else { return };
                let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                let Ok(mut origin) = TcpStream::connect(authority) else { return };
                let mut head = format!("{method} /{path} HTTP/1.1\r\n");
                for h in headers {
                    head.push_str(&h);
                    head.push_str("\r\n");
                }
                head.push_str("\r\n");
                let _ = origin.write_all(head.as_bytes());
                let mut client = client;
                let _ = std::io::copy(&mut origin, &mut client);
            });
        }
    });
    (port, seen)
}

/// The file the tests serve: PULSE's format, the 128x128 fixture network (2 MB).
fn payload() -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(fixture("synthesis_128_c32.pt")).unwrap())
}

const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// `pulse download ffhq` with no proxy or mirror from the environment.
fn download_cmd(out: &Path) -> assert_cmd::Command {
    let mut cmd = pulse();
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.env_remove(download::MIRROR_VAR);
    cmd.args(["download", "ffhq", "-o", s(out)]);
    cmd
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The imported synthesis holds the fixture's tensors.
fn assert_installed(out: &Path) {
    let got = pulse::weights::load(&out.join("synthesis.safetensors")).unwrap();
    let want = pulse::weights::load(&fixture("synthesis_128_c32.pt")).unwrap();
    assert_eq!(got.len(), want.len());
    for (k, t) in want.iter() {
        assert!(got.get(k).unwrap().equal(t), "{k}");
    }
    assert!(out.join("model.json").exists());
}

/// The partial file of a download from `url` into `out`.
fn partial_of(out: &Path, url: &str) -> PathBuf {
    let mut opts = DownloadOptions::new(out.to_path_buf());
    opts.sources = vec![url.to_string()];
    download::partial_file(out, &opts.candidates().unwrap()[0])
}

#[test]
fn a_cut_connection_is_resumed_with_a_range_request() {
    let data = payload();
    let half = data.len() / 2;
    // Within one run: the first answer is cut half-way, the resumed request gets the rest.
    let d = data.clone();
    let server = Server::start(move |_, nth| {
        if nth == 0 {
            Reply::CutAfter(d.clone(), half)
        } else {
            Reply::File(d.clone())
        }
    });
    let dir = TestDir::new();
    let out = dir.path("models/ffhq");
    let o = download_cmd(&out).args(["--source", &server.url("/w/synthesis.pt")]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    assert_eq!(seen[1].range.as_deref(), Some(format!("bytes={half}-").as_str()));
    assert_installed(&out);
    assert!(
        !download::download_dir(&out).exists(),
        "the download folder is removed once installed"
    );
}

#[test]
fn a_partial_file_is_kept_and_resumed_by_the_next_run() {
    let data = payload();
    let cut = data.len() / 3;
    let d = data.clone();
    // The first run: cut at a third, then the server fails until the run gives up; for the
    // second run it is healthy again.
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let server = Server::start(move |_, nth| {
        if h.load(Ordering::SeqCst) {
            Reply::File(d.clone())
        } else if nth == 0 {
            Reply::CutAfter(d.clone(), cut)
        } else {
            Reply::Status(503)
        }
    });
    let dir = TestDir::new();
    let out = dir.path("m");
    let url = server.url("/w/synthesis.pt");
    let o = download_cmd(&out).args(["--source", &url]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("503"), "{}", stderr(&o));
    let partial = partial_of(&out, &url);
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), cut as u64, "the partial file is kept");
    assert!(!out.exists());
    // The second run asks only for the rest.
    healthy.store(true, Ordering::SeqCst);
    let before = server.seen().len();
    let o = download_cmd(&out).args(["--source", &url]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = server.seen();
    assert_eq!(seen.len(), before + 1);
    assert_eq!(seen[before].range.as_deref(), Some(format!("bytes={cut}-").as_str()));
    assert_installed(&out);
}

#[test]
fn a_checksum_mismatch_installs_nothing() {
    let data = payload();
    let d = data.clone();
    let server = Server::start(move |_, _| Reply::File(d.clone()));
    let dir = TestDir::new();
    let out = dir.path("models/ffhq");
    // PULSE's source through a mirror: the real git blob id is checked, and this file is not it.
    let o = download_cmd(&out)
        .env(download::MIRROR_VAR, server.url(""))
        .args(["--source", "pulse"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.matches("checksum mismatch: git blob").count() >= 2, "{err}");
    let paths: Vec<String> = server.seen().iter().map(|s| s.line.clone()).collect();
    assert!(
        paths[0].contains(&format!(
            "/github.com/adamian98/pulse/raw/{}/{}",
            download::PULSE_COMMIT,
            download::PULSE_PATH
        )),
        "{paths:?}"
    );
    assert!(paths[1].contains("/github.com/alex-damian/pulse/raw/"), "{paths:?}");
    assert!(!out.exists(), "a model folder was written");
    assert!(!download::download_dir(&out).exists(), "a wrong file was kept");
    // A URL with an expected SHA-256 that does not match.
    let o = download_cmd(&out)
        .args(["--source", &server.url("/f.pt"), "--sha256", &"0".repeat(64)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("checksum mismatch: sha256"), "{}", stderr(&o));
    assert!(!out.exists());
    // And the right SHA-256 installs it.
    let sha = pulse::weights::sha256_file(&fixture("synthesis_128_c32.pt")).unwrap();
    download_cmd(&out)
        .args(["--source", &server.url("/f.pt"), "--sha256", &sha])
        .assert()
        .success();
    assert_installed(&out);
}

#[test]
fn a_404_falls_back_to_the_next_source_and_all_gone_explains_what_to_do() {
    let data = payload();
    let d = data.clone();
    let server = Server::start(move |path, _| {
        if path == "/gone.pkl" {
            Reply::Status(404)
        } else {
            Reply::File(d.clone())
        }
    });
    let dir = TestDir::new();
    let out = dir.path("m");
    let o = download_cmd(&out)
        .args(["--source", &server.url("/gone.pkl"), "--source", &server.url("/here/synthesis.pt")])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("404"), "{err}");
    assert_eq!(server.seen().len(), 2);
    assert_installed(&out);
    let json = crate::common::read_json(&out.join("model.json"));
    assert_eq!(json["sources"][0]["url"], server.url("/here/synthesis.pt"));
    // Run again: already installed from that source, nothing downloaded.
    let o =
        download_cmd(&out).args(["--source", &server.url("/here/synthesis.pt")]).output().unwrap();
    assert!(o.status.success());
    assert!(stderr(&o).contains("already holds"), "{}", stderr(&o));
    assert_eq!(server.seen().len(), 2);

    // Every source gone (a 404 and a port nobody listens on): one message with each URL tried
    // and how to import a file placed by hand.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{closed}/x.pkl");
    let o = download_cmd(&dir.path("m2"))
        .args(["--source", &server.url("/gone.pkl"), "--source", &dead])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&server.url("/gone.pkl")) && err.contains(&dead), "{err}");
    assert!(err.contains("pulse import FILE -o"), "{err}");
    assert!(!dir.path("m2").exists());
}

#[test]
fn an_interrupted_download_keeps_its_partial_file_and_writes_no_model() {
    let data = payload();
    let d = data.clone();
    let server = Server::start(move |_, _| Reply::Slow(d.clone(), 4096, Duration::from_millis(20)));
    let dir = TestDir::new();
    let out = dir.path("m");
    let mut opts = DownloadOptions::new(out.clone());
    opts.mirror = None;
    opts.sources = vec![server.url("/slow/synthesis.pt")];
    let stop = Arc::new(AtomicBool::new(false));
    let partial = partial_of(&out, &server.url("/slow/synthesis.pt"));
    let (p, s2) = (partial.clone(), stop.clone());
    let watcher = std::thread::spawn(move || {
        let t = Instant::now();
        while std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0) < 20_000
            && t.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        s2.store(true, Ordering::SeqCst);
    });
    let result = download::run(&opts, &mut NoObserver, &stop);
    watcher.join().unwrap();
    match result {
        Err(DownloadError::Interrupted { partial: Some(p) }) => assert_eq!(p, partial),
        Err(e) => panic!("expected an interruption, got {e}"),
        Ok(_) => panic!("expected an interruption, the download completed"),
    }
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept >= 20_000 && (kept as usize) < data.len(), "partial file of {kept} bytes");
    assert!(!out.exists());
}

struct NoObserver;
impl download::DownloadObserver for NoObserver {}

#[test]
fn ctrl_c_exits_130_keeping_the_partial_file() {
    let data = payload();
    let d = data.clone();
    let server = Server::start(move |_, _| Reply::Slow(d.clone(), 4096, Duration::from_millis(20)));
    let dir = TestDir::new();
    let out = dir.path("m");
    let bin = assert_cmd::cargo::cargo_bin("pulse");
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["download", "ffhq", "-o", s(&out), "--source", &server.url("/slow/synthesis.pt")]);
    cmd.env_remove(download::MIRROR_VAR).env_remove("PULSE_MODEL");
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let partial = partial_of(&out, &server.url("/slow/synthesis.pt"));
    let t = Instant::now();
    while std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < 20_000 {
        assert!(t.elapsed() < Duration::from_secs(30), "the download never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("run the same command again to resume"), "{err}");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept >= 20_000 && (kept as usize) < data.len(), "partial file of {kept} bytes");
    assert!(!out.exists(), "a model was written");
}

#[test]
fn proxy_variables_are_honoured() {
    let data = payload();
    let d = data.clone();
    let server = Server::start(move |_, _| Reply::File(d.clone()));
    let (proxy_port, proxied) = start_proxy();
    let dir = TestDir::new();
    let url = server.url("/p/synthesis.pt");
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let o = download_cmd(&dir.path("a"))
        .env("HTTP_PROXY", &proxy)
        .args(["--source", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(*proxied.lock().unwrap(), vec![format!("GET {url} HTTP/1.1")]);
    assert_installed(&dir.path("a"));
    // NO_PROXY lists the host: straight to the server.
    let o = download_cmd(&dir.path("b"))
        .env("HTTP_PROXY", &proxy)
        .env("NO_PROXY", "localhost,127.0.0.1")
        .args(["--source", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(proxied.lock().unwrap().len(), 1, "NO_PROXY was ignored");
    assert_eq!(server.seen().len(), 2);
}

#[test]
fn another_model_in_the_way_is_not_replaced_without_force() {
    let data = payload();
    let d = data.clone();
    let server = Server::start(move |_, _| Reply::File(d.clone()));
    let dir = TestDir::new();
    let out = dir.model("existing", "synthesis_1024_c16.pt", false);
    let url = server.url("/f/synthesis.pt");
    let o = download_cmd(&out).args(["--source", &url]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(server.seen().is_empty(), "it downloaded before refusing");
    assert!(out.join("synthesis.pt").exists());
    download_cmd(&out).args(["--source", &url, "--force"]).assert().success();
    assert_installed(&out);
    // --force replaces only what pulse writes: the synthesis.pt put there by hand stays, and
    // the folder's model is the new one (safetensors is read first).
    assert!(out.join("synthesis.pt").exists(), "a file pulse did not write was deleted");
    assert_eq!(
        pulse::model::find_file(&out, "synthesis").unwrap(),
        out.join("synthesis.safetensors")
    );
    // Bad --source values are command-line errors.
    let o =
        download_cmd(&dir.path("x")).args(["--source", "ftp://example.org/f"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_file_that_fails_verification_falls_back_and_is_not_kept() {
    let data = payload();
    let mapping = Arc::new(std::fs::read(fixture("mapping.pt")).unwrap());
    let d = data.clone();
    let server = Server::start(move |path, _| {
        if path == "/mapping.pt" {
            Reply::File(mapping.clone())
        } else {
            Reply::File(d.clone())
        }
    });
    let dir = TestDir::new();
    let out = dir.path("m");
    let o = download_cmd(&out)
        .args(["--source", &server.url("/mapping.pt"), "--source", &server.url("/s/synthesis.pt")])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("verification failed") && err.contains("no synthesis network"), "{err}");
    assert_installed(&out);
    assert!(!download::download_dir(&out).exists());
}

// ---- ffhq-stylegan2 ---------------------------------------------------------------------------

/// `pulse download ffhq-stylegan2` with no proxy or mirror from the environment.
fn download_sg2_cmd(out: &Path) -> assert_cmd::Command {
    let mut cmd = pulse();
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.env_remove(download::MIRROR_VAR);
    cmd.args(["download", "ffhq-stylegan2", "-o", s(out)]);
    cmd
}

/// A small StyleGAN2 generator as stylegan2-ada-pytorch pickles it (not FFHQ config-f).
fn ada_payload() -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(fixture("sg2_tiny_ada.pkl")).unwrap())
}

#[test]
fn ffhq_stylegan2_tries_nvidias_tf_pickle_then_ada_and_verifies_config_f() {
    let d = ada_payload();
    let server = Server::start(move |_, _| Reply::File(d.clone()));
    let dir = TestDir::new();
    let out = dir.path("m");
    let o = download_sg2_cmd(&out).env(download::MIRROR_VAR, server.url("")).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let paths: Vec<String> = server.seen().iter().map(|s| s.line.clone()).collect();
    assert_eq!(
        paths,
        [
            "GET /nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-ffhq-config-f.pkl HTTP/1.1",
            "GET /nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl HTTP/1.1",
            "GET /api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/stylegan2-ffhq-1024x1024.pkl HTTP/1.1",
        ]
    );
    assert!(err.contains("not NVIDIA's FFHQ-1024 StyleGAN2 generator"), "{err}");
    // ffhq.pkl's size is known: a file of another size is refused before it is read.
    assert!(err.contains("size mismatch") && err.contains("expected 381624121"), "{err}");
    assert!(err.contains("could not download the FFHQ StyleGAN2 model"), "{err}");
    assert!(err.contains("stylegan2-ffhq-config-f.pkl") && err.contains("ffhq.pkl"), "{err}");
    assert!(!out.exists());
}

/// NVIDIA's StyleGAN pickle has a known size: a download of another size is an error (not
/// imported, not kept), whichever of its copies served it.
#[test]
fn a_download_of_the_wrong_size_is_refused() {
    let d = payload();
    let server = Server::start(move |_, _| Reply::File(d.clone()));
    let dir = TestDir::new();
    let out = dir.path("m");
    let o = download_cmd(&out)
        .env(download::MIRROR_VAR, server.url(""))
        .args(["--source", "nvidia"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(server.seen().len(), 2, "both copies tried");
    let expected = format!("size mismatch: {} bytes, expected 324733157", payload().len());
    assert!(err.matches(&expected).count() >= 2, "{err}");
    assert!(!out.exists());
    assert!(!download::download_dir(&out).exists(), "nothing kept to resume from");
}

#[test]
fn a_stylegan2_download_is_resumed_and_another_network_is_not_called_the_model() {
    let data = ada_payload();
    let d = data.clone();
    let server = Server::start(move |_, nth| {
        if nth == 0 {
            Reply::CutAfter(d.clone(), d.len() / 3)
        } else {
            Reply::File(d.clone())
        }
    });
    let dir = TestDir::new();
    let out = dir.path("m");
    let url = server.url("/w/network-snapshot.pkl");
    let o = download_sg2_cmd(&out).args(["--source", &url]).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].range.as_deref(), Some(format!("bytes={}-", data.len() / 3).as_str()));
    // Not config-f: installed as given, said loudly, and model.json does not name it.
    assert!(err.contains("WARNING") && err.contains("is not the FFHQ StyleGAN2 model"), "{err}");
    let json = crate::common::read_json(&out.join("model.json"));
    assert_eq!(json["architecture"], "stylegan2");
    assert!(json.get("model").is_none(), "{json}");
    assert!(json["licence"].as_str().unwrap().contains("NVIDIA Source Code License-NC"));
    let o = download_sg2_cmd(&out).args(["--source", &url]).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("already holds a model from") && !err.contains("FFHQ"), "{err}");
    // `download ffhq` of the same URL: another family, said so.
    let o = download_cmd(&dir.path("v1")).args(["--source", &url]).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("is not the FFHQ StyleGAN model"), "{err}");
}

/// A small stand-in for torchvision's VGG16: its 13 convolutions `features.N` with few
/// channels, as safetensors (the real file is 528 MB).
fn small_vgg16(path: &Path) -> Vec<u8> {
    let convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
    let mut named = vec![];
    let mut cin = 3;
    for (k, i) in convs.into_iter().enumerate() {
        let cout = 2 + k as i64 % 3;
        named.push((
            format!("features.{i}.weight"),
            tch::Tensor::ones([cout, cin, 3, 3], tch::kind::FLOAT_CPU) * k as f64,
        ));
        named
            .push((format!("features.{i}.bias"), tch::Tensor::zeros([cout], tch::kind::FLOAT_CPU)));
        cin = cout;
    }
    tch::Tensor::write_safetensors(&named, path).unwrap();
    std::fs::read(path).unwrap()
}

fn vgg16_cmd(dir: &Path) -> assert_cmd::Command {
    let mut cmd = pulse();
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.env_remove(download::MIRROR_VAR);
    cmd.args(["download", "vgg16", "-o", s(dir)]);
    cmd
}

#[test]
fn vgg16_is_resumed_verified_and_installed_as_one_file() {
    let t = TestDir::new();
    let data = Arc::new(small_vgg16(&t.path("vgg.safetensors")));
    let sha = pulse::weights::sha256_file(&t.path("vgg.safetensors")).unwrap();
    let (d, cut) = (data.clone(), data.len() / 3);
    let server = Server::start(move |_, nth| {
        if nth == 0 {
            Reply::CutAfter(d.clone(), cut)
        } else {
            Reply::File(d.clone())
        }
    });
    let dir = t.path("models/vgg16");
    let file = dir.join(download::VGG16_FILE_NAME);
    // torchvision's file through a mirror: its SHA-256 must start with 397923af; this one's
    // does not, so nothing is installed and the wrong bytes are not kept for a resume.
    let o = vgg16_cmd(&dir).env(download::MIRROR_VAR, server.url("")).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("expected one starting with 397923af"), "{err}");
    assert!(err.contains("pulse download vgg16") || err.contains("by hand"), "{err}");
    let seen = server.seen();
    assert!(seen[0].line.contains("/download.pytorch.org/models/vgg16-397923af.pth"), "{seen:?}");
    assert_eq!(seen[1].range.as_deref(), Some(format!("bytes={cut}-").as_str()), "resumed");
    assert!(!file.exists());
    assert!(!dir.join("vgg16-397923af.pth.partial").exists(), "a wrong file was kept");
    // A copy by URL with its full SHA-256: installed, and found again by the next run.
    let url = server.url("/copy/vgg16.pth");
    vgg16_cmd(&dir).args(["--source", &url, "--sha256", &sha]).assert().success();
    assert_eq!(std::fs::read(&file).unwrap(), *data);
    let o = vgg16_cmd(&dir).args(["--source", &url, "--sha256", &sha]).output().unwrap();
    assert!(o.status.success());
    assert!(stderr(&o).contains("already holds"), "{}", stderr(&o));
    // A file that is not VGG16 is refused by its layout even when its checksum is right.
    let other = fixture("synthesis_128_c32.pt");
    let other_sha = pulse::weights::sha256_file(&other).unwrap();
    let bytes = Arc::new(std::fs::read(&other).unwrap());
    let server = Server::start(move |_, _| Reply::File(bytes.clone()));
    let o = vgg16_cmd(&t.path("x"))
        .args(["--source", &server.url("/s.pt"), "--sha256", &other_sha])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not torchvision's vgg16"), "{}", stderr(&o));
    assert!(!t.path("x").join(download::VGG16_FILE_NAME).exists());
}
