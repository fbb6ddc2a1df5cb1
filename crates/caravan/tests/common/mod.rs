//! Test harness: starts the real `caravan` binary on free ports and talks
//! to it over HTTP.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_caravan");

/// Runs an SDK call from a synchronous test, on this thread's runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("test runtime: {error}"));
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// Three ports the OS says are free right now, each claimed for this test
/// run with a marker file so no other test (in any process) is handed the
/// same port before the agent binds it. Markers older than ten minutes are
/// stale and taken over.
pub fn free_ports() -> (u16, u16, u16) {
    // Every test builds HTTP clients after this; they need the provider.
    caravan_tls::install_default_provider();
    let markers = std::env::temp_dir().join("caravan-test-ports");
    std::fs::create_dir_all(&markers).expect("port marker directory");
    let reserve = |port: u16| {
        let marker = markers.join(port.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(_) => true,
            Err(_) => {
                let stale = std::fs::metadata(&marker)
                    .and_then(|meta| meta.modified())
                    .ok()
                    .and_then(|at| at.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(600));
                stale && std::fs::write(&marker, b"").is_ok()
            }
        }
    };
    let mut ports = Vec::new();
    while ports.len() < 3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("no free port")
            .port();
        if !ports.contains(&port) && reserve(port) {
            ports.push(port);
        }
    }
    (ports[0], ports[1], ports[2])
}

/// A response, read fully.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }
}

/// A running agent process. Killed when dropped.
pub struct Agent {
    child: Option<Child>,
    pub args: Vec<String>,
    pub http_port: u16,
    pub rpc_port: u16,
    pub serf_port: u16,
    pub config_file: PathBuf,
    pub log_file: PathBuf,
    pub dir: tempfile::TempDir,
    /// `CARAVAN_LOG` for the process; `None` leaves it unset, so the
    /// agent's `-log-level` decides what is logged.
    pub log_filter: Option<String>,
    http: reqwest::blocking::Client,
}

/// The log filter tests run the agent with unless they ask otherwise.
pub const DEFAULT_LOG_FILTER: &str = "info,openraft=warn";

impl Agent {
    /// `caravan agent -dev` on free ports.
    pub fn dev() -> Self {
        Self::start(&["-dev"], "")
    }

    /// `caravan agent -server -bootstrap-expect 1` with a data directory.
    pub fn server() -> Self {
        Self::start_with_data_dir(&["-server", "-bootstrap-expect", "1"], "")
    }

    pub fn start_with_data_dir(args: &[&str], extra_hcl: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data").display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.push("-data-dir");
        all.push(&data);
        Self::start_in(dir, &all, extra_hcl)
    }

