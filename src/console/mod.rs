//! `tarsier console URL`: a web console for a running swarm. It asks the swarm (through the agent named,
//! `client::swarm_view`) once a second and sends what it found to every open page as server-sent events:
//! the agents with what they hold and run, live charts of every `http_load` (drawn here as SVG), the
//! latest waves' reports, and the scenario runs `scenario run --console` posts. Its only controls are
//! cancelling a job and aborting an agent or the swarm. The page is static (HTML, CSS, one script, all
//! served from here, nothing from elsewhere), and a strict Content-Security-Policy keeps it so.

mod access;
mod charts;
mod feed;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::cli::ConsoleArgs;
use crate::credentials::Token;
use crate::wire::browsers::BrowserPolicy;

pub use feed::LiveRun;

/// What the console's handlers share.
pub(crate) struct Console {
    pub feed: Arc<feed::Feed>,
    pub access: access::Access,
    pub browsers: BrowserPolicy,
    /// The agent the swarm was found through (`host:port`) and its scheme.
    pub entry: String,
}

/// Serves the console until `shutdown`.
pub async fn run(args: ConsoleArgs, shutdown: CancellationToken) -> anyhow::Result<i32> {
    let token = match &args.client.token_file {
        Some(path) => Some(Token::from_file(path, false)?),
        None => None,
    };
    if token.is_none() && !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "--listen {}: a console without a token (--token-file) listens on loopback only: anyone who reaches \
             it could abort the swarm",
            args.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address: SocketAddr = listener.local_addr()?;
    let surveyor = crate::client::swarm_view::Surveyor::new(&args.client)?;
    let entry = crate::client::endpoint(&args.url, "");
    let feed = feed::Feed::new(surveyor, entry.clone(), token.is_none());
    let console = Arc::new(Console {
        feed: feed.clone(),
        access: access::Access::new(token),
        browsers: BrowserPolicy::new(&[], &args.allowed_hosts, &[]).with_own_pages(),
        entry,
    });
    let every = args.every.max(Duration::from_millis(200));
    tokio::spawn(feed.poll(every, shutdown.clone()));
    crate::say!("tarsier console: http://{address}/ (the swarm through {})", args.url);
    if console.access.is_open() {
        crate::say!("  no token: anyone who reaches this address may use it (loopback only)");
    } else {
        crate::say!("  sign in with the swarm's token (the file given by --token-file)");
    }
    if !address.ip().is_loopback() {
        crate::say!("  plain HTTP on a network address: the token crosses the network when someone signs in");
    }
    axum::serve(listener, routes::router(console).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("the console stopped serving")?;
    Ok(crate::client::EXIT_OK)
}
