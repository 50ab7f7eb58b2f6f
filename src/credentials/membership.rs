//! A membership challenge: an agent asked (`GET /membership?nonce=N`) to prove it holds the swarm key, by a
//! MAC over a fresh nonce and the address it names as its own. Agents ask it of static peers before a copy
//! goes there; clients (`tarsier status`, the console) ask it of every agent they hear of from another before
//! the token goes there.

use crate::credentials::SwarmKey;
use crate::wire::answer::MembershipAnswer;

/// How long a challenge may take.
pub const CHALLENGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Asks the peer at `url` (its `/membership`) to answer a fresh nonce, and checks the answer: a MAC under
/// the swarm key over the nonce and the address the peer names as its own, which must be the address it was
/// dialed at (or a name for the same IP and port).
pub async fn challenge(
    key: &SwarmKey,
    http: &reqwest::Client,
    mut url: reqwest::Url,
    dialed: &str,
) -> Result<(), String> {
    let nonce = format!("{:032x}", rand::random::<u128>());
    url.query_pairs_mut().append_pair("nonce", &nonce);
    let response = http
        .get(url)
        .timeout(CHALLENGE_TIMEOUT)
        .send()
        .await
        .map_err(|err| format!("did not answer the membership challenge: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("answered the membership challenge with {}", response.status()));
    }
    let answer: MembershipAnswer =
        response.json().await.map_err(|err| format!("answered the membership challenge with no proof: {err}"))?;
    if !key.accepts_challenge_answer(&nonce, &answer.address, &answer.proof) {
        return Err("its answer to the membership challenge does not hold: it does not have the swarm key".into());
    }
    if answer.address == dialed || same_socket(&answer.address, dialed).await {
        return Ok(());
    }
    let shown: String = answer.address.chars().take(100).collect();
    Err(format!("it proves membership for {shown:?}, not for the address it was reached at (a relay?)"))
}

/// Whether two `host:port`s name one socket address (a host name and the IP it resolves to).
async fn same_socket(a: &str, b: &str) -> bool {
    let (Ok(a), Ok(b)) = (tokio::net::lookup_host(a).await, tokio::net::lookup_host(b).await) else { return false };
    let a: Vec<std::net::SocketAddr> = a.collect();
    b.into_iter().any(|b| a.contains(&b))
}
