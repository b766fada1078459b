//! What the console tests drive the page with: a plain HTTP/1.1 client (one request per
//! connection, enough for a JSON API and WebDriver) and a WebDriver session of Debian's headless
//! chromium through chromedriver (installed by `tests/setup.sh`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// Sends one request and reads the whole answer (the connection is closed after it).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> anyhow::Result<HttpResponse> {
    let (status, headers, mut reader) =
        send(addr, method, path, headers, body, Duration::from_secs(60))?;
    let mut response = HttpResponse {
        status,
        headers,
        body: String::new(),
    };
    // Read by the framing, not to the end: chromedriver says `Connection: close` but keeps
    // the connection open.
    let mut body = Vec::new();
    if let Some(length) = response.header("content-length") {
        body.resize(length.parse()?, 0);
        reader.read_exact(&mut body)?;
    } else if response
        .header("transfer-encoding")
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut body)?;
    }
    response.body = String::from_utf8(body)?;
    Ok(response)
}

/// Opens a streaming GET and returns its reader once the headers are in.
pub(crate) fn open_stream(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, BufReader<TcpStream>)> {
    let (status, _, reader) = send(addr, "GET", path, headers, None, Duration::from_secs(30))?;
    Ok((status, reader))
}

/// An answer's status and headers, and the reader positioned at its body.
type Head = (u16, Vec<(String, String)>, BufReader<TcpStream>);

/// Sends a request and reads the answer's status and headers, leaving the body to the caller.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Head> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(key, _)| key.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (key, value) in headers {
        request.push_str(&format!("{key}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status line in {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            return Ok((status, headers, reader));
        }
        if let Some((key, value)) = line.split_once(':') {
            headers.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
}

/// A headless chromium driven over WebDriver; the browser and its driver stop on drop.
pub(crate) struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless chromium session.
    pub fn start() -> anyhow::Result<Browser> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists());
        let (Some(chromium), true) = (
            chromium,
            std::path::Path::new("/usr/bin/chromedriver").exists(),
        ) else {
            bail!("chromium and chromedriver are not installed: run tests/setup.sh first");
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let started = Instant::now();
        while http(addr, "GET", "/status", &[], None).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("chromedriver did not answer on {addr} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"],
            },
        }}});
        let session = browser.command("POST", "/session", Some(capabilities))?;
        browser.session = session["sessionId"]
            .as_str()
            .context("no session id")?
            .to_string();
        Ok(browser)
    }

    /// Sends a WebDriver command and returns its `value`.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let body = body.map(|body| body.to_string());
        let response = http(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_deref(),
        )?;
        let value = response.json()?["value"].clone();
        if response.status != 200 {
            bail!("WebDriver {method} {path}: {} {value}", response.status);
        }
        Ok(value)
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.command(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )?;
        Ok(())
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn run(&self, script: &str) -> anyhow::Result<Value> {
        self.command(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Waits until `condition` (a JavaScript expression) is true in the page.
    pub fn wait_for(&self, condition: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if self.run(&format!("return Boolean({condition});"))? == json!(true) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(20) {
                let page = self.run("return document.body.innerText;")?;
                bail!("waited 20 s for `{condition}`; the page shows: {page}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Returns the WebDriver id of the first element matching `css`.
    pub fn find(&self, css: &str) -> anyhow::Result<String> {
        let element = self.command(
            "POST",
            &self.session_path("/element"),
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        element
            .as_object()
            .and_then(|object| object.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("no element id for `{css}`"))
    }

    /// Clicks an element as a user would (the driver scrolls to it and checks it is clickable).
    pub fn click(&self, element: &str) -> anyhow::Result<()> {
        self.command(
            "POST",
            &self.session_path(&format!("/element/{element}/click")),
            Some(json!({})),
        )?;
        Ok(())
    }

    /// Types `text` into an element.
    pub fn type_into(&self, element: &str, text: &str) -> anyhow::Result<()> {
        self.command(
            "POST",
            &self.session_path(&format!("/element/{element}/value")),
            Some(json!({ "text": text })),
        )?;
        Ok(())
    }

    /// Saves a PNG of the window, when `CHURN_CONSOLE_SCREENSHOTS` names a folder.
    pub fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        let Some(dir) = std::env::var_os("CHURN_CONSOLE_SCREENSHOTS") else {
            return Ok(());
        };
        let value = self.command("GET", &self.session_path("/screenshot"), None)?;
        let png = base64_decode(value.as_str().context("no screenshot")?)?;
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png)?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.command("DELETE", &self.session_path(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace() && *byte != b'=')
    {
        let value = ALPHABET
            .iter()
            .position(|&letter| letter == byte)
            .context("not base64")? as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
        }
    }
    Ok(bytes)
}
