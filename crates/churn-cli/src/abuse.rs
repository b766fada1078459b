//! Hostile clients for `churn loadtest --abuse`: what a server on a network must survive while
//! it keeps answering its well-behaved callers. Each runs on a thread of its own, beside the load
//! generator, and counts what the server did to it.
//!
//! - `idle-connections`: N HTTP/2 connections that handshake and then send nothing.
//! - `many-streams`: one connection opening N streams (ScoreStream calls that never send), as
//!   fast as the server's SETTINGS_MAX_CONCURRENT_STREAMS lets it.
//! - `slowloris`: N connections to the HTTP port trickling a request's headers a byte at a time.
//! - `stalled-feeds`: N StreamAlerts calls whose answers are never read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::load_generator::Dialer;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

/// One kind of abuse and how many of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abuse {
    /// Connections that handshake HTTP/2 and then idle.
    IdleConnections(usize),
    /// Streams opened on one connection.
    ManyStreams(usize),
    /// Connections trickling HTTP headers to the HTTP port.
    Slowloris(usize),
    /// Alert feeds opened and never read.
    StalledFeeds(usize),
}

impl std::str::FromStr for Abuse {
    type Err = String;

    /// Reads `KIND=COUNT`, e.g. `idle-connections=1000`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, count) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected KIND=COUNT, e.g. idle-connections=1000"))?;
        let count: usize = count
            .trim()
            .parse()
            .map_err(|error| format!("`{text}`: count: {error}"))?;
        Ok(match kind.trim() {
            "idle-connections" => Abuse::IdleConnections(count),
            "many-streams" => Abuse::ManyStreams(count),
            "slowloris" => Abuse::Slowloris(count),
            "stalled-feeds" => Abuse::StalledFeeds(count),
            other => {
                return Err(format!(
                    "`{other}`: not an abuse (idle-connections, many-streams, slowloris, \
                     stalled-feeds)"
                ));
            }
        })
    }
}

/// What the abusers saw, counted as they ran.
#[derive(Debug, Default)]
pub struct AbuseCounts {
    /// Connections or streams the server accepted.
    pub opened: AtomicU64,
    /// Connections or streams the server refused or closed.
    pub cut: AtomicU64,
}

impl std::fmt::Display for AbuseCounts {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "abuse: {} opened, {} refused or closed by the server",
            self.opened.load(Ordering::Relaxed),
            self.cut.load(Ordering::Relaxed)
        )
    }
}

/// Starts `abuse` against the server `dialer` reaches (with its TLS and token) and its HTTP port
/// `http` (`host:port`; a slowloris trickles bytes on the raw socket, which a TLS port cuts at
/// the handshake deadline and a plaintext one at the header deadline), on a thread of its own;
/// it runs until the process ends.
pub(crate) fn start(
    abuse: Abuse,
    dialer: Dialer,
    http: String,
) -> anyhow::Result<Arc<AbuseCounts>> {
    let counts = Arc::new(AbuseCounts::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the abusers' runtime")?;
    let running = counts.clone();
    std::thread::Builder::new()
        .name("abuse".into())
        .spawn(move || {
            runtime.block_on(async move {
                let outcome = match abuse {
                    Abuse::IdleConnections(count) => {
                        idle_connections(&dialer, count, &running).await
                    }
                    Abuse::ManyStreams(count) => many_streams(&dialer, count, &running).await,
                    Abuse::Slowloris(count) => slowloris(&http, count, &running).await,
                    Abuse::StalledFeeds(count) => stalled_feeds(&dialer, count, &running).await,
                };
                if let Err(error) = outcome {
                    eprintln!("abuse stopped: {error:#}");
                }
                // Hold what is open until the process ends.
                std::future::pending::<()>().await;
            });
        })?;
    Ok(counts)
}

fn grpc_request(dialer: &Dialer, path: &str) -> anyhow::Result<http::Request<()>> {
    let mut request = http::Request::post(format!("{}{path}", dialer.url))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(authorization) = &dialer.authorization {
        request = request.header(http::header::AUTHORIZATION, authorization.clone());
    }
    Ok(request.body(())?)
}

async fn idle_connections(
    dialer: &Dialer,
    count: usize,
    counts: &AbuseCounts,
) -> anyhow::Result<()> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        match dialer.open().await {
            Ok(sender) => {
                counts.opened.fetch_add(1, Ordering::Relaxed);
                held.push(sender);
            }
            Err(_) => {
                counts.cut.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    std::future::pending::<()>().await;
    drop(held);
    Ok(())
}

async fn many_streams(dialer: &Dialer, count: usize, counts: &AbuseCounts) -> anyhow::Result<()> {
    let mut sender = dialer.open().await?;
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        // Waits while the server's stream limit is reached: the h2 client honours it.
        sender = match sender.ready().await {
            Ok(sender) => sender,
            Err(_) => {
                counts.cut.fetch_add(1, Ordering::Relaxed);
                bail!("the server closed the connection");
            }
        };
        let request = grpc_request(dialer, "/churn.v1.ChurnService/ScoreStream")?;
        match sender.send_request(request, false) {
            Ok(stream) => {
                counts.opened.fetch_add(1, Ordering::Relaxed);
                held.push(stream);
            }
            Err(_) => {
                counts.cut.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    std::future::pending::<()>().await;
    Ok(())
}

async fn stalled_feeds(dialer: &Dialer, count: usize, counts: &AbuseCounts) -> anyhow::Result<()> {
    let mut sender = dialer.open().await?;
    let mut held = Vec::with_capacity(count);
    // An empty StreamAlertsRequest: no filter, from the live end.
    let empty_message = Bytes::from_static(&[0, 0, 0, 0, 0]);
    for _ in 0..count {
        sender = sender.ready().await?;
        let request = grpc_request(dialer, "/churn.v1.AlertService/StreamAlerts")?;
        let (response, mut body) = sender.send_request(request, false)?;
        body.send_data(empty_message.clone(), true)?;
        // The headers say whether the feed was let in; its messages are never read.
        match response.await {
            Ok(response)
                if response
                    .headers()
                    .get("grpc-status")
                    .is_none_or(|status| status == "0") =>
            {
                counts.opened.fetch_add(1, Ordering::Relaxed);
                held.push(response);
            }
            _ => {
                counts.cut.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    std::future::pending::<()>().await;
    Ok(())
}

async fn slowloris(addr: &str, count: usize, counts: &Arc<AbuseCounts>) -> anyhow::Result<()> {
    for _ in 0..count {
        let addr = addr.to_string();
        let counts = counts.clone();
        tokio::spawn(async move {
            // Reconnects when cut, as a real attacker would.
            loop {
                let Ok(mut socket) = tokio::net::TcpStream::connect(&addr).await else {
                    counts.cut.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                counts.opened.fetch_add(1, Ordering::Relaxed);
                let head = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
                let mut cut = socket.write_all(head).await.is_err();
                while !cut {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    cut = socket.write_all(b"a").await.is_err();
                }
                counts.cut.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abuses_are_read_as_kind_and_count() {
        assert_eq!(
            "idle-connections=1000".parse::<Abuse>(),
            Ok(Abuse::IdleConnections(1000))
        );
        assert_eq!(
            "stalled-feeds=100".parse::<Abuse>(),
            Ok(Abuse::StalledFeeds(100))
        );
        assert!(
            "flood=3"
                .parse::<Abuse>()
                .unwrap_err()
                .contains("not an abuse")
        );
        assert!(
            "slowloris"
                .parse::<Abuse>()
                .unwrap_err()
                .contains("KIND=COUNT")
        );
    }
}
