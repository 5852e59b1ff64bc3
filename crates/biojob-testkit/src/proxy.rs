//! A loopback HTTP/1.1 proxy that injects scripted faults between a client and an S3 server.
//!
//! Each client connection carries one request: the proxy forwards it with `Connection: close`
//! and relays the answer, so request boundaries are always known.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `Message` of the proxy's `503 SlowDown` answer.
pub const SLOW_DOWN_MESSAGE: &str = "Please reduce your request rate.";
/// The `Message` of the proxy's `500 InternalError` answer (S3's own wording).
pub const INTERNAL_ERROR_MESSAGE: &str = "We encountered an internal error. Please try again.";

/// What to do to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer `503 Slow Down` (S3's throttling answer) without forwarding.
    SlowDown,
    /// Answer `500 Internal Server Error` (S3's `InternalError`) without forwarding.
    InternalError,
    /// Read the whole request, forward nothing, and reset the client's connection (RST)
    /// without an answer.
    Reset,
    /// Forward the request, relay the response head and this many body bytes, then reset the
    /// connection (RST).
    ResetResponseAfter(usize),
    /// Forward the request head and this many body bytes upstream, then reset both
    /// connections.
    ResetRequestAfter(usize),
    /// Read the whole request, forward nothing and answer nothing: hold the connection until
    /// the client closes it (a server that hangs, a network that drops the replies).
    Stall,
    /// Flip the bits of the response body byte at this offset.
    CorruptResponseByte(usize),
    /// Flip the bits of the request body byte at this offset before forwarding.
    CorruptRequestByte(usize),
}

/// A fault applied to the next `times` requests whose method is `method`, whose target (path
/// and query, percent-encoded as sent) contains `target_contains`, and, when `with_header` is
/// set, which carry that header with a value containing the given text; requests after those
/// pass through.
///
/// Multipart upload parts are `PUT`s whose target contains `partNumber=N&`; ranged downloads
/// are `GET`s with a `Range` header (`bytes=FIRST-LAST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `GET`, `PUT`, `HEAD`, `POST`.
    pub method: String,
    /// A substring of the request target (`""` matches all).
    pub target_contains: String,
    /// A header the request must carry (name, any case) and a substring of its value, e.g.
    /// `("range", "bytes=5242880-")`; `""` matches any value.
    pub with_header: Option<(String, String)>,
    /// How many more requests to apply it to.
    pub times: usize,
    /// The fault.
    pub fault: Fault,
}

impl Rule {
    /// A rule applied once.
    pub fn new(method: &str, target_contains: &str, fault: Fault) -> Rule {
        Rule {
            method: method.to_owned(),
            target_contains: target_contains.to_owned(),
            with_header: None,
            times: 1,
            fault,
        }
    }

    /// The same rule applied `times` times (a burst: the next `times` matching requests).
    pub fn times(self, times: usize) -> Rule {
        Rule { times, ..self }
    }

    /// The same rule, only for requests carrying header `name` (e.g. `range`) with a value
    /// containing `value_contains` (`""` for any).
    pub fn with_header(self, name: &str, value_contains: &str) -> Rule {
        Rule {
            with_header: Some((name.to_owned(), value_contains.to_owned())),
            ..self
        }
    }

    fn matches(&self, method: &str, target: &str, head: &str) -> bool {
        self.times > 0
            && self.method == method
            && target.contains(&self.target_contains)
            && self.with_header.as_ref().is_none_or(|(name, value)| {
                header(head, name).is_some_and(|found| found.contains(value.as_str()))
            })
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    injected: Vec<(String, Fault)>,
    requests: Vec<String>,
}

/// The proxy; it runs until the test binary exits.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: give it to the client as the endpoint.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`).
    ///
    /// # Panics
    /// When no loopback port can be bound or `upstream` is not `http://host:port`.
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("upstream is http://host:port")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let _ = handle(client, &upstream, &state);
                });
            }
        });
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Adds a rule (rules are tried in the order added).
    pub fn add(&self, rule: Rule) {
        self.lock().rules.push(rule);
    }

    /// The faults injected so far, with the request line each hit.
    pub fn injected(&self) -> Vec<(String, Fault)> {
        self.lock().injected.clone()
    }

    /// How many times `fault` was injected so far.
    pub fn injected_count(&self, fault: Fault) -> usize {
        self.lock()
            .injected
            .iter()
            .filter(|(_, injected)| *injected == fault)
            .count()
    }

    /// Every request head seen so far (request line, then headers), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Forgets rules, injections and requests.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads until the end of an HTTP head; returns (head including the blank line, rest).
