//! Helpers shared by the integration tests: start a lab, write its
//! revoke.toml, run the real `revoke` binary against it, read what it said.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use revoke_core::iis::{self, EXCHANGE_POOLS, LEGACY_POOL};
use revoke_lab::{Fault, FaultSpec, LAB_DEFAULT_PASSWORD, Lab, LabConfig, LabServer, LabTransport};
use serde_json::Value;
use tempfile::TempDir;

/// How the lab logs the account revoke authenticates as.
pub const ADMIN: &str = "LAB\\revoke-admin";

/// The longest any single `revoke` run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A lab with fast IIS timings: recycles, drains and resets in milliseconds.
pub fn fast_lab(servers: usize) -> LabConfig {
    LabConfig {
        servers,
        recycle_time: Duration::from_millis(20),
        drain_time: Duration::from_millis(100),
        iisreset_downtime: Duration::from_millis(400),
        ..LabConfig::default()
    }
}

pub fn fault(server: &str, fault: Fault) -> FaultSpec {
    FaultSpec {
        server: server.to_string(),
        fault,
    }
}

/// What one run of `revoke` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One DC's entry of a JSON report's `directory.domain_controllers`.
#[track_caller]
pub fn dc_report<'a>(report: &'a Value, host: &str) -> &'a Value {
    report["directory"]["domain_controllers"]
        .as_array()
        .expect("domain_controllers[]")
        .iter()
        .find(|dc| dc["host"] == host)
        .unwrap_or_else(|| panic!("no {host} in {report:#}"))
}

impl Run {
    /// stdout parsed as the JSON report.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
    }
}

/// One invocation of the real binary. The environment is isolated: no
/// inherited `REVOKE_*`, and the platform config directory is an empty
/// temporary one, so nothing on the test machine leaks in.
pub struct Revoke {
    args: Vec<String>,
    password: Option<String>,
    stdin: Option<String>,
    interrupt_after: Option<Duration>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    no_network: bool,
    memory_limit: Option<u64>,
}

impl Revoke {
    pub fn new<S: AsRef<str>>(args: &[S]) -> Self {
        Revoke {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            password: None,
            stdin: None,
            interrupt_after: None,
            cwd: None,
            env: Vec::new(),
            no_network: false,
            memory_limit: None,
        }
    }

    /// Runs revoke in a network namespace of its own with only loopback
    /// (`unshare -n`, as root): a DNS query cannot leave the machine.
    pub fn without_network(mut self) -> Self {
        self.no_network = true;
        self
    }

    /// Runs revoke with at most `bytes` of data memory (`prlimit --data`,
    /// RLIMIT_DATA): past it an allocation fails and revoke aborts, so a
    /// test sees memory use that is not bounded.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// `REVOKE_PASSWORD` (never argv).
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    /// Text written to stdin (stdin is otherwise empty, never a terminal).
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Sends SIGINT (what Ctrl-C sends) after this long.
    pub fn interrupt_after(mut self, after: Duration) -> Self {
        self.interrupt_after = Some(after);
        self
    }