    /// Starts the agent with `args` plus a config file that sets free ports,
    /// binds loopback, and appends `extra_hcl`.
    pub fn start(args: &[&str], extra_hcl: &str) -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), args, extra_hcl)
    }

    /// As [`Agent::start_with_data_dir`], but does not wait for a leader.
    pub fn start_with_data_dir_unready(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data").display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.push("-data-dir");
        all.push(&data);
        let agent = Self::launch(dir, &all, "");
        agent.wait_answering();
        agent
    }

    /// Starts an agent and returns at once: for agents the harness cannot
    /// ask whether they are ready (one whose HTTP API requires TLS).
    pub fn launch_unwaited(args: &[&str], extra_hcl: &str) -> Self {
        Self::launch(tempfile::tempdir().expect("tempdir"), args, extra_hcl)
    }

    fn start_in(dir: tempfile::TempDir, args: &[&str], extra_hcl: &str) -> Self {
        let agent = Self::launch(dir, args, extra_hcl);
        agent.wait_ready();
        agent
    }

    fn launch(dir: tempfile::TempDir, args: &[&str], extra_hcl: &str) -> Self {
        Self::launch_on(dir, args, extra_hcl, free_ports())
    }

    /// As [`Agent::start`], with `CARAVAN_LOG` unset: `-log-level` in
    /// `args` decides what goes to the log file (stderr).
    pub fn start_at_log_level(args: &[&str], extra_hcl: &str) -> Self {
        let agent = Self::launch_full(
            tempfile::tempdir().expect("tempdir"),
            args,
            extra_hcl,
            free_ports(),
            None,
        );
        agent.wait_ready();
        agent
    }

    /// Starts a server with a data dir on the given ports, without waiting.
    pub fn launch_server_on(ports: (u16, u16, u16), extra_hcl: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data").display().to_string();
        // Server names must be unique in a cluster, as in Nomad.
        let name = format!("server-{}", ports.0);
        Self::launch_on(
            dir,
            &["-server", "-node", &name, "-data-dir", &data],
            extra_hcl,
            ports,
        )
    }

    fn launch_on(
        dir: tempfile::TempDir,
        args: &[&str],
        extra_hcl: &str,
        ports: (u16, u16, u16),
    ) -> Self {
        caravan_tls::install_default_provider();
        Self::launch_full(
            dir,
            args,
            extra_hcl,
            ports,
            Some(DEFAULT_LOG_FILTER.to_string()),
        )
    }

    fn launch_full(
        dir: tempfile::TempDir,
        args: &[&str],
        extra_hcl: &str,
        (http_port, rpc_port, serf_port): (u16, u16, u16),
        log_filter: Option<String>,
    ) -> Self {
        let config_file = dir.path().join("ports.hcl");
        std::fs::write(
            &config_file,
            format!(
                "bind_addr = \"127.0.0.1\"\nports {{\n  http = {http_port}\n  rpc = {rpc_port}\n  serf = {serf_port}\n}}\n{extra_hcl}\n"
            ),
        )
        .expect("write config");
        let mut all: Vec<String> = vec!["agent".to_string()];
        all.extend(args.iter().map(|arg| arg.to_string()));
        all.push("-config".to_string());
        all.push(config_file.display().to_string());
        let mut agent = Self {
            child: None,
            args: all,
            http_port,
            rpc_port,
            serf_port,
            log_file: dir.path().join("agent.log"),
            config_file,
            dir,
            log_filter,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .expect("log file");
        let mut command = Command::new(BINARY);
        command.args(&self.args);
        match &self.log_filter {
            Some(filter) => command.env("CARAVAN_LOG", filter),
            None => command.env_remove("CARAVAN_LOG"),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start caravan");
        self.child = Some(child);
    }

    /// Waits until the agent has a leader and answers.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = self.try_get("/v1/status/leader") {
                if reply.status == 200 && reply.text.len() > 2 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("agent did not become ready; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the HTTP API answers at all.
    pub fn wait_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.try_get("/v1/agent/self").is_err() {
            if Instant::now() > deadline {
                panic!("agent did not answer; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// An SDK client of this agent, with no token or other `NOMAD_*`
    /// setting taken from the test's environment. The tests' helpers
    /// (`jobs::register`, `jobs::allocs`, ...) go through it, as a user's
    /// program would.
    pub fn sdk(&self) -> caravan_sdk::Client {
        let config = caravan_sdk::Config::from_lookup(|_| None)
            .and_then(|config| config.with_address(&self.url("")))
            .unwrap_or_else(|error| panic!("SDK config: {error}"));
        caravan_sdk::Client::new(config).unwrap_or_else(|error| panic!("SDK client: {error}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn rpc_address(&self) -> String {
        format!("127.0.0.1:{}", self.rpc_port)
    }

    pub fn serf_address(&self) -> String {
        format!("127.0.0.1:{}", self.serf_port)
    }

    /// Starts the same command line again after a crash (kill -9 first if
    /// still running), without waiting for a leader.
    pub fn restart_unready(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_answering();
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn try_get(&self, path: &str) -> reqwest::Result<Reply> {
        let response = self.http.get(self.url(path)).send()?;
        read(response)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None)
    }

    pub fn put(&self, path: &str, body: &str) -> Reply {
        self.request("PUT", path, Some(body))
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", path, Some(body))
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request
            .send()
            .unwrap_or_else(|error| panic!("request to {path} failed: {error}\n{}", self.log()));
        read(response).expect("read body")
    }

    /// A request carrying `token` in `X-Nomad-Token` when given.
    pub fn request_with_token(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, self.url(path))
            .body(body.to_string());
        if let Some(token) = token {
            request = request.header("X-Nomad-Token", token);
        }
        read(request.send().expect("request")).expect("read body")
    }

    /// A request with extra headers.
    pub fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().expect("request")).expect("read body")
    }

    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|child| child.id() as i32)
            .expect("running")
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` and waits for the exit status.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("signal");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("agent did not exit after {signal}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a process that should stop on its own (a refused start),
    /// returning its exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("agent did not exit on its own; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After a clean stop: starts the same command line again (same ports,
    /// same data) without waiting for anything.
    pub fn respawn(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts the same command line again (same ports, same data).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn read(response: reqwest::blocking::Response) -> reqwest::Result<Reply> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text()?;
    Ok(Reply {
        status,
        headers,
        text,
    })
}

/// Runs the binary to completion with `args`, returning status and stderr.
pub fn run_to_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let output = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run caravan");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}
#[allow(dead_code)]
pub mod acl;
pub mod cli;
pub mod cluster;
pub mod docker;
pub mod jobs;

/// The state store's watch counters, from `/v1/agent/self` (servers only).
impl Agent {
    /// `stats.state.<key>` as a number: `blocking_waiters` (blocking
    /// queries waiting now), `woken_waiters` (woken so far), `publishes`.
    pub fn state_stat(&self, key: &str) -> u64 {
        let body = self.get("/v1/agent/self").json();
        body["stats"]["state"][key]
            .as_str()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("stats.state.{key} = {}", body["stats"]["state"][key]))
    }

    /// Waits until `count` blocking queries are registered: a query that
    /// returned early never registers, so this fails it deterministically.
    pub fn wait_for_blocking_waiters(&self, count: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let waiting = self.state_stat("blocking_waiters");
            if waiting == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{waiting} blocking queries waiting, expected {count}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
