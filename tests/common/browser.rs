//! A real browser for the dashboard's tests: Debian's Chromium, headless,
//! driven over its DevTools protocol (JSON commands on a WebSocket), as a
//! user's clicks and keys would drive it. It trusts exactly the API
//! server's key (pinned by its hash), so the pages load over the cluster's
//! real TLS.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    next_id: u64,
    profile: tempfile::TempDir,
    /// Where screenshots go.
    pub out_dir: PathBuf,
    /// What the page printed to its console and threw, for failure messages.
    pub console: Vec<String>,
}

impl Browser {
    /// Start Chromium trusting the key of the server certificate in
    /// `server_cert` (PEM), saving screenshots to `out_dir`.
    pub fn start(server_cert: &Path, out_dir: &Path) -> Self {
        std::fs::create_dir_all(out_dir).unwrap();
        let profile = tempfile::tempdir().unwrap();
        let binary = ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find(|b| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {b}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("a Chromium is installed (Debian: apt-get install chromium)");
        let child = Command::new(binary)
            .args([
                "--headless=new",
                // Root may not use Chromium's sandbox; the pages are ours.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1366,900",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.path().display()),
                &format!(
                    "--ignore-certificate-errors-spki-list={}",
                    spki_hash(server_cert)
                ),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting Chromium");
        // Chromium writes its DevTools port to the profile once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u16>().ok()))
            {
                break p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Chromium did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let page = page_target(port);
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
        let (socket, _) = tungstenite::client(page.as_str(), stream).expect("DevTools WebSocket");
        let mut b = Browser {
            child,
            socket,
            next_id: 0,
            profile,
            out_dir: out_dir.to_path_buf(),
            console: Vec::new(),
        };
        b.command("Runtime.enable", json!({}));
        b.command("Page.enable", json!({}));
        b.command("Network.enable", json!({}));
        b
    }

    /// Send a DevTools command and wait for its answer (events that come
    /// first are kept as console lines where they are console output).
    pub fn command(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::Text(msg.into())).unwrap();
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < COMMAND_TIMEOUT,
                "{method}: no answer from Chromium"
            );
            let m = match self.socket.read() {
                Ok(Message::Text(t)) => serde_json::from_str::<Value>(&t).unwrap(),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(e) => panic!("{method}: DevTools connection: {e}"),
            };
            match m.get("method").and_then(Value::as_str) {
                Some("Runtime.consoleAPICalled") => {
                    let args = m["params"]["args"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|v| v.get("value").unwrap_or(v).to_string())
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    self.console.push(format!("console: {args}"));
                }
                Some("Network.loadingFailed") => self.console.push(format!(
                    "request failed: {} {}",
                    m["params"]["errorText"], m["params"]["blockedReason"]
                )),
                Some("Runtime.exceptionThrown") => self.console.push(format!(
                    "exception: {}",
                    m["params"]["exceptionDetails"]["exception"]["description"]
                )),
                _ => {}
            }
            if m.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(e) = m.get("error") {
                    panic!("{method}: {e}");
                }
                return m["result"].clone();
            }
        }
    }

    /// Load `url` in the page.
    pub fn open(&mut self, url: &str) {
        self.command("Page.navigate", json!({"url": url}));
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.command(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!(
                "{expression}: {}",
                e["exception"]["description"].as_str().unwrap_or("threw")
            );
        }
        r["result"]["value"].clone()
    }

    /// Wait until `expression` is truthy in the page; its value.
    pub fn wait_for(&mut self, what: &str, expression: &str, timeout: Duration) -> Value {
        match self.try_wait_for(expression, timeout) {
            Some(v) => v,
            None => self.fail(what),
        }
    }

    /// Load `url` and wait until `expression` holds; if it does not within
    /// a few seconds, what failed to load is reported and the page is
    /// loaded once more, as a user would reload it.
    pub fn open_until(&mut self, url: &str, what: &str, expression: &str, timeout: Duration) {
        self.open(url);
        if self
            .try_wait_for(expression, Duration::from_secs(15))
            .is_some()
        {
            return;
        }
        eprintln!(
            "{url} did not show {what}; reloading. The page loaded:\n{}\n{}",
            self.loaded(),
            self.console.join("\n")
        );
        self.open(url);
        self.wait_for(what, expression, timeout);
    }