    /// Runs revoke in this working directory.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    pub async fn run(self) -> Run {
        tokio::task::spawn_blocking(move || self.run_blocking())
            .await
            .expect("revoke runner panicked")
    }

    fn run_blocking(self) -> Run {
        let home = TempDir::new().expect("temp home");
        let mut command = if self.no_network {
            let mut unshare = Command::new("unshare");
            unshare.args(["-n", "--", env!("CARGO_BIN_EXE_revoke")]);
            unshare
        } else if let Some(bytes) = self.memory_limit {
            let mut prlimit = Command::new("prlimit");
            prlimit.arg(format!("--data={bytes}"));
            prlimit.args(["--", env!("CARGO_BIN_EXE_revoke")]);
            prlimit
        } else {
            Command::new(env!("CARGO_BIN_EXE_revoke"))
        };
        command
            .args(&self.args)
            .env_remove("REVOKE_PASSWORD")
            .env_remove("REVOKE_CONFIG")
            .env_remove("REVOKE_F5_PASSWORD")
            .env_remove("REVOKE_DIRECTORY_PASSWORD")
            .env_remove("REVOKE_WINRM_PASSWORD")
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            // The default journal goes into the temporary home too.
            .env("XDG_STATE_HOME", home.path().join("state"))
            // No Kerberos ticket unless a test gives one: a `kinit` on the
            // test machine must not change what a run does.
            .env(
                "KRB5CCNAME",
                format!("FILE:{}", home.path().join("no-ticket").display()),
            )
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        if let Some(password) = &self.password {
            command.env("REVOKE_PASSWORD", password);
        }
        let mut child = command.spawn().expect("start revoke");
        if let Some(text) = &self.stdin {
            let mut stdin = child.stdin.take().expect("stdin piped");
            // revoke may exit before reading it all; that is its business.
            let _ = stdin.write_all(text.as_bytes());
        }
        let mut out = child.stdout.take().expect("stdout piped");
        let mut err = child.stderr.take().expect("stderr piped");
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let started = Instant::now();
        let mut interrupt = self.interrupt_after;
        let status = loop {
            if let Some(after) = interrupt
                && started.elapsed() >= after
            {
                let sent = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .expect("run kill");
                assert!(sent.success(), "kill -INT failed");
                interrupt = None;
            }
            if let Some(status) = child.try_wait().expect("wait for revoke") {
                break status;
            }
            if started.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "revoke {:?} ran longer than {RUN_LIMIT:?}; stderr so far:\n{}",
                    self.args,
                    err_reader.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Run {
            code: status.code().expect("revoke was killed by a signal"),
            stdout: out_reader.join().expect("stdout reader"),
            stderr: err_reader.join().expect("stderr reader"),
        }
    }
}

/// A running lab, its revoke.toml (and CA file) in a temporary directory.
pub struct TestLab {
    pub lab: Lab,
    /// Holds revoke.toml and lab-ca.pem; removed when the test ends.
    _dir: TempDir,
    pub config: PathBuf,
    pub transport: LabTransport,
}

impl TestLab {
    /// Points this lab's revoke.toml at the embedded `directory` (its DC1,
    /// its CA), binding as `bind_user`; `extra` adds `[directory]` keys.
    pub fn use_directory(
        &self,
        directory: &revoke_lab::directory::Directory,
        bind_user: &str,
        extra: &[(&str, toml::Value)],
    ) {
        let ca = self.config.with_file_name("directory-ca.pem");
        std::fs::write(&ca, directory.ca_pem()).unwrap();
        let mut section = toml::Table::new();
        section.insert("url".into(), directory.ldaps_url(1).into());
        section.insert("ca_file".into(), ca.display().to_string().into());
        section.insert("bind_user".into(), bind_user.into());
        for (key, value) in extra {
            section.insert(key.to_string(), value.clone());
        }
        self.edit_config(|config| {
            config.insert("directory".into(), section.into());
        });
    }

