//! The command line: `tarsier agent`, `tarsier exec`, `tarsier abort`, `tarsier demo`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "tarsier",
    version,
    about = "A chaos and load-testing agent swarm",
    long_about = "tarsier agents load a machine and inject faults on command over HTTP.\n\n\
        Start an agent with `tarsier agent`, then POST a YAML or JSON command body to its /exec \
        (or use `tarsier exec`). The service port serves /health, /metrics, /commands and /runtime.\n\n\
        Every agent flag can also come from the environment (TARSIER_*) or from the YAML config file \
        (--config); flags win over the environment, which wins over the file.\n\n\
        The reference Tarsier's command line, `tarsier -c FILE`, runs `tarsier agent -c FILE`, and its \
        config file is read as it is (docs/compatibility.md)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

/// The exit statuses of the commands that talk to agents (docs/guide.md: exit statuses, as k6 keeps them apart).
macro_rules! client_exit {
    () => {
        "Exit status:\n  0  the command ran as asked\n  1  it did not: it failed, was cancelled, or an agent of \
         the wave failed\n  2  the input or the setup is wrong: a refused body (the field named),\n     an unknown \
         command, a refused token, an agent that cannot be reached"
    };
}

/// The exit statuses of the commands that serve until stopped.
macro_rules! serve_exit {
    () => {
        "Exit status:\n  0  stopped by SIGTERM or Ctrl-C, everything held released\n  2  a bad flag or config \
         file, or a port that is taken"
    };
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run an agent: the public port takes commands, the service port serves health and metrics.
    #[command(after_help = concat!("Example:\n  tarsier agent --listen 0.0.0.0:8080 --service-listen 0.0.0.0:8081 --token-file /etc/tarsier/token --consul 127.0.0.1:8500\n\n", serve_exit!()))]
    Agent(Box<AgentArgs>),
    /// POST a command body (a YAML or JSON file, or - for stdin) to an agent and print the answer.
    #[command(after_help = concat!("Example:\n  printf 'command: sleep/sleep\\ndata: {duration: 1s}\\n' | tarsier exec http://127.0.0.1:8080 -\n  tarsier exec --report http://127.0.0.1:8080 wave.yaml\n\n", client_exit!()))]
    Exec(ExecArgs),
    /// Cancel every job and release everything held, on the whole swarm (an abort flood through the agent's
    /// peers), or with --local on this agent only.
    #[command(after_help = concat!("Example:\n  tarsier abort http://127.0.0.1:8080\n  tarsier abort --local --json http://127.0.0.1:8080\n\n", client_exit!()))]
    Abort(AbortArgs),
    /// List the commands an agent offers, with their fields and defaults (its service port's /commands).
    #[command(after_help = concat!("Example:\n  tarsier commands http://127.0.0.1:8081\n\n", client_exit!()))]
    Commands(CommandsArgs),
    /// The swarm at a glance: every agent the given one knows (proven members only get the token), with its
    /// state, uptime, restarts, memory, what it holds, its faults and running jobs.
    #[command(after_help = concat!("Example:\n  tarsier status http://127.0.0.1:8080 --watch\n\nExit status:\n  0  every agent answered\n  1  an agent is down or did not prove membership\n  2  the agent named cannot be asked (bad URL, token file)"))]
    Status(WatchArgs),
    /// A web console for the swarm: agents, what they hold and run, live load charts, wave reports and
    /// scenario runs, refreshed every second; cancel a job or abort an agent or the swarm.
    #[command(after_help = concat!("Example:\n  tarsier console http://127.0.0.1:8080 --token-file token   # then open http://127.0.0.1:8089/\n\n", serve_exit!()))]
    Console(ConsoleArgs),
    /// An agent's jobs: the running ones with their elapsed time and progress, then the latest finished
    /// ones (`tarsier jobs http://127.0.0.1:8080 --watch`).
    #[command(after_help = concat!("Example:\n  tarsier jobs http://127.0.0.1:8080 --watch\n\n", client_exit!()))]
    Jobs(WatchArgs),
    /// One job of an agent, every field (`tarsier job http://127.0.0.1:8080 7`).
    #[command(after_help = concat!("Example:\n  tarsier job http://127.0.0.1:8080 7\n\n", client_exit!()))]
    Job(JobArgs),
    /// Cancel one running job of an agent (`tarsier cancel http://127.0.0.1:8080 7`).
    #[command(after_help = concat!("Example:\n  tarsier cancel http://127.0.0.1:8080 7\n\n", client_exit!()))]
    Cancel(CancelArgs),
    /// GET a URL and exit 0 when it answers 2xx within --timeout, 1 otherwise: the health check of an image
    /// without curl (Docker HEALTHCHECK, a Kubernetes exec probe).
    #[command(
        after_help = "Example:\n  tarsier probe http://127.0.0.1:8081/health --timeout 2s\n\nExit status:\n  0  it answered 2xx in time\n  1  it did not"
    )]
    Probe(ProbeArgs),
    /// Ship a log directory's records to NATS JetStream, at least once, with a checkpoint per file: what an
    /// agent's `logging.ship` does, as a sidecar for files another process writes (docs/logs.md).
    #[command(
        after_help = "Example:\n  tarsier ship /var/log/tarsier --url nats://nats-1:4222 --url nats://nats-2:4222\n\nExit status:\n  0  stopped (Ctrl-C, SIGTERM) or, with --once, everything delivered\n  2  bad arguments, an unreadable checkpoint file"
    )]
    Ship(ShipArgs),
    /// Read delivered activity records and tell, per agent and boot, what arrived: holes, duplicates,
    /// records out of order, delays.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// Print a shell completion script: `tarsier completions bash > /etc/bash_completion.d/tarsier`.
    #[command(after_help = "Example:\n  tarsier completions bash > /etc/bash_completion.d/tarsier")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `tarsier man > tarsier.1; man ./tarsier.1`; with --dir, write a page per
    /// subcommand there (tarsier-exec.1, tarsier-scenario-run.1, ...).
    #[command(after_help = "Example:\n  tarsier man --dir /usr/local/share/man/man1 && man tarsier-exec")]
    Man {
        /// Write tarsier.1 and one page per subcommand into this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Start one agent on loopback, run a few demo commands against it, and keep serving until Ctrl-C.
    #[command(after_help = concat!("Example:\n  tarsier demo\n\n", serve_exit!()))]
    Demo(DemoArgs),
    /// Run a local swarm: N agents on 127.0.0.1, each a process of its own restarted when it dies (or, with
    /// --in-process, all in this one), a demo wave whose report is printed, then serve until Ctrl-C.
    #[command(after_help = concat!("Example:\n  tarsier swarm --agents 5 --label zone=a,b\n\n", serve_exit!()))]
    Swarm(SwarmArgs),
    /// Run or check scenario files: declarative chaos runs with expectations, for CI.
    #[command(subcommand, after_help = "Example:\n  tarsier scenario run scenarios/smoke.yaml --junit junit.xml")]
    Scenario(ScenarioCommand),
}

