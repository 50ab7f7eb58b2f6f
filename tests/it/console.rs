//! `tarsier console` and the HTML report, looked at in a real browser: Debian's Chromium (scripts/chromium.sh)
//! driven over the DevTools protocol by chromiumoxide. A person signs in with the token, sees every agent,
//! sees a running load appear and its chart grow, watches a scenario run step by step, and stops the swarm
//! with Abort. The screenshots go to target/screenshots for a person to look at. Without Chromium the
//! browser tests print one `skipped:` line; the console's own rules (sign-in, foreign pages) are checked
//! over HTTP everywhere.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt as _;
use serde_json::Value;

use crate::common::{self, BIN};

const TOKEN: &str = "console-test-token-0123456789abcdef";

/// A token file and a swarm config that uses it.
fn token_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("swarm.yaml");
    std::fs::write(&config, format!("auth: {{token_file: {}}}\n", token.display())).unwrap();
    (token, config)
}

/// `tarsier console` on a free loopback port, killed when dropped.
struct ConsoleProcess {
    url: String,
    child: Child,
}

impl ConsoleProcess {
    fn start(entry: &str, token: Option<&Path>) -> Self {
        let port = common::free_port_range(1);
        let mut command = Command::new(BIN);
        command.args(["console", entry, "--listen", &format!("127.0.0.1:{port}"), "--every", "500ms"]);
        if let Some(token) = token {
            command.arg("--token-file").arg(token);
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = common::http();
        let up = common::eventually(Duration::from_secs(20), || http.get(format!("{url}/console.css")).send().is_ok());
        assert!(up, "the console did not come up");
        ConsoleProcess { url, child }
    }
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium, headless, at 1280x800; its event loop runs until the browser is closed.
async fn browser(chromium: &Path) -> (Browser, tokio::task::JoinHandle<()>) {
    let profile = tempfile::tempdir().unwrap().keep();
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .no_sandbox()
        .new_headless_mode()
        .window_size(1280, 800)
        .viewport(None)
        .user_data_dir(profile)
        .launch_timeout(common::patient(Duration::from_secs(30)))
        .request_timeout(common::patient(Duration::from_secs(30)))
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.unwrap();
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, events)
}

async fn number(page: &Page, expression: &str) -> f64 {
    page.evaluate(expression).await.ok().and_then(|r| r.into_value::<f64>().ok()).unwrap_or(-1.0)
}

async fn text(page: &Page, expression: &str) -> String {
    page.evaluate(expression).await.ok().and_then(|r| r.into_value::<String>().ok()).unwrap_or_default()
}

/// Asks `check` every 100 ms until it holds or `within` (times the patience factor) has passed.
async fn until<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + common::patient(within);
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(page: &Page, name: &str) {
    let path = common::screenshots_dir().join(name);
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path).await.unwrap();
}