    /// Rewrites the lab's revoke.toml through `edit`.
    pub fn edit_config(&self, edit: impl FnOnce(&mut toml::Table)) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let mut config: toml::Table = text.parse().unwrap();
        edit(&mut config);
        std::fs::write(&self.config, config.to_string()).unwrap();
    }

    pub async fn start(config: LabConfig) -> Self {
        Self::start_with(config, LabTransport::Http).await
    }

    pub async fn start_with(config: LabConfig, transport: LabTransport) -> Self {
        let lab = Lab::start(config).await.expect("start the lab");
        let dir = TempDir::new().expect("temp dir");
        let config = lab
            .write_config(dir.path(), transport)
            .expect("write config");
        TestLab {
            lab,
            _dir: dir,
            config,
            transport,
        }
    }

    pub fn servers(&self) -> &[LabServer] {
        self.lab.servers()
    }

    pub fn server(&self, name: &str) -> &LabServer {
        self.lab
            .server(name)
            .unwrap_or_else(|| panic!("no lab server {name}"))
    }

    /// How the report names a lab server: the address in revoke.toml.
    pub fn host(&self, server: &LabServer) -> String {
        match self.transport {
            LabTransport::Http => server.http_addr.to_string(),
            _ => server.https_addr.to_string(),
        }
    }

    /// `revoke flush --config <lab> ARGS` with the lab's password.
    pub fn flush<S: AsRef<str>>(&self, args: &[S]) -> Revoke {
        let mut all = vec![
            "flush".to_string(),
            "--config".to_string(),
            self.config.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.as_ref().to_string()));
        Revoke::new(&all).password(LAB_DEFAULT_PASSWORD)
    }

    /// `revoke flush --config <lab> --output json ARGS`: the run and its report.
    pub async fn flush_json(&self, args: &[&str]) -> (Run, Value) {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let run = self.flush(&all).run().await;
        let json = run.json();
        (run, json)
    }

    /// The report's entry for a lab server.
    pub fn report_of<'a>(&self, report: &'a Value, server: &LabServer) -> &'a Value {
        let host = self.host(server);
        report["servers"]
            .as_array()
            .expect("servers is an array")
            .iter()
            .find(|s| s["host"] == host.as_str())
            .unwrap_or_else(|| panic!("report has no server {host} ({}): {report:#}", server.name))
    }

    /// Every command log, concatenated (for "nothing was sent" checks).
    pub fn all_commands(&self) -> Vec<(String, String)> {
        self.servers()
            .iter()
            .flat_map(|s| {
                s.log
                    .entries()
                    .into_iter()
                    .map(|e| (s.name.clone(), e.command_line))
            })
            .collect()
    }

    /// Every server except the named ones is `ok`, every Exchange pool
    /// recycled, with the lab agreeing.
    #[track_caller]
    pub fn assert_others_recycled(&self, report: &Value, except: &[&str]) {
        for server in self.servers() {
            if except.iter().any(|e| e.eq_ignore_ascii_case(&server.name)) {
                continue;
            }
            assert_recycled(self.report_of(report, server), server);
        }
    }
}

/// `appcmd recycle apppool /apppool.name:"POOL"`, as revoke sends it.
pub fn recycle_line(pool: &str) -> String {
    iis::recycle(&iis::PoolName::parse(pool).expect("valid pool")).command_line()
}

/// When each command that changes something (recycle, iisreset) ran on `server`.
pub fn mutation_times(server: &LabServer) -> Vec<std::time::SystemTime> {
    server
        .log
        .entries()
        .iter()
        .filter(|e| is_mutating(&e.command_line))
        .map(|e| e.at)
        .collect()
}

/// A command that changes something on the server.
pub fn is_mutating(command_line: &str) -> bool {
    let lower = command_line.to_ascii_lowercase();
    lower.contains(" recycle ") || (lower.contains("iisreset") && !lower.contains("/status"))
}

pub fn pids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array of PIDs: {value}"))
        .iter()
        .map(|p| {
            p.as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or_else(|| panic!("not a PID: {p}"))
        })
        .collect()
}

/// The action for `pool` in a server's report entry.
pub fn action<'a>(server: &'a Value, pool: &str) -> &'a Value {
    server["actions"]
        .as_array()
        .expect("actions is an array")
        .iter()
        .find(|a| a["pool"] == pool)
        .unwrap_or_else(|| panic!("no action for {pool}: {server:#}"))
}