    fn loaded(&mut self) -> String {
        self.eval(
            "performance.getEntriesByType('resource').map(e => \
             `${e.name} ${e.responseStatus} ${Math.round(e.duration)} ms`).join('\\n')",
        )
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    fn fail(&mut self, what: &str) -> ! {
        let at = self.eval("location.href");
        let text = self.text("body");
        let loaded = self.loaded();
        panic!(
            "waiting for {what}: the page at {at} shows:\n{text}\nit loaded:\n{loaded}\n{}",
            self.console.join("\n")
        );
    }

    fn try_wait_for(&mut self, expression: &str, timeout: Duration) -> Option<Value> {
        let started = Instant::now();
        loop {
            // Errors while the page is between states count as not yet.
            let r = self.command(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            );
            let v = r["result"]["value"].clone();
            if r.get("exceptionDetails").is_none()
                && !matches!(v, Value::Null | Value::Bool(false))
                && v != json!("")
                && v != json!(0)
            {
                return Some(v);
            }
            if started.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The visible text of the first element matching `selector`.
    pub fn text(&mut self, selector: &str) -> String {
        self.eval(&format!(
            "document.querySelector({})?.innerText ?? ''",
            json!(selector)
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Click the button whose accessible text is `label`.
    pub fn click_button(&mut self, label: &str) {
        let found = self.eval(&format!(
            "(() => {{ const b = [...document.querySelectorAll('button')].find(b => \
             (b.getAttribute('aria-label') || b.textContent).trim() === {}); \
             if (!b) return false; b.click(); return true; }})()",
            json!(label)
        ));
        assert_eq!(
            found,
            json!(true),
            "no button {label:?} on the page:\n{}",
            self.text("main")
        );
    }

    /// Type `text` into the field labelled by `id`, as a user would (focus,
    /// then the characters).
    pub fn type_into(&mut self, id: &str, text: &str) {
        self.eval(&format!(
            "(() => {{ const e = document.getElementById({}); e.focus(); e.select?.(); }})()",
            json!(id)
        ));
        self.command("Input.insertText", json!({"text": text}));
        self.eval(&format!(
            "document.getElementById({}).dispatchEvent(new Event('change', {{bubbles: true}}))",
            json!(id)
        ));
    }

    /// Press Enter in the focused element.
    pub fn press_enter(&mut self) {
        for kind in ["keyDown", "keyUp"] {
            self.command(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "key": "Enter", "code": "Enter",
                       "windowsVirtualKeyCode": 13, "text": if kind == "keyDown" { "\r" } else { "" }}),
            );
        }
    }

    /// Save a PNG of the page as `<out_dir>/<name>.png`.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self.command(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": false}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or(""))
            .unwrap();
        let path = self.out_dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.socket.close(None);
        // Only the Chromium this test started, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.profile.path();
    }
}

/// The WebSocket of Chromium's first page.
fn page_target(port: u16) -> String {
    use std::io::{Read, Write};
    let started = Instant::now();
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        write!(
            s,
            "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        // Read until the body is whole JSON (the server may keep the
        // connection open).
        let mut raw = Vec::new();
        let mut targets = None;
        let mut chunk = [0u8; 8192];
        while let Ok(n) = s.read(&mut chunk) {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&raw);
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            if let Ok(Value::Array(t)) = serde_json::from_str::<Value>(body) {
                targets = Some(t);
                break;
            }
        }
        let raw = String::from_utf8_lossy(&raw);
        if let Some(targets) = targets {
            if let Some(url) = targets
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                return url.to_string();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Chromium has no page: {raw}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: the pin
/// Chromium's `--ignore-certificate-errors-spki-list` takes.
fn spki_hash(cert: &Path) -> String {
    let pem = std::fs::read(cert).unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .expect("a certificate")
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, parsed.public_key().raw);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}