/// The issue's walk through the console: sign in with the token, every agent listed, a load started from
/// the command line shows up within 2 s (times the patience factor) with a chart that grows, a scenario run
/// posted with `--console` is shown step by step, and Abort (after its confirmation) stops the swarm's jobs.
#[test]
fn the_console_shows_a_running_swarm_and_its_abort_stops_it() {
    let Some(chromium) = common::chromium() else {
        println!("skipped: no Chromium (scripts/chromium.sh install, or set TARSIER_CHROMIUM_BIN)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (token, config) = token_files(dir.path());
    let http = common::http_with_token(TOKEN);
    let swarm = common::SwarmProcess::start_with(3, &["--config", config.to_str().unwrap()], &http);
    let console = ConsoleProcess::start(&swarm.public(0), Some(&token));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (mut browser, events) = browser(&chromium).await;
        let page = browser.new_page(&console.url).await.unwrap();
        // Signed out: the form, and nothing of the swarm.
        assert!(text(&page, "document.title").await.starts_with("Sign in"));
        screenshot(&page, "console-sign-in.png").await;
        page.find_element("#token").await.unwrap().click().await.unwrap().type_str(TOKEN).await.unwrap();
        page.find_element("button[type=submit]").await.unwrap().click().await.unwrap();
        let rows = "document.querySelectorAll('#agents tbody tr').length";
        assert!(until(Duration::from_secs(10), || async { number(&page, rows).await == 3.0 }).await, "three agents");
        let up = "document.querySelectorAll('#agents .state-up').length";
        assert_eq!(number(&page, up).await, 3.0);

        // A scenario run, shown as it goes (first: a run aborts the swarm when it ends).
        let scenario = dir.path().join("watched.yaml");
        std::fs::write(
            &scenario,
            "name: watched run\ntarget: {local: 1}\nsteps:\n  - name: first nap\n    exec: {command: sleep/sleep, data: {duration: 1s}}\n\
             \x20 - name: naps by length\n    sweep: {ms: [100, 300]}\n    steps:\n\
             \x20     - exec:\n          command: sleep/sleep\n          data: {duration: '{{ms}}ms'}\n\
             \x20         record: [result.slept_ms]\n",
        )
        .unwrap();
        let mut run = Command::new(BIN)
            .args(["scenario", "run", "--target", &swarm.public(1), "--console", &console.url, "--token-file"])
            .arg(&token)
            .args(["--service", &format!("http://127.0.0.1:{}", swarm.base + swarm.agents + 1)])
            .arg(&scenario)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running_step = "document.querySelectorAll('#run-view .badge.running').length";
        let shown = until(Duration::from_secs(10), || async { number(&page, running_step).await >= 1.0 }).await;
        if !shown {
            screenshot(&page, "debug.png").await;
        }
        assert!(shown, "the run's running step was not shown: {}", text(&page, "document.body.innerText").await);
        screenshot(&page, "console-run.png").await;
        assert!(tokio::task::block_in_place(|| run.wait()).unwrap().success());
        let verdict = "(document.querySelector('#run-view .verdict') || {}).textContent || ''";
        assert!(
            until(Duration::from_secs(10), || async { text(&page, verdict).await == "passed" }).await,
            "the finished run was not shown passed: {:?}",
            text(&page, verdict).await
        );
        assert!(text(&page, "document.querySelector('#run-view').textContent").await.contains("naps by length"));

        // A load on every agent, started from outside the console, as a person would from a terminal.
        let service = format!("127.0.0.1:{}", swarm.base + swarm.agents);
        let body = format!(
            "command: net/http_load\ndetach: true\nwave: {{remain: 4, buddies: 3, dedupe: true, report: true}}\n\
             data: {{url: 'http://{service}/health', duration: 60s, concurrency: 2, rate: 100}}\n"
        );
        // The blocking client may not run on the runtime's own threads.
        let (status, answer) = tokio::task::block_in_place(|| common::post_yaml(&http, &swarm.public(0), &body));
        assert_eq!(status, 202, "detached: {answer}");
        let started = Instant::now();
        let jobs = "document.querySelectorAll('#agents [data-command=\"net/http_load\"]').length";
        assert!(
            until(Duration::from_secs(2), || async { number(&page, jobs).await >= 1.0 }).await,
            "the running load did not appear within 2 s (x patience)"
        );
        println!("the load appeared in the console after {:?}", started.elapsed());
        let points = "Number((document.querySelector('#loads figure[data-key^=\"wave:\"]') || {dataset: {}}).dataset.points || 0)";
        assert!(until(Duration::from_secs(5), || async { number(&page, points).await >= 2.0 }).await, "no chart");
        let first = number(&page, points).await;
        assert!(
            until(Duration::from_secs(5), || async { number(&page, points).await >= first + 2.0 }).await,
            "the chart did not grow"
        );
        let drawn = "(document.querySelector('#loads figure img') || {}).naturalWidth || 0";
        assert!(until(Duration::from_secs(5), || async { number(&page, drawn).await > 0.0 }).await, "chart not drawn");
        assert!(until(Duration::from_secs(5), || async { number(&page, jobs).await == 3.0 }).await, "on all three");
        screenshot(&page, "console-load.png").await;

        // Abort: a confirmation first, then the swarm stops.
        page.find_element("#abort-swarm").await.unwrap().click().await.unwrap();
        assert_eq!(number(&page, "document.getElementById('confirm').hidden ? 0 : 1").await, 1.0);
        screenshot(&page, "console-abort-confirm.png").await;
        page.find_element("#confirm-yes").await.unwrap().click().await.unwrap();
        assert!(
            until(Duration::from_secs(10), || async { number(&page, jobs).await == 0.0 }).await,
            "the loads are still shown running after Abort"
        );
        let message = "document.getElementById('message').textContent";
        assert!(
            until(Duration::from_secs(10), || async { text(&page, message).await.starts_with("abort of the swarm") })
                .await,
            "the abort's answer was not shown: {:?}",
            text(&page, message).await
        );
        assert_eq!(tokio::task::block_in_place(|| swarm.busy(&http)), 0, "an agent still runs a job after Abort");
        screenshot(&page, "console-after-abort.png").await;

        // The same page on a phone.
        page.execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        screenshot(&page, "console-phone.png").await;
        browser.close().await.unwrap();
        let _ = events.await;
    });
}