/// One server flushed completely: `ok`, the five Exchange pools recycled
/// (new workers that the lab really runs, replacing the old ones), and its
/// log holds exactly one recycle per Exchange pool, none of DefaultAppPool.
#[track_caller]
pub fn assert_recycled(entry: &Value, server: &LabServer) {
    assert_eq!(entry["status"], "ok", "{}: {entry:#}", server.name);
    assert_eq!(entry["computer"], server.name.as_str(), "{entry:#}");
    assert!(entry["error"].is_null(), "{entry:#}");
    let actions = entry["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 5, "{}: {entry:#}", server.name);
    let live: Vec<u32> = server.iis.workers().iter().map(|w| w.pid).collect();
    for pool in EXCHANGE_POOLS {
        let a = action(entry, pool);
        assert_eq!(a["status"], "recycled", "{}: {a:#}", server.name);
        let old = pids(&a["old_pids"]);
        let new = pids(&a["new_pids"]);
        assert!(
            !old.is_empty(),
            "{} {pool}: no old PIDs: {a:#}",
            server.name
        );
        assert!(
            !new.is_empty(),
            "{} {pool}: no new PIDs: {a:#}",
            server.name
        );
        assert!(
            new.iter().all(|p| !old.contains(p)),
            "{} {pool}: new {new:?} overlaps old {old:?}",
            server.name
        );
        let pool_workers = iis::pids_of(&server.iis.workers(), pool);
        for pid in &new {
            assert!(
                pool_workers.contains(pid),
                "{} {pool}: reported new worker {pid} is not running in the lab ({pool_workers:?}, all {live:?})",
                server.name
            );
        }
    }
    let log = server.log.entries();
    for entry in &log {
        assert!(
            entry.user.eq_ignore_ascii_case(ADMIN),
            "{}: logged user {}",
            server.name,
            entry.user
        );
    }
    for pool in EXCHANGE_POOLS {
        let line = recycle_line(pool);
        let n = log.iter().filter(|e| e.command_line == line).count();
        assert_eq!(n, 1, "{}: {line} sent {n} times", server.name);
        assert!(
            log.iter()
                .any(|e| e.command_line == line && e.exit_code == Some(0)),
            "{}: {line} did not succeed",
            server.name
        );
    }
    let recycles = log
        .iter()
        .filter(|e| e.command_line.contains(" recycle "))
        .count();
    assert_eq!(recycles, 5, "{}: {log:#?}", server.name);
    assert!(
        !log.iter()
            .any(|e| e.command_line == recycle_line(LEGACY_POOL)),
        "{}: DefaultAppPool was recycled",
        server.name
    );
}

/// Waits until the old workers of a drained recycle are gone (drain_time).
pub async fn settle(config: &LabConfig) {
    tokio::time::sleep(config.drain_time + Duration::from_millis(50)).await;
}

pub fn path_str(path: &Path) -> String {
    path.display().to_string()
}

/// One response header as text, if present and readable.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A TLS client configuration that trusts only the certificates in `ca_pem`
/// (aws-lc-rs named explicitly: the test build links two rustls backends).
pub fn tls_trusting(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots
            .add(cert.expect("CA PEM"))
            .expect("usable CA certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// The repository's root (the workspace), where scripts/ and .venv live.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first of `count` consecutive ports that are free on 127.0.0.1, for a
/// command that takes a base port. Below Linux's ephemeral range (32768 and
/// up), so no outgoing connection of a test running alongside can take one
/// between this check and the bind.
pub fn free_port_block(count: u16) -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (getrandom::u32().expect("random") % 12_000) as u16;
        let free = (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports on 127.0.0.1 between 20000 and 32767");
}

/// `revoke lab ...` running in the background; interrupted (Ctrl-C) and
/// waited for when dropped.
pub struct LabProcess {
    child: Child,
    stdout: Arc<Mutex<String>>,
    _home: tempfile::TempDir,
}

impl LabProcess {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// [`LabProcess::start`] with more environment (e.g. `KRB5_CONFIG`).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_revoke"))
            .args(args)
            .env_remove("REVOKE_PASSWORD")
            .env_remove("REVOKE_CONFIG")
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .envs(env.iter().copied())
            .spawn()
            .expect("start revoke lab");
        let stdout = Arc::new(Mutex::new(String::new()));
        let pipe = child.stdout.take().unwrap();
        let into = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = into.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        LabProcess {
            child,
            stdout,
            _home: home,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until the lab says it runs (its last line), or fails saying why.
    pub async fn wait_running(&mut self) {
        let started = Instant::now();
        while !self.stdout().contains("Running until Ctrl-C.") {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "revoke lab ended ({status}) before it ran:\n{}",
                    self.stdout()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "revoke lab did not start within 60 s:\n{}",
                self.stdout()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