#[derive(Debug, Args, Default)]
pub struct AgentArgs {
    /// Public address (`/exec`, `/abort`, `/jobs`); port 0 picks a free port. [default: 127.0.0.1:8080]
    #[arg(long, env = "TARSIER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Service address (`/health`, `/metrics`, `/commands`, `/runtime`). [default: 127.0.0.1:8081]
    #[arg(long, env = "TARSIER_SERVICE_LISTEN")]
    pub service_listen: Option<SocketAddr>,
    /// YAML config file: listen, service_listen, name, tls, limits, plugins, log_format, max_body.
    #[arg(long, short, env = "TARSIER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Name of this agent in answers and logs. [default: hostname:public-port]
    #[arg(long, env = "TARSIER_NAME")]
    pub name: Option<String>,
    /// A label waves select agents by (`wave: {select: {labels: {zone: b}}}`): KEY=VALUE, repeatable, over the
    /// config's `labels:`.
    #[arg(long = "label", value_name = "KEY=VALUE", env = "TARSIER_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Directory for the storage plugin's files (plugins.storage.dir). [default: the system temp dir]
    #[arg(long, env = "TARSIER_STORAGE_DIR")]
    pub storage_dir: Option<PathBuf>,
    /// Static peers: public `host:port` of every agent, comma-separated (discovery.static); labels after a
    /// `#`: `10.0.0.1:8080#zone=a;rack=1`.
    #[arg(long, env = "TARSIER_PEERS", value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// Set by `tarsier swarm` on the agents it starts: they share this machine's network, so network faults
    /// are refused.
    #[arg(long, hide = true)]
    pub local_swarm: bool,
    /// Consul HTTP address, such as 127.0.0.1:8500: register there and take peers from it (discovery.consul).
    #[arg(long, env = "TARSIER_CONSUL")]
    pub consul: Option<String>,
    /// Host that peers and Consul use to reach this agent. [default: the listen IP, or the hostname]
    #[arg(long, env = "TARSIER_ADVERTISE")]
    pub advertise: Option<String>,
    /// More host names clients may reach this agent under (server.allowed_hosts), comma-separated: a
    /// Service's or a Compose service's name. Requests under other names are refused (DNS rebinding).
    #[arg(long = "allow-host", env = "TARSIER_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Log lines as text or JSON. [default: text]
    #[arg(long, env = "TARSIER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// A file holding the swarm's token, required from every client and sent to peers (auth.token_file).
    #[arg(long, env = "TARSIER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a token. Only on a trusted, isolated network. The variable
    /// takes 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "TARSIER_INSECURE_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_no_auth: bool,
    /// Refuse to start when the token file (or the Consul token file) is readable by every user of the
    /// machine, instead of warning (auth.strict_perms).
    #[arg(long, env = "TARSIER_STRICT_PERMS", value_parser = clap::builder::BoolishValueParser::new())]
    pub strict_perms: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `limits:` of the config, from flags or `TARSIER_*` variables (docs/operating.md: Configuration).
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Limits (override limits.* of the config)")]
pub struct LimitArgs {
    /// Most anonymous memory held at once, such as 2GiB.
    #[arg(long, env = "TARSIER_MAX_RAM", value_parser = tarsier_plugin::ByteSize::parse)]
    pub max_ram: Option<tarsier_plugin::ByteSize>,
    /// Most bytes held in files at once.
    #[arg(long, env = "TARSIER_MAX_DISK", value_parser = tarsier_plugin::ByteSize::parse)]
    pub max_disk: Option<tarsier_plugin::ByteSize>,
    /// Longest duration any command may ask for, such as 30m.
    #[arg(long, env = "TARSIER_MAX_DURATION", value_parser = tarsier_plugin::HumanDuration::parse)]
    pub max_duration: Option<tarsier_plugin::HumanDuration>,
    /// Most network connections held at once.
    #[arg(long, env = "TARSIER_MAX_CONNECTIONS")]
    pub max_connections: Option<u64>,
    /// Most threads faults/deadlock keeps blocked at once.
    #[arg(long, env = "TARSIER_MAX_BLOCKED_THREADS")]
    pub max_blocked_threads: Option<u64>,
    /// Executions a wave without dedupe may cause in the whole swarm.
    #[arg(long, env = "TARSIER_MAX_WAVE_EXECUTIONS")]
    pub max_wave_executions: Option<u64>,
    /// Hosts and CIDRs net/dial may connect to, comma-separated.
    #[arg(long, env = "TARSIER_DIAL_TARGETS", value_delimiter = ',')]
    pub dial_targets: Option<Vec<String>>,
    /// Hosts and CIDRs net/http_load may target, comma-separated.
    #[arg(long, env = "TARSIER_HTTP_LOAD_TARGETS", value_delimiter = ',')]
    pub http_load_targets: Option<Vec<String>>,
}

/// How the CLI reaches an agent: its token, and the TLS it needs for an https:// URL.
#[derive(Debug, Args, Default, Clone)]
pub struct ClientArgs {
    /// A file holding the swarm's token, sent as `Authorization: Bearer`.
    #[arg(long, env = "TARSIER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The CA (PEM) to verify an https:// agent against.
    #[arg(long, env = "TARSIER_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for agents that require mutual TLS; with --key-file.
    #[arg(long, env = "TARSIER_CERT_FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "TARSIER_KEY_FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// A summary and tables, for people.
    #[default]
    Table,
    /// The agent's answers as JSON, one document per line, histograms kept: for programs.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The agent's public URL, such as http://127.0.0.1:8080 (`/exec` is added when no path is given).
    pub url: String,
    /// The command body: a YAML or JSON file, or - to read stdin.
    pub file: String,
    /// Give up waiting after this long: for the answer, and with --report for the answer and the report.
    #[arg(long, default_value = "10m")]
    pub timeout: humantime::Duration,
    /// For a wave with `report: true`: wait for the agents' reports and print the swarm-wide result.
    #[arg(long)]
    pub report: bool,
    /// With --report and an http_load: a row for every agent (default: the 10 with the slowest p99).
    #[arg(long, requires = "report")]
    pub agents: bool,
    /// `table`: a summary for people (a live line on stderr while it waits); `json`: the answers as JSON, one
    /// per line, histograms kept.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// The same as --output json.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
    /// A condition read every second while the command runs, in YAML: `{probe: {url: http://svc/health}}`,
    /// `{http_load: error_rate, is: "< 0.05", for: 2s}`, `{promql: "...", is: "< 0.5"}` (with
    /// --prometheus). When one breaks the swarm is aborted at once and the exit status is 1. Repeatable.
    #[arg(long = "guard", value_name = "YAML")]
    pub guards: Vec<String>,
    /// Prometheus' base URL, for `promql` guards.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AbortArgs {
    /// The agent's public URL, such as http://127.0.0.1:8080.
    pub url: String,
    /// Abort this agent only; without it the abort floods the whole swarm.
    #[arg(long)]
    pub local: bool,
    /// Print the agent's answer as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `tarsier jobs` and `tarsier status`: what an agent (and, for status, the swarm through it) has, once or
/// again and again.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// An agent's public URL, such as http://127.0.0.1:8080 (status finds the others through it).
    pub url: String,
    /// Ask again until Ctrl-C (jobs every second, status every 2 s).
    #[arg(long)]
    pub watch: bool,
    /// Print JSON (one line per refresh with --watch).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// One agent's public URL, such as http://127.0.0.1:8080: the others are found through it.
    pub url: String,
    /// Where the console listens; a non-loopback address needs --token-file.
    #[arg(long, default_value = "127.0.0.1:8089", env = "TARSIER_CONSOLE_LISTEN")]
    pub listen: SocketAddr,
    /// More host names a browser may reach the console under (IP literals and localhost always), comma-separated.
    #[arg(long = "allow-host", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// How often the swarm is asked (at least 200ms).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub every: std::time::Duration,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct JobArgs {
    /// The agent's public URL, such as http://127.0.0.1:8080.
    pub url: String,
    /// The job's id, as `tarsier jobs` or an /exec answer gives it.
    pub id: u64,
    /// Print the agent's JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The agent's public URL, such as http://127.0.0.1:8080.
    pub url: String,
    /// The running job's id.
    pub id: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct CommandsArgs {
    /// The agent's service URL, such as http://127.0.0.1:8081.
    pub url: String,
    /// Print the catalogue as JSON (with each command's JSON schema).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The URL, such as http://127.0.0.1:8081/health.
    pub url: String,
    /// How long the answer may take.
    #[arg(long, default_value = "2s", value_parser = tarsier_plugin::HumanDuration::parse)]
    pub timeout: tarsier_plugin::HumanDuration,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Public address of the demo agent.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Service address of the demo agent.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub service_listen: SocketAddr,
    /// Run the demo commands and exit instead of serving until Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct SwarmArgs {
    /// How many agents.
    #[arg(long, default_value_t = 10)]
    pub agents: usize,
    /// Agent i listens on base-port + i (public) and base-port + agents + i (service); without it, free ports.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// A config file every agent uses (limits, plugins); listen addresses and names are the swarm's own.
    #[arg(long, short, env = "TARSIER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Skip the demo waves.
    #[arg(long)]
    pub no_demo: bool,
    /// Exit after the demo waves instead of serving until Ctrl-C.
    #[arg(long)]
    pub once: bool,
    /// Labels for `wave: {select: {labels: ...}}`, dealt round robin: `--label zone=a,b` gives agent 0 zone
    /// a, agent 1 zone b, agent 2 zone a, ... Repeatable.
    #[arg(long = "label", value_name = "KEY=V1,V2,...")]
    pub labels: Vec<String>,
    /// Run every agent in this one process (the form above 32 agents): lighter, but a command that would end
    /// the process (faults/segfault, exit, ...) is refused, since it would end them all. Without it each
    /// agent runs in a process of its own, restarted when it dies.
    #[arg(long)]
    pub in_process: bool,
}

#[derive(Debug, Args)]
pub struct ScenarioRunArgs {
    /// Scenario files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub outputs: RunOutputs,
    /// Run against this agent's public URL instead of each file's target.
    #[arg(long)]
    pub target: Option<String>,
    /// With --target: the agent's service URL (default: the public port + 1).
    #[arg(long, requires = "target")]
    pub service: Option<String>,
    /// Replace a sweep parameter's values, such as `--sweep replicas=1,4` (a shorter run for CI). Every sweep
    /// that has the parameter takes them; a name no sweep has is an error. May be given several times.
    #[arg(long = "sweep", value_name = "NAME=V1,V2")]
    pub sweeps: Vec<String>,
    /// Give one of the scenario's `params:` another value, such as `--param image=tarsier-busybox:latest` (an
    /// experiment run on your own service). A name the file does not declare is an error. May be given
    /// several times.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Run every round of every sweep this many times (1 to 100; a sweep's own `rounds:` otherwise): tables
    /// show the median and range, charts error bars, the CSV and JSON every run.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `scenario run` writes besides its table.
#[derive(Debug, Args, Default, Clone)]
pub struct RunOutputs {
    /// Write JUnit XML here: one suite per file, one case per step.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the whole run as JSON here (every scenario, step and recorded figure), like k6's summary export.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Write the run as one self-contained HTML page here (steps, guards, sweep tables and charts, figures,
    /// the environment): no script, nothing fetched, readable offline and printable.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write the recorded figures as CSV here: scenario, file, step, figure, value.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write everything into this directory: junit.xml, summary.json, figures.csv, report.html, and for each sweep its
    /// table as sweep-NAME.csv and .json and its chart as sweep-NAME.svg.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Push the results to a Prometheus remote-write endpoint as they come (`http://prometheus:9090/api/v1/write`;
    /// Prometheus needs `--web.enable-remote-write-receiver`): step outcomes, each load's figures stage by
    /// stage, guard readings; labelled with the scenario, the run and the step.
    #[arg(long, value_name = "URL", env = "TARSIER_REMOTE_WRITE")]
    pub remote_write: Option<String>,
    /// Show the run as it goes in a `tarsier console` at this URL (`http://127.0.0.1:8089`): its steps,
    /// sweeps and guards, posted with the swarm's token.
    #[arg(long, value_name = "URL", env = "TARSIER_CONSOLE")]
    pub console: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Run scenarios: exit 0 when every expectation held, 1 when one failed, 2 for a bad file or a broken setup
    /// (an agent unreachable, a body or token refused), 130 on Ctrl-C.
    /// The swarm is always aborted at the end.
    #[command(
        after_help = "Example:\n  tarsier scenario run scenarios/smoke.yaml --junit junit.xml --out results/\n\n\
        Exit status:\n  0  every expectation held\n  1  one did not\n  2  a bad file or a broken setup\n  130  Ctrl-C"
    )]
    Run(Box<ScenarioRunArgs>),
    /// Check scenario files without running them: exit 0 when all are valid, 2 otherwise.
    #[command(
        after_help = "Example:\n  tarsier scenario check scenarios/*.yaml\n\nExit status:\n  0  every file is valid\n  2  one is not"
    )]
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Draw a sweep's chart again from its JSON (`--out DIR` wrote sweep-NAME.json): the SVG on stdout, or
    /// next to the JSON as sweep-NAME.svg with --write.
    #[command(
        after_help = "Example:\n  tarsier scenario chart --write results/sweep-knee.json\n  tarsier scenario chart --write --from scenarios/experiments/scaling-knee.yaml results/sweep-replicas.json"
    )]
    Chart {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write each chart next to its JSON (same name, .svg) instead of printing it.
        #[arg(long)]
        write: bool,
        /// Take the chart's title and reference lines from this scenario file's sweep of the same name (its
        /// `chart:`), for results written before it had one.
        #[arg(long, value_name = "SCENARIO")]
        from: Option<PathBuf>,
        /// Print the sweep's table as Markdown instead of its chart (what docs/experiments.md shows).
        #[arg(long, conflicts_with = "write")]
        markdown: bool,
    },
}