/// The console keeps the agents' rules: nothing but its page's shell without signing in, a wrong token gets
/// the form again, pages of other origins and foreign host names are refused, and the controls reach only
/// agents it sees. No browser needed.
#[test]
fn the_console_lets_in_only_the_token_and_its_own_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (token, config) = token_files(dir.path());
    let http = common::http_with_token(TOKEN);
    let swarm = common::SwarmProcess::start_with(2, &["--config", config.to_str().unwrap()], &http);
    let console = ConsoleProcess::start(&swarm.public(0), Some(&token));
    let plain = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |path: &str| plain.get(format!("{}{path}", console.url)).send().unwrap();
    let page = get("/");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(page.text().unwrap().contains("name=\"token\""), "signed out: the form");
    for path in ["/api/snapshot", "/api/events", "/charts/load.svg?series=x", "/runs/x"] {
        assert_eq!(get(path).status(), 401, "{path} without signing in");
    }
    let wrong = plain
        .post(format!("{}/sign-in", console.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=not-the-token")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right = plain
        .post(format!("{}/sign-in", console.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .unwrap();
    assert_eq!(right.status(), 303);
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let signed_in = |request: reqwest::blocking::RequestBuilder| request.header("cookie", &session).send().unwrap();
    assert!(common::eventually(Duration::from_secs(10), || {
        let snapshot: Value = signed_in(plain.get(format!("{}/api/snapshot", console.url))).json().unwrap();
        snapshot["swarm"]["agents"].as_array().is_some_and(|a| a.len() == 2)
    }));
    // Another page's script, with the person's cookie: refused before anything runs.
    let forged = signed_in(
        plain
            .post(format!("{}/api/abort", console.url))
            .header("origin", "https://evil.example")
            .header("content-type", "application/json")
            .body("{}"),
    );
    assert_eq!(forged.status(), 403);
    let rebound = plain.get(format!("{}/", console.url)).header("host", "rebind.evil.example").send().unwrap();
    assert_eq!(rebound.status(), 403);
    // A control aimed at an agent the console does not see is refused, naming the field.
    let stranger = signed_in(
        plain
            .post(format!("{}/api/cancel", console.url))
            .header("origin", &console.url)
            .header("content-type", "application/json")
            .body(r#"{"agent": "203.0.113.9:8080", "job": 1}"#),
    );
    assert_eq!(stranger.status(), 400);
    assert_eq!(stranger.json::<Value>().unwrap()["field"], "agent");
    // The console's own page may (its Origin is the console's).
    let own = signed_in(
        plain
            .post(format!("{}/api/cancel", console.url))
            .header("origin", &console.url)
            .header("content-type", "application/json")
            .body(format!(r#"{{"agent": "127.0.0.1:{}", "job": 999}}"#, swarm.base)),
    );
    assert_eq!(own.status(), 200);
    assert_eq!(own.json::<Value>().unwrap()["agent_status"], 404, "no job 999, said by the agent");
    assert_eq!(swarm.busy(&http), 0);
}

/// `scenario run --html` writes one page that needs nothing else: Chromium opens it from disk with the
/// network off and shows the verdict, the steps, the sweep's table and chart, and the environment.
#[test]
fn the_html_report_is_one_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.yaml");
    std::fs::write(
        &file,
        "name: report <check>\ntarget: {local: 2}\nsteps:\n  - name: naps\n    sweep: {ms: [10, 60, 120]}\n    steps:\n\
         \x20     - exec:\n          command: sleep/sleep\n          data: {duration: '{{ms}}ms'}\n\
         \x20         record: [result.slept_ms]\n          expect: {values: {result.slept_ms: '< 100'}}\n",
    )
    .unwrap();
    let html = dir.path().join("report.html");
    let out = Command::new(BIN).args(["scenario", "run"]).arg(&file).arg("--html").arg(&html).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "the 120 ms round fails: {}", String::from_utf8_lossy(&out.stdout));
    let page_text = std::fs::read_to_string(&html).unwrap();
    assert!(page_text.contains("report &lt;check&gt;") && !page_text.contains("<check>"), "escaped");
    for external in ["src=\"http", "href=\"http", "<script", "<link"] {
        assert!(!page_text.contains(external), "the report fetches nothing: {external}");
    }
    let Some(chromium) = common::chromium() else {
        println!("skipped: no Chromium to look at the report (scripts/chromium.sh install)");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (mut browser, events) = browser(&chromium).await;
        let page = browser.new_page(format!("file://{}", html.display())).await.unwrap();
        assert_eq!(text(&page, "document.querySelector('.verdict').textContent").await, "failed");
        assert_eq!(number(&page, "document.querySelectorAll('.chart svg').length").await, 1.0);
        let steps = text(&page, "document.body.innerText").await;
        for shown in ["ms=120", "slept_ms", "Environment", "kernel"] {
            assert!(steps.contains(shown), "{shown} in the page: {steps}");
        }
        screenshot(&page, "report.png").await;
        browser.close().await.unwrap();
        let _ = events.await;
    });
}
