//! Calls to the AWS JSON-protocol APIs (CloudTrail, KMS) of a moto server on loopback, over a
//! plain HTTP/1.1 connection. moto checks no signatures; it routes a request by the service
//! and region named in the `Authorization` header's credential scope, so that header is
//! written with the right scope and a dummy signature.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// The most a response may hold; anything bigger is an error, not a reason to wait.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// How long one connection, write or read may take.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A JSON-protocol call: `POST /` with `X-Amz-Target: <target>` and a JSON body. Returns the
/// response's JSON, or an error with the status and body.
pub fn call(
    port: u16,
    service: &str,
    region: &str,
    target: &str,
    body: &Value,
) -> Result<Value, String> {
    let payload = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: {target}\r\n\
         X-Amz-Date: 20240101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/{region}/{service}/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n{payload}",
        payload.len()
    );
    let context = |what: &str, error: std::io::Error| {
        format!("{target} on 127.0.0.1:{port}: {what}: {error}")
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream =
        TcpStream::connect_timeout(&address, IO_TIMEOUT).map_err(|e| context("connect", e))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| context("set timeout", e))?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| context("set timeout", e))?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| context("send", e))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| context("receive", e))?;
    let (status, body) = parse_response(&raw).map_err(|e| format!("{target}: {e}"))?;
    if status != 200 {
        return Err(format!(
            "{target} ({service}, {region}) answered {status}: {body}"
        ));
    }
    serde_json::from_str(&body)
        .map_err(|e| format!("{target}: the answer is not JSON ({e}): {body}"))
}

/// The status code and body of a raw HTTP/1.1 response (plain or chunked).
fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no header end")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(length) = length {
        if body.len() < length {
            return Err(format!(
                "the answer was cut short: {} of {length} bytes",
                body.len()
            ));
        }
        body.truncate(length);
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Decodes a chunked body.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk header")?;
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("a chunk was cut short".to_owned());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