fn read_head(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Ok((buffer, rest));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the end of the head",
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// The head with `Connection: close` and without `Expect`.
fn rewrite_head(head: &str) -> String {
    let mut out = String::new();
    for (index, line) in head.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        if index > 0 {
            let name = line.split(':').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("expect") {
                continue;
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = stream.shutdown(Shutdown::Read);
}

fn handle(mut client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let (head, mut body) = read_head(&mut client)?;
    let head_text = String::from_utf8_lossy(&head).into_owned();
    let request_line = head_text.lines().next().unwrap_or("").to_owned();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    if header(&head_text, "transfer-encoding").is_some() {
        // Not produced by the clients under test; fail the request visibly.
        client.write_all(
            b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    if header(&head_text, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let length: usize = header(&head_text, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut chunk = vec![0u8; 64 * 1024];
    while body.len() < length {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let fault = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests.push(head_text.clone());
        let hit = state
            .rules
            .iter_mut()
            .find(|rule| rule.matches(&method, &target, &head_text));
        let fault = hit.map(|rule| {
            rule.times -= 1;
            rule.fault
        });
        if let Some(fault) = fault {
            state.injected.push((request_line.clone(), fault));
        }
        fault
    };

    let error = match fault {
        Some(Fault::SlowDown) => Some(("503 Slow Down", "SlowDown", SLOW_DOWN_MESSAGE)),
        Some(Fault::InternalError) => Some((
            "500 Internal Server Error",
            "InternalError",
            INTERNAL_ERROR_MESSAGE,
        )),
        _ => None,
    };
    if let Some((status, code, message)) = error {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>biojob-fault-proxy</RequestId></Error>"
        );
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        );
        client.write_all(response.as_bytes())?;
        return Ok(());
    }
    if fault == Some(Fault::Stall) {
        while client.read(&mut chunk)? > 0 {}
        return Ok(());
    }
    if fault == Some(Fault::Reset) {
        reset(&client);
        return Ok(());
    }
    if let Some(Fault::CorruptRequestByte(offset)) = fault
        && let Some(byte) = body.get_mut(offset)
    {
        *byte ^= 0xff;
    }

    let mut server = TcpStream::connect(upstream)?;
    server.write_all(rewrite_head(&head_text).as_bytes())?;
    if let Some(Fault::ResetRequestAfter(count)) = fault {
        server.write_all(&body[..count.min(body.len())])?;
        reset(&server);
        reset(&client);
        return Ok(());
    }
    server.write_all(&body)?;

    let (response_head, mut response_body) = read_head(&mut server)?;
    client.write_all(&response_head)?;
    let mut sent = 0usize;
    let mut corrupt_at = match fault {
        Some(Fault::CorruptResponseByte(offset)) => Some(offset),
        _ => None,
    };
    let limit = match fault {
        Some(Fault::ResetResponseAfter(count)) => Some(count),
        _ => None,
    };
    loop {
        if response_body.is_empty() {
            let n = server.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            response_body.extend_from_slice(&chunk[..n]);
        }
        if let Some(offset) = corrupt_at
            && offset >= sent
            && offset < sent + response_body.len()
        {
            response_body[offset - sent] ^= 0xff;
            corrupt_at = None;
        }
        if let Some(limit) = limit
            && sent + response_body.len() >= limit
        {
            client.write_all(&response_body[..limit - sent])?;
            client.flush()?;
            std::thread::sleep(Duration::from_millis(20));
            reset(&client);
            return Ok(());
        }
        client.write_all(&response_body)?;
        sent += response_body.len();
        response_body.clear();
    }
    client.flush()?;
    let _ = client.shutdown(Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A loopback server that answers every request `200 OK` with the body `ok` and counts them.
    fn upstream() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let served = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&served);
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let Ok((head, mut body)) = read_head(&mut stream) else {
                    continue;
                };
                let head = String::from_utf8_lossy(&head).into_owned();
                let length: usize = header(&head, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut chunk = [0u8; 4096];
                while body.len() < length {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        (format!("http://{address}"), served)
    }

    /// Sends one request through `proxy`: the status line of the answer, or the error kind
    /// when the connection was reset.
    fn send(proxy: &FaultProxy, head: &str, body: &[u8]) -> Result<String, std::io::ErrorKind> {
        let address = proxy.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect to the proxy");
        stream
            .write_all(format!("{head}Content-Length: {}\r\n\r\n", body.len()).as_bytes())
            .expect("send the head");
        stream.write_all(body).expect("send the body");
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) if answer.is_empty() => Err(std::io::ErrorKind::UnexpectedEof),
            Ok(_) => Ok(String::from_utf8_lossy(&answer)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()),
            Err(error) => Err(error.kind()),
        }
    }

    #[test]
    fn bursts_hit_only_the_matching_requests_then_pass_through() {
        let (upstream, served) = upstream();
        let proxy = FaultProxy::start(&upstream);
        proxy.add(
            Rule::new("GET", "/b/k", Fault::InternalError)
                .with_header("range", "bytes=0-")
                .times(2),
        );
        proxy.add(Rule::new("PUT", "partNumber=", Fault::SlowDown).times(2));
        proxy.add(Rule::new("PUT", "partNumber=", Fault::Reset));
        let get = "GET /b/k HTTP/1.1\r\nHost: x\r\n";
        let ranged = "GET /b/k HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n";
        let part = "PUT /b/k?partNumber=1&uploadId=u HTTP/1.1\r\nHost: x\r\n";
        let ok = Ok("HTTP/1.1 200 OK".to_owned());

        assert_eq!(send(&proxy, get, b""), ok);
        let other_range = "GET /b/k HTTP/1.1\r\nHost: x\r\nRange: bytes=2-3\r\n";
        assert_eq!(send(&proxy, other_range, b""), ok);
        for _ in 0..2 {
            assert_eq!(
                send(&proxy, ranged, b""),
                Ok("HTTP/1.1 500 Internal Server Error".to_owned())
            );
        }
        assert_eq!(send(&proxy, ranged, b""), ok);
        for _ in 0..2 {
            assert_eq!(
                send(&proxy, part, b"part data"),
                Ok("HTTP/1.1 503 Slow Down".to_owned())
            );
        }
        assert_eq!(
            send(&proxy, part, b"part data"),
            Err(std::io::ErrorKind::ConnectionReset)
        );
        assert_eq!(send(&proxy, part, b"part data"), ok);

        assert_eq!(served.load(Ordering::SeqCst), 4);
        assert_eq!(proxy.injected_count(Fault::InternalError), 2);
        assert_eq!(proxy.injected_count(Fault::SlowDown), 2);
        assert_eq!(proxy.injected_count(Fault::Reset), 1);
        assert_eq!(
            proxy
                .injected()
                .into_iter()
                .map(|(line, _)| line)
                .collect::<Vec<_>>(),
            [
                "GET /b/k HTTP/1.1",
                "GET /b/k HTTP/1.1",
                "PUT /b/k?partNumber=1&uploadId=u HTTP/1.1",
                "PUT /b/k?partNumber=1&uploadId=u HTTP/1.1",
                "PUT /b/k?partNumber=1&uploadId=u HTTP/1.1",
            ]
        );
        assert_eq!(proxy.requests().len(), 9);
    }

    #[test]
    fn head_rewrite_forces_close() {
        assert_eq!(
            rewrite_head(
                "PUT /b/k HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
            ),
            "PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            header("GET / HTTP/1.1\r\ncontent-length: 5\r\n", "Content-Length"),
            Some("5")
        );
    }
}
