//! The lab speaks WinRM: proven by independent clients (pywinrm, winrm-rs)
//! and, for the faults, by plain HTTP/TCP clients looking at the wire.
//!
//! Every test starts its own lab in-process on loopback with OS-chosen ports.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use revoke_core::iis::{self, PoolName, PoolState, RemoteCommand};
use revoke_lab::{Fault, FaultSpec, LAB_DEFAULT_PASSWORD, Lab, LabConfig, LabServer, LabTransport};
use serde_json::{Value, json};

use crate::common::tls_trusting;

const OWA: &str = "MSExchangeOWAAppPool";
const EWS: &str = "MSExchangeServicesAppPool";
const ADMIN: &str = "LAB\\revoke-admin";

// ---------------------------------------------------------------- helpers

fn config(servers: usize, faults: Vec<FaultSpec>) -> LabConfig {
    LabConfig {
        servers,
        faults,
        ..LabConfig::default()
    }
}

fn fault(server: &str, fault: Fault) -> FaultSpec {
    FaultSpec {
        server: server.to_string(),
        fault,
    }
}

fn pool(name: &str) -> PoolName {
    PoolName::parse(name).expect("valid pool name")
}

/// What revoke itself sends: list the pools, recycle OWA.
fn list_and_recycle() -> Vec<RemoteCommand> {
    vec![iis::list_apppools(), iis::recycle(&pool(OWA))]
}

/// (stdout, stderr, exit code) of one command, whoever ran it.
type Output = (String, String, i32);

/// The checks shared by every client: the listing, the recycle's text and
/// exit code, the command log, and a new worker process for OWA.
fn assert_list_and_recycle(server: &LabServer, outputs: &[Output], owa_pids_before: &[u32]) {
    let (list_out, _, list_code) = &outputs[0];
    assert_eq!(
        *list_code, 0,
        "appcmd list apppool exit code; stdout: {list_out}"
    );
    assert!(
        list_out.contains(&format!("APPPOOL \"{OWA}\" (")),
        "listing lacks OWA: {list_out:?}"
    );
    let pools = iis::parse_apppools(list_out);
    assert!(
        pools
            .iter()
            .any(|p| p.name == OWA && p.state == PoolState::Started),
        "OWA not listed as started: {pools:?}"
    );
    assert!(pools.len() >= 5, "Exchange pools missing: {pools:?}");

    let (recycle_out, recycle_err, recycle_code) = &outputs[1];
    assert_eq!(
        *recycle_code, 0,
        "recycle exit code; stdout {recycle_out:?} stderr {recycle_err:?}"
    );
    assert!(
        recycle_out.contains(&format!("\"{OWA}\" successfully recycled")),
        "recycle output: {recycle_out:?}"
    );

    let recycle_line = iis::recycle(&pool(OWA)).command_line();
    let log = server.log.entries();
    // Exit code 0 filled in when the recycle finished.
    let entry = log
        .iter()
        .find(|e| e.command_line == recycle_line && e.exit_code == Some(0))
        .unwrap_or_else(|| panic!("command log lacks a finished {recycle_line:?}: {log:?}"));
    assert!(
        entry.user.eq_ignore_ascii_case(ADMIN),
        "logged user {}",
        entry.user
    );
    assert!(
        log.iter()
            .any(|e| e.command_line == iis::list_apppools().command_line()),
        "command log lacks the listing: {log:?}"
    );

    let after = iis::pids_of(&server.iis.workers(), OWA);
    assert!(
        after.iter().any(|p| !owa_pids_before.contains(p)),
        "no new OWA worker: before {owa_pids_before:?}, after {after:?}"
    );
}

fn owa_pids(server: &LabServer) -> Vec<u32> {
    iis::pids_of(&server.iis.workers(), OWA)
}

// ------------------------------------------------------------ pywinrm

/// `$REVOKE_TEST_PYTHON`, else the repository's `.venv`. Fails (never skips)
/// when pywinrm is missing.
fn python() -> PathBuf {
    let python = std::env::var_os("REVOKE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::common::workspace_root().join(".venv/bin/python"));
    let ok = std::process::Command::new(&python)
        .args(["-c", "import winrm, spnego"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} cannot import pywinrm: run scripts/setup-test-deps.sh (or set REVOKE_TEST_PYTHON \
         to a Python that has pywinrm 0.5 and pyspnego)",
        python.display()
    );
    python
}

/// Runs tests/pywinrm_probe.py; the password goes through the environment.
async fn pywinrm(request: Value, password: &str) -> Value {
    let python = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pywinrm_probe.py");
    let password = password.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(request.to_string())
            .env("PROBE_PASSWORD", password)
            .output()
    })
    .await
    .unwrap()
    .expect("running the pywinrm probe");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pywinrm probe failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("probe printed {stdout:?}: {e}"))
}

