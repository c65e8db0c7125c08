//! HTTP/2 over cleartext (prior knowledge), for requests whose body ends
//! with trailers: curl cannot send request trailers, and Envoy calls a
//! plugin's `on_http_request_trailers` only for a request that has them.

use crate::http::Response;
use bytes::Bytes;
use std::time::Duration;

/// POSTs `body` in `chunks` pieces to `path` on 127.0.0.1:`port`, then
/// `trailers`, and reads the whole answer (30 s at most).
pub fn post_with_trailers(
    port: u16,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    chunks: usize,
    trailers: &[(&str, &str)],
) -> Result<Response, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            exchange(port, path, headers, body, chunks, trailers),
        )
        .await
        .map_err(|_| "no answer within 30 s".to_owned())?
    })
}

async fn exchange(
    port: u16,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    chunks: usize,
    trailers: &[(&str, &str)],
) -> Result<Response, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let (client, connection) = h2::client::handshake(tcp)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.map_err(|e| e.to_string())?;
    let mut request = http::Request::post(format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(()).map_err(|e| e.to_string())?;
    let (response, mut stream) = client
        .send_request(request, false)
        .map_err(|e| e.to_string())?;
    let size = body.len().div_ceil(chunks.max(1)).max(1);
    for piece in body.chunks(size) {
        stream
            .send_data(Bytes::copy_from_slice(piece), false)
            .map_err(|e| e.to_string())?;
    }
    let mut trailer_map = http::HeaderMap::new();
    for (name, value) in trailers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = http::HeaderValue::from_str(value).map_err(|e| e.to_string())?;
        trailer_map.insert(name, value);
    }
    stream
        .send_trailers(trailer_map)
        .map_err(|e| e.to_string())?;
    let response = response.await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut received = response.into_body();
    let mut body = Vec::new();
    while let Some(piece) = received.data().await {
        let piece = piece.map_err(|e| e.to_string())?;
        let _ = received.flow_control().release_capacity(piece.len());
        body.extend_from_slice(&piece);
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