/// Where records are shipped to or read from: NATS servers and their JetStream stream.
#[derive(Debug, Args)]
pub struct NatsArgs {
    /// A NATS server (repeat for the members of a cluster).
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// The JetStream stream.
    #[arg(long, default_value = "TARSIER_LOGS")]
    pub stream: String,
    /// A NATS credentials file (.creds).
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// A file holding a NATS token.
    #[arg(long = "nats-token-file")]
    pub nats_token_file: Option<PathBuf>,
    /// A CA certificate (PEM) for the servers' TLS; TLS is then required.
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// The directory of the log files (`*.jsonl`, and the one being written, `*.jsonl.open`).
    pub dir: PathBuf,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// The subject records are published on.
    #[arg(long, default_value = "tarsier.logs")]
    pub subject: String,
    /// Only the files of this name (`NAME.BOOT.SEQ.jsonl`); default every `.jsonl` file of the directory.
    #[arg(long)]
    pub name: Option<String>,
    /// How long a delivered file is kept before it is deleted.
    #[arg(long, default_value = "0s", value_parser = tarsier_plugin::HumanDuration::parse)]
    pub retention: tarsier_plugin::HumanDuration,
    /// Exit once every finished file is delivered and no file is being written.
    #[arg(long)]
    pub once: bool,
    /// Copies a created stream keeps (3 on a JetStream cluster survive a server's loss).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Check delivered records for holes: from a JetStream stream (--url) or a JSON-lines file (--file).
    #[command(
        after_help = "Example:\n  tarsier logs verify --url nats://127.0.0.1:4222\n  tarsier logs verify --file collected.jsonl --json\n\nExit status:\n  0  no hole\n  1  a hole: a number below one that arrived never did\n  2  the stream or file cannot be read"
    )]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A file of JSON lines another pipeline delivered.
    #[arg(long, conflicts_with = "urls")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// How long reading the stream may take.
    #[arg(long, default_value = "60s", value_parser = tarsier_plugin::HumanDuration::parse)]
    pub timeout: tarsier_plugin::HumanDuration,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}