fn probe_commands(commands: &[RemoteCommand]) -> Value {
    Value::Array(
        commands
            .iter()
            .map(|c| json!([c.program, c.args]))
            .collect(),
    )
}

fn probe_outputs(result: &Value) -> Vec<Output> {
    result["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["stdout"].as_str().unwrap().to_string(),
                r["stderr"].as_str().unwrap().to_string(),
                r["status_code"].as_i64().unwrap() as i32,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pywinrm_ntlm_over_http_with_sealed_messages() {
    let lab = Lab::start(config(2, vec![])).await.unwrap();
    let server = &lab.servers()[1];
    let before = owa_pids(server);
    let result = pywinrm(
        json!({
            "endpoint": format!("http://{}/wsman", server.http_addr),
            "transport": "ntlm",
            "username": ADMIN,
            "message_encryption": "always",
            "commands": probe_commands(&list_and_recycle()),
            "wrong_password": true,
        }),
        LAB_DEFAULT_PASSWORD,
    )
    .await;
    assert_list_and_recycle(server, &probe_outputs(&result), &before);
    assert_eq!(result["wrong_password"], "refused");
    // The other server saw nothing.
    assert!(lab.servers()[0].log.entries().is_empty());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pywinrm_basic_over_https_validating_the_lab_ca() {
    let lab = Lab::start(config(1, vec![])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    lab.write_config(dir.path(), LabTransport::HttpsBasic)
        .unwrap();
    let server = &lab.servers()[0];
    let before = owa_pids(server);
    let result = pywinrm(
        json!({
            "endpoint": format!("https://{}/wsman", server.https_addr),
            "transport": "basic",
            "username": ADMIN,
            "server_cert_validation": "validate",
            "ca_trust_path": dir.path().join("lab-ca.pem"),
            "commands": probe_commands(&list_and_recycle()),
            "wrong_password": true,
        }),
        LAB_DEFAULT_PASSWORD,
    )
    .await;
    assert_list_and_recycle(server, &probe_outputs(&result), &before);
    assert_eq!(result["wrong_password"], "refused");
    lab.shutdown().await;
}

/// A recycle that outlasts the Receive's OperationTimeout: the lab answers
/// the w:TimeoutFault (2150858793), pywinrm repeats the Receive and still
/// gets the output. Over sealed HTTP, so the fault itself is sealed.
#[tokio::test(flavor = "multi_thread")]
async fn long_command_yields_timeout_fault_that_pywinrm_repeats() {
    let lab = Lab::start(LabConfig {
        recycle_time: Duration::from_secs(3),
        ..config(1, vec![])
    })
    .await
    .unwrap();
    let server = &lab.servers()[0];
    let before = owa_pids(server);
    let started = Instant::now();
    let result = pywinrm(
        json!({
            "endpoint": format!("http://{}/wsman", server.http_addr),
            "transport": "ntlm",
            "username": ADMIN,
            "message_encryption": "always",
            "operation_timeout_sec": 1,
            "read_timeout_sec": 10,
            "timeout_probe": true,
            "commands": probe_commands(&[iis::recycle(&pool(OWA))]),
        }),
        LAB_DEFAULT_PASSWORD,
    )
    .await;
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(
        result["timeouts_seen"].as_u64().unwrap() >= 1,
        "no TimeoutFault seen: {result}"
    );
    let outputs = probe_outputs(&result);
    assert_eq!(outputs[0].2, 0, "{outputs:?}");
    assert!(
        outputs[0].0.contains("successfully recycled"),
        "{outputs:?}"
    );
    assert!(
        iis::pids_of(&server.iis.workers(), OWA)
            .iter()
            .any(|p| !before.contains(p))
    );
    lab.shutdown().await;
}

/// revoke's merged command lines, run by an independent client: pywinrm
/// gets the parts' output and exit codes exactly as revoke reads them. The
/// recycle line takes time (two 300 ms recycles), so the lab answers its
/// first Receive with the first pool's result and CommandState Running, and
/// pywinrm asks again: a Receive does not wait for the whole line. The
/// request log has every POST, the NTLM legs included.
#[tokio::test(flavor = "multi_thread")]
async fn pywinrm_reads_revokes_merged_lines_part_by_part() {
    let lab = Lab::start(LabConfig {
        recycle_time: Duration::from_millis(300),
        ..config(1, vec![])
    })
    .await
    .unwrap();
    let server = &lab.servers()[0];
    let before = owa_pids(server);
    let survey = iis::survey();
    let recycles = iis::recycle_pools(&[pool(OWA), pool(EWS)]);
    let result = pywinrm(
        json!({
            "endpoint": format!("http://{}/wsman", server.http_addr),
            "transport": "ntlm",
            "username": ADMIN,
            "message_encryption": "always",
            "commands": probe_commands(&[survey.command(), recycles.command()]),
        }),
        LAB_DEFAULT_PASSWORD,
    )
    .await;
    let outputs = probe_outputs(&result);
    let parts = survey.finished(&outputs[0].0);
    assert_eq!(parts.len(), 3, "{outputs:?}");
    assert_eq!(parts[0].stdout.trim(), "EX01");
    assert!(iis::parse_apppools(&parts[1].stdout).len() >= 5);
    assert!(parts.iter().all(|p| p.exit_code == 0), "{parts:?}");
    let parts = recycles.finished(&outputs[1].0);
    let codes: Vec<(&str, i32)> = parts
        .iter()
        .map(|p| (p.label.as_str(), p.exit_code))
        .collect();
    assert_eq!(codes, [("recycle-1", 0), ("recycle-2", 0), ("workers", 0)]);
    assert!(
        parts[0]
            .stdout
            .contains(&format!("\"{OWA}\" successfully recycled"))
    );
    let listed = iis::pids_of(&iis::parse_workers(&parts[2].stdout), OWA);
    assert!(listed.iter().any(|p| !before.contains(p)), "{listed:?}");

    // One process per program, each recycle logged as revoke's single-pool
    // command with its exit code, both from the same WinRM command.
    let log = server.log.entries();
    let recycled: Vec<_> = log
        .iter()
        .filter(|e| e.command_line.contains(" recycle "))
        .collect();
    assert_eq!(recycled.len(), 2, "{log:#?}");
    assert_eq!(
        recycled[0].command_line,
        iis::recycle(&pool(OWA)).command_line()
    );
    assert_eq!(
        recycled[1].command_line,
        iis::recycle(&pool(EWS)).command_line()
    );
    assert!(recycled.iter().all(|e| e.exit_code == Some(0)));
    assert_eq!(recycled[0].shell_command, recycled[1].shell_command);
    assert_eq!(log.len(), 6, "{log:#?}");

    let requests = server.requests.entries();
    let count = |action: &str| {
        requests
            .iter()
            .filter(|r| r.action.as_deref() == Some(action))
            .count()
    };
    // pywinrm opens a shell per command and signals every command.
    for action in ["Create", "Command", "Signal", "Delete"] {
        assert_eq!(count(action), 2, "{action}: {requests:#?}");
    }
    assert!(
        count("Receive") >= 3,
        "the recycle line took one Receive: {requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.authorization.as_deref() == Some("Negotiate NEGOTIATE") && r.status == 401),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.authorization.as_deref() == Some("Negotiate AUTHENTICATE")),
        "{requests:#?}"
    );
    lab.shutdown().await;
}

// ----------------------------------------------------------- winrm-rs

fn winrm_rs(
    port: u16,
    tls: bool,
    auth: winrm_rs::AuthMethod,
    user: &str,
    domain: &str,
    password: &str,
) -> winrm_rs::WinrmClient {
    let config = winrm_rs::WinrmConfig {
        port,
        use_tls: tls,
        // winrm-rs 1.1.2 trusts the public Mozilla roots only: it cannot be
        // given the lab CA (docs/windows-behaviour.md §4.12).
        accept_invalid_certs: tls,
        auth_method: auth,
        connect_timeout_secs: 5,
        operation_timeout_secs: 20,
        ..Default::default()
    };
    winrm_rs::WinrmClient::new(
        config,
        winrm_rs::WinrmCredentials::new(user, password, domain),
    )
    .unwrap()
}

async fn winrm_rs_run(
    client: &winrm_rs::WinrmClient,
    command: &RemoteCommand,
) -> Result<Output, winrm_rs::WinrmError> {
    let args: Vec<&str> = command.args.iter().map(String::as_str).collect();
    let out = client
        .run_command("127.0.0.1", &command.program, &args)
        .await?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.exit_code,
    ))
}

/// winrm-rs 1.1.2 does its NTLM handshake anew for every request through a
/// reqwest connection pool, without pinning the three legs to one TCP
/// connection. When the pool has not yet taken back the connection that
/// carried the CHALLENGE (it happens under CPU load), the AUTHENTICATE leaves
/// on a fresh connection, where the server has no context: a 401, from
/// Windows (HTTP.sys keeps NTLM state per connection) as from the lab. That is
/// winrm-rs's race, not a lab defect, so positive NTLM runs retry it.
async fn winrm_rs_run_ntlm(
    client: &winrm_rs::WinrmClient,
    command: &RemoteCommand,
) -> Result<Output, winrm_rs::WinrmError> {
    let mut attempt = 1;
    loop {
        match winrm_rs_run(client, command).await {
            Err(winrm_rs::WinrmError::AuthFailed(_)) if attempt < 10 => attempt += 1,
            other => return other,
        }
    }
}

async fn winrm_rs_list_and_recycle(client: &winrm_rs::WinrmClient, ntlm: bool) -> Vec<Output> {
    let mut outputs = Vec::new();
    for c in list_and_recycle() {
        let out = if ntlm {
            winrm_rs_run_ntlm(client, &c).await
        } else {
            winrm_rs_run(client, &c).await
        };
        outputs.push(out.expect("winrm-rs run_command"));
    }
    outputs
}

#[tokio::test(flavor = "multi_thread")]
async fn winrm_rs_basic_over_https() {
    let lab = Lab::start(config(1, vec![])).await.unwrap();
    let server = &lab.servers()[0];
    let before = owa_pids(server);
    let port = server.https_addr.port();
    let client = winrm_rs(
        port,
        true,
        winrm_rs::AuthMethod::Basic,
        ADMIN,
        "",
        LAB_DEFAULT_PASSWORD,
    );
    let outputs = winrm_rs_list_and_recycle(&client, false).await;
    assert_list_and_recycle(server, &outputs, &before);

    let bad = winrm_rs(
        port,
        true,
        winrm_rs::AuthMethod::Basic,
        ADMIN,
        "",
        "not-the-password",
    );
    let err = winrm_rs_run(&bad, &iis::list_apppools()).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn winrm_rs_ntlm_over_https_with_channel_bindings() {
    let lab = Lab::start(config(1, vec![])).await.unwrap();
    let server = &lab.servers()[0];
    let before = owa_pids(server);
    let port = server.https_addr.port();
    let client = winrm_rs(
        port,
        true,
        winrm_rs::AuthMethod::Ntlm,
        "revoke-admin",
        "LAB",
        LAB_DEFAULT_PASSWORD,
    );
    let outputs = winrm_rs_list_and_recycle(&client, true).await;
    assert_list_and_recycle(server, &outputs, &before);

    let bad = winrm_rs(
        port,
        true,
        winrm_rs::AuthMethod::Ntlm,
        "revoke-admin",
        "LAB",
        "nope",
    );
    let err = winrm_rs_run(&bad, &iis::list_apppools()).await.unwrap_err();
    assert!(
        matches!(err, winrm_rs::WinrmError::AuthFailed(_)),
        "expected an authentication failure, got {err}"
    );
    lab.shutdown().await;
}

/// winrm-rs 1.1.2's "sealed" NTLM mode sends its first SOAP body (the shell
/// Create) in plaintext on the AUTHENTICATE leg and only seals later requests
/// (see its src/transport.rs `send_ntlm_sealed` and src/auth/ntlm.rs
/// `do_handshake`). Windows' default AllowUnencrypted=false refuses a
/// plaintext body on HTTP, so against a default Windows listener winrm-rs
/// cannot even open a shell. The lab must refuse it the same way; this is why
/// revoke has its own WinRM client (empty-body handshake, then sealed).
#[tokio::test(flavor = "multi_thread")]
async fn winrm_rs_sealed_http_is_refused_like_windows_does() {
    let lab = Lab::start(config(1, vec![])).await.unwrap();
    let server = &lab.servers()[0];
    let client = winrm_rs(
        server.http_addr.port(),
        false,
        winrm_rs::AuthMethod::Ntlm,
        "revoke-admin",
        "LAB",
        LAB_DEFAULT_PASSWORD,
    );
    let err = winrm_rs_run_ntlm(&client, &iis::list_apppools())
        .await
        .unwrap_err();
    // Authentication itself succeeded: the refusal is a WS-Management fault
    // about encryption, not a 401.
    assert!(
        matches!(err, winrm_rs::WinrmError::Soap(_)),
        "expected a SOAP fault, got {err}"
    );
    assert!(err.to_string().contains("unencrypted"), "{err}");
    assert!(
        server.log.entries().is_empty(),
        "{:?}",
        server.log.entries()
    );
    lab.shutdown().await;
}

// ------------------------------------------------------ plain clients

/// reqwest trusting the lab CA only (aws-lc-rs named explicitly).
fn https_client(lab: &Lab) -> reqwest::Client {
    let tls = tls_trusting(lab.ca_pem().as_bytes());
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn soap(action: &str, shell_id: Option<&str>, body: &str) -> String {
    let selector = shell_id
        .map(|id| {
            format!(
                r#"<w:SelectorSet><w:Selector Name="ShellId">{id}</w:Selector></w:SelectorSet>"#
            )
        })
        .unwrap_or_default();
    format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:To>https://ex01:5986/wsman</a:To><w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI><a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action s:mustUnderstand="true">{action}</a:Action><a:MessageID>uuid:0A1B2C3D-0000-4000-8000-000000000001</a:MessageID><w:OperationTimeout>PT5S</w:OperationTimeout>{selector}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

const CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
const SHELL_BODY: &str = "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>";

/// POSTs a SOAP body with Basic credentials to a server's HTTPS listener.
async fn post_basic(
    client: &reqwest::Client,
    server: &LabServer,
    password: &str,
    xml: String,
) -> (u16, Vec<String>, String) {
    let resp = client
        .post(format!(
            "https://localhost:{}/wsman",
            server.https_addr.port()
        ))
        .header("Authorization", basic(ADMIN, password))
        .header("Content-Type", "application/soap+xml;charset=UTF-8")
        .body(xml)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let auth = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (status, auth, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn create_answers_like_windows_and_faults_are_worded_like_it() {
    let lab = Lab::start(config(1, vec![])).await.unwrap();
    let server = &lab.servers()[0];
    let client = https_client(&lab);
    let (status, _, xml) = post_basic(
        &client,
        server,
        LAB_DEFAULT_PASSWORD,
        soap(CREATE, None, SHELL_BODY),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let find = |local: &str| {
        doc.descendants()
            .find(|n| n.tag_name().name() == local)
            .unwrap_or_else(|| panic!("no {local} in {xml}"))
    };
    let selector = find("Selector");
    assert_eq!(selector.attribute("Name"), Some("ShellId"));
    let shell_id = selector.text().unwrap().to_string();
    assert_eq!(find("ShellId").text(), Some(shell_id.as_str()));
    assert_eq!(
        find("Action").text(),
        Some("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse")
    );
    assert_eq!(
        find("RelatesTo").text(),
        Some("uuid:0A1B2C3D-0000-4000-8000-000000000001")
    );
    assert!(find("MessageID").text().unwrap().starts_with("uuid:"));
    assert_eq!(
        find("To").text(),
        Some("http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous")
    );

    // Unknown ShellId: w:InvalidSelectors.
    let delete = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
    let (status, _, xml) = post_basic(
        &client,
        server,
        LAB_DEFAULT_PASSWORD,
        soap(delete, Some("00000000-0000-0000-0000-000000000000"), ""),
    )
    .await;
    assert_eq!(status, 500);
    assert!(xml.contains("w:InvalidSelectors"), "{xml}");
    assert!(
        xml.contains("the shell was not found on the server"),
        "{xml}"
    );

    // Unknown action: a:ActionNotSupported.
    let (status, _, xml) = post_basic(
        &client,
        server,
        LAB_DEFAULT_PASSWORD,
        soap("http://example.test/Frobnicate", None, ""),
    )
    .await;
    assert_eq!(status, 500);
    assert!(xml.contains("a:ActionNotSupported"), "{xml}");

    // Delete of the real shell: 200 with an empty body.
    let (status, _, xml) = post_basic(
        &client,
        server,
        LAB_DEFAULT_PASSWORD,
        soap(delete, Some(&shell_id), ""),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<s:Body></s:Body>"), "{xml}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listeners_offer_windows_default_authentication() {
    let lab = Lab::start(config(1, vec![])).await.unwrap();
    let server = &lab.servers()[0];
    let http = reqwest::Client::new();
    let url = format!("http://{}/wsman", server.http_addr);

    // HTTP: Negotiate only; Basic is refused even with the right password.
    let r = http
        .post(&url)
        .header("Authorization", basic(ADMIN, LAB_DEFAULT_PASSWORD))
        .body(soap(CREATE, None, SHELL_BODY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let offers: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(offers, ["Negotiate"]);

    // A sealed body on a connection that never authenticated: 401.
    let r = http
        .post(&url)
        .header(
            "Content-Type",
            "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"",
        )
        .body("--Encrypted Boundary\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Only POST /wsman.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = http
        .post(format!("http://{}/other", server.http_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // HTTPS: Negotiate and Basic; a wrong password gets both offers again.
    let client = https_client(&lab);
    let (status, offers, _) =
        post_basic(&client, server, "wrong", soap(CREATE, None, SHELL_BODY)).await;
    assert_eq!(status, 401);
    assert_eq!(offers, ["Negotiate", "Basic realm=\"WSMAN\""]);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_toml_points_at_the_lab_without_the_password() {
    let lab = Lab::start(config(2, vec![])).await.unwrap();
    let http = lab.revoke_toml(LabTransport::Http, None);
    let [a, b] = [&lab.servers()[0], &lab.servers()[1]];
    let expected = format!(
        "# Written by `revoke lab`: 2 simulated Exchange servers on loopback.\nservers = [\n  \"{}\",\n  \"{}\",\n]\n\n[winrm]\nscheme = \"http\"\nauth = \"negotiate\"\nuser = \"LAB\\\\revoke-admin\"\n",
        a.http_addr, b.http_addr
    );
    assert_eq!(http, expected);

    let dir = tempfile::tempdir().unwrap();
    let path = lab
        .write_config(dir.path(), LabTransport::HttpsNegotiate)
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(
        parsed["servers"][1].as_str().unwrap(),
        b.https_addr.to_string()
    );
    assert_eq!(parsed["winrm"]["scheme"].as_str(), Some("https"));
    assert_eq!(parsed["winrm"]["auth"].as_str(), Some("negotiate"));
    assert_eq!(parsed["winrm"]["user"].as_str(), Some(ADMIN));
    let ca = PathBuf::from(parsed["winrm"]["ca_file"].as_str().unwrap());
    assert!(ca.is_absolute());
    assert_eq!(std::fs::read_to_string(ca).unwrap(), lab.ca_pem());
    assert!(!text.contains(LAB_DEFAULT_PASSWORD));
    let basic = lab.revoke_toml(LabTransport::HttpsBasic, None);
    assert!(basic.contains("auth = \"basic\"") && !basic.contains("ca_file"));
    lab.shutdown().await;
}

/// 200 servers, 20 ms latency each, all asked at once: tasks, not threads,
/// so this takes about one latency, not 200.
#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_slow_servers_are_cheap() {
    let lab = Lab::start(LabConfig {
        latency: Duration::from_millis(20),
        ..config(200, vec![])
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in lab.servers() {
        let http = http.clone();
        let url = format!("http://{}/wsman", s.http_addr);
        tasks.push(tokio::spawn(async move {
            http.post(url).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(20));
    assert!(
        took < Duration::from_millis(3500),
        "200 requests (4 s one after another) took {took:?}"
    );
    assert_eq!(lab.server("ex200").unwrap().name, "EX200");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_stops_listening() {
    let lab = Lab::start(config(1, vec![])).await.unwrap();
    let addr = lab.servers()[0].http_addr;
    let mut open = tokio::net::TcpStream::connect(addr).await.unwrap();
    lab.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // The open connection was dropped: reading sees EOF or a reset.
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), open.read(&mut buf))
        .await
        .expect("connection still open after shutdown");
    assert!(matches!(read, Ok(0) | Err(_)));
}

// -------------------------------------------------------------- faults

#[tokio::test(flavor = "multi_thread")]
async fn fault_refuse_connections() {
    let lab = Lab::start(config(2, vec![fault("EX02", Fault::RefuseConnections)]))
        .await
        .unwrap();
    let ex02 = lab.server("EX02").unwrap();
    for addr in [ex02.http_addr, ex02.https_addr] {
        let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{addr}");
    }
    tokio::net::TcpStream::connect(lab.server("EX01").unwrap().http_addr)
        .await
        .unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_never_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let lab = Lab::start(config(2, vec![fault("EX01", Fault::NeverAnswer)]))
        .await
        .unwrap();
    let request = b"POST /wsman HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n\r\n";
    let ask = |addr| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf))
            .await
            .map(|r| buf[..r.unwrap()].to_vec())
    };
    assert!(
        ask(lab.server("EX01").unwrap().http_addr).await.is_err(),
        "EX01 answered"
    );
    let answer = ask(lab.server("EX02").unwrap().http_addr).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 401"));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_slow() {
    let lab = Lab::start(config(
        2,
        vec![fault("EX01", Fault::Slow { latency_ms: 400 })],
    ))
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let time = |addr| {
        let http = http.clone();
        async move {
            let started = Instant::now();
            let r = http
                .post(format!("http://{addr}/wsman"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 401);
            started.elapsed()
        }
    };
    assert!(time(lab.server("EX01").unwrap().http_addr).await >= Duration::from_millis(400));
    assert!(time(lab.server("EX02").unwrap().http_addr).await < Duration::from_millis(400));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_reject_credentials() {
    let lab = Lab::start(config(2, vec![fault("EX01", Fault::RejectCredentials)]))
        .await
        .unwrap();
    let client = https_client(&lab);
    let (ex01, ex02) = (lab.server("EX01").unwrap(), lab.server("EX02").unwrap());
    let (status, offers, _) = post_basic(
        &client,
        ex01,
        LAB_DEFAULT_PASSWORD,
        soap(CREATE, None, SHELL_BODY),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(offers, ["Negotiate", "Basic realm=\"WSMAN\""]);
    let ntlm = winrm_rs(
        ex01.https_addr.port(),
        true,
        winrm_rs::AuthMethod::Ntlm,
        "revoke-admin",
        "LAB",
        LAB_DEFAULT_PASSWORD,
    );
    let err = winrm_rs_run(&ntlm, &iis::list_apppools())
        .await
        .unwrap_err();
    assert!(matches!(err, winrm_rs::WinrmError::AuthFailed(_)), "{err}");
    let (status, _, _) = post_basic(
        &client,
        ex02,
        LAB_DEFAULT_PASSWORD,
        soap(CREATE, None, SHELL_BODY),
    )
    .await;
    assert_eq!(status, 200);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_soap_fault_on_shell_create() {
    let lab = Lab::start(config(2, vec![fault("EX01", Fault::SoapFault)]))
        .await
        .unwrap();
    let client = https_client(&lab);
    let (status, _, xml) = post_basic(
        &client,
        lab.server("EX01").unwrap(),
        LAB_DEFAULT_PASSWORD,
        soap(CREATE, None, SHELL_BODY),
    )
    .await;
    assert_eq!(status, 500);
    assert!(xml.contains("<s:Value>w:QuotaLimit</s:Value>"), "{xml}");
    assert!(xml.contains("Code=\"2150859174\""), "{xml}");
    assert!(
        xml.contains("maximum number of 5 concurrent shells"),
        "{xml}"
    );
    let (status, _, _) = post_basic(
        &client,
        lab.server("EX02").unwrap(),
        LAB_DEFAULT_PASSWORD,
        soap(CREATE, None, SHELL_BODY),
    )
    .await;
    assert_eq!(status, 200);
    lab.shutdown().await;
}

fn basic_client(server: &LabServer) -> winrm_rs::WinrmClient {
    winrm_rs(
        server.https_addr.port(),
        true,
        winrm_rs::AuthMethod::Basic,
        ADMIN,
        "",
        LAB_DEFAULT_PASSWORD,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_command_fails() {
    let lab = Lab::start(config(
        2,
        vec![fault("EX01", Fault::CommandFails { pool: OWA.into() })],
    ))
    .await
    .unwrap();
    let ex01 = lab.server("EX01").unwrap();
    let client = basic_client(ex01);
    let (out, err, code) = winrm_rs_run(&client, &iis::recycle(&pool(OWA)))
        .await
        .unwrap();
    assert_eq!(code, 5, "stdout {out:?} stderr {err:?}");
    assert!(
        format!("{out}{err}").contains("Access is denied"),
        "stdout {out:?} stderr {err:?}"
    );
    assert_eq!(ex01.log.entries()[0].exit_code, Some(5));
    // Other pools, and the other server, recycle fine.
    assert_eq!(
        winrm_rs_run(&client, &iis::recycle(&pool(EWS)))
            .await
            .unwrap()
            .2,
        0
    );
    let ex02 = basic_client(lab.server("EX02").unwrap());
    assert_eq!(
        winrm_rs_run(&ex02, &iis::recycle(&pool(OWA)))
            .await
            .unwrap()
            .2,
        0
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_pool_absent() {
    let lab = Lab::start(config(
        2,
        vec![fault("EX01", Fault::PoolAbsent { pool: OWA.into() })],
    ))
    .await
    .unwrap();
    let client = basic_client(lab.server("EX01").unwrap());
    let (listing, _, code) = winrm_rs_run(&client, &iis::list_apppools()).await.unwrap();
    assert_eq!(code, 0);
    let pools = iis::parse_apppools(&listing);
    assert!(!pools.iter().any(|p| p.name == OWA), "{listing}");
    assert!(pools.iter().any(|p| p.name == EWS), "{listing}");
    let (out, err, code) = winrm_rs_run(&client, &iis::recycle(&pool(OWA)))
        .await
        .unwrap();
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains("ERROR"), "{out:?} {err:?}");
    let ex02 = basic_client(lab.server("EX02").unwrap());
    let (listing, _, _) = winrm_rs_run(&ex02, &iis::list_apppools()).await.unwrap();
    assert!(iis::parse_apppools(&listing).iter().any(|p| p.name == OWA));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_pool_stopped() {
    let lab = Lab::start(config(
        1,
        vec![fault("EX01", Fault::PoolStopped { pool: OWA.into() })],
    ))
    .await
    .unwrap();
    let client = basic_client(lab.server("EX01").unwrap());
    let (listing, _, code) = winrm_rs_run(&client, &iis::list_apppools()).await.unwrap();
    assert_eq!(code, 0);
    let pools = iis::parse_apppools(&listing);
    assert!(
        pools
            .iter()
            .any(|p| p.name == OWA && p.state == PoolState::Stopped),
        "{listing}"
    );
    assert!(
        pools
            .iter()
            .any(|p| p.name == EWS && p.state == PoolState::Started),
        "{listing}"
    );
    let (_, _, code) = winrm_rs_run(&client, &iis::recycle(&pool(OWA)))
        .await
        .unwrap();
    assert_ne!(code, 0, "a stopped pool cannot be recycled");
    lab.shutdown().await;
}

// ------------------------------------- revoke's own NTLM building blocks

/// One HTTP/1.1 connection kept for the whole exchange, written by hand:
/// NTLM authenticates a connection, and a pooled client may not reuse it.
struct RawConn<S> {
    io: tokio::io::BufReader<S>,
    host: String,
}

/// Status, headers (lower-cased names) and body of one response.
type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> RawConn<S> {
    fn new(io: S, host: String) -> Self {
        RawConn {
            io: tokio::io::BufReader::new(io),
            host,
        }
    }

    async fn post(&mut self, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let mut head = format!(
            "POST /wsman HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let stream = self.io.get_mut();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        stream.flush().await.unwrap();

        let mut line = String::new();
        self.io.read_line(&mut line).await.unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.io.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.io.read_exact(&mut body).await.unwrap();
        (status, headers, body)
    }

    /// One Negotiate leg with an empty body; returns status, the token in
    /// the answer's `WWW-Authenticate: Negotiate <token>` and the body.
    async fn negotiate(&mut self, token: &[u8]) -> (u16, Option<Vec<u8>>, Vec<u8>) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let auth = format!("Negotiate {}", b64.encode(token));
        let (status, headers, body) = self.post(&[("Authorization", &auth)], b"").await;
        let challenge = headers
            .iter()
            .find(|(k, _)| k == "www-authenticate")
            .and_then(|(_, v)| v.strip_prefix("Negotiate "))
            .map(|t| b64.decode(t).unwrap());
        (status, challenge, body)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// What revoke's client does over HTTP: NTLM with empty bodies, then every
/// SOAP body sealed. The lab accepts it and seals its answers.
#[tokio::test(flavor = "multi_thread")]
async fn empty_body_handshake_then_sealed_messages() {
    use revoke_winrm::{ntlm, sealing};
    let lab = Lab::start(config(1, vec![])).await.unwrap();
    let addr = lab.servers()[0].http_addr;
    let mut conn = RawConn::new(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        addr.to_string(),
    );
    let mut ctx = ntlm::ClientContext::new("revoke-admin", "LAB", LAB_DEFAULT_PASSWORD);
    let (status, challenge, _) = conn.negotiate(&ctx.negotiate()).await;
    assert_eq!(status, 401);
    let (authenticate, mut security) = ctx.authenticate(&challenge.unwrap(), None).unwrap();
    let (status, _, body) = conn.negotiate(&authenticate).await;
    assert_eq!((status, body.len()), (200, 0));

    for _ in 0..2 {
        // Sequence numbers advance on both sides: two rounds prove it.
        let sealed = sealing::seal_body(&mut security, soap(CREATE, None, SHELL_BODY).as_bytes());
        let (status, headers, body) = conn
            .post(&[("Content-Type", sealing::SEALED_CONTENT_TYPE)], &sealed)
            .await;
        assert_eq!(status, 200);
        assert!(sealing::is_sealed(header(&headers, "content-type")));
        let xml = String::from_utf8(sealing::unseal_body(&mut security, &body).unwrap()).unwrap();
        assert!(xml.contains("<rsp:ShellId>"), "{xml}");
    }

    // Plaintext on the authenticated connection: refused (AllowUnencrypted=false).
    let (status, _, body) = conn
        .post(
            &[("Content-Type", "application/soap+xml;charset=UTF-8")],
            soap(CREATE, None, SHELL_BODY).as_bytes(),
        )
        .await;
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("unencrypted"));
    lab.shutdown().await;
}

/// Over HTTPS, NTLM channel bindings that do not match the server's
/// certificate are refused (relay protection, Windows' CbtHardeningLevel);
/// the right ones are accepted and plaintext SOAP then flows over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn https_negotiate_checks_channel_bindings() {
    use revoke_winrm::ntlm;
    let lab = Lab::start(config(1, vec![])).await.unwrap();
    let addr = lab.servers()[0].https_addr;
    let tls = tls_trusting(lab.ca_pem().as_bytes());
    let connect = || {
        let tls = tls.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("ex01.lab.example.test").unwrap();
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .unwrap();
            let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
            (RawConn::new(stream, addr.to_string()), leaf)
        }
    };

    for right in [false, true] {
        let (mut conn, leaf) = connect().await;
        let bindings = if right {
            ntlm::channel_bindings_hash(&leaf)
        } else {
            [0x5a; 16]
        };
        let mut ctx = ntlm::ClientContext::new("revoke-admin", "LAB", LAB_DEFAULT_PASSWORD);
        let (status, challenge, _) = conn.negotiate(&ctx.negotiate()).await;
        assert_eq!(status, 401);
        let (authenticate, _) = ctx
            .authenticate(&challenge.unwrap(), Some(bindings))
            .unwrap();
        let (status, _, _) = conn.negotiate(&authenticate).await;
        if !right {
            assert_eq!(status, 401, "wrong channel bindings accepted");
            continue;
        }
        assert_eq!(status, 200);
        let (status, _, body) = conn
            .post(
                &[("Content-Type", "application/soap+xml;charset=UTF-8")],
                soap(CREATE, None, SHELL_BODY).as_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("<rsp:ShellId>"));
    }
    lab.shutdown().await;
}
