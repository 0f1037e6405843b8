//! The simulated IIS driven the way a WinRM client drives it: command lines
//! in, Windows' output text and exit codes out (appcmd, iisreset, hostname,
//! cmd.exe's own errors), parsed back with `revoke_core::iis`.

use std::time::Duration;

use revoke_core::iis::{self, PoolState};
use tokio::time::Instant;

use super::fixtures::*;
use super::{Captured, CommandResult, Console, IisSim, IisSimConfig};

#[tokio::test]
async fn env_expansion_variants_reach_appcmd() {
    let sim = sim();
    for program in [
        r"%windir%\system32\inetsrv\appcmd.exe",
        r"%WINDIR%\System32\inetsrv\appcmd",
        r"%SystemRoot%\system32\inetsrv\appcmd.exe",
        r"C:\Windows\system32\inetsrv\appcmd.exe",
        r#""%windir%\system32\inetsrv\appcmd.exe""#,
    ] {
        let r = sim.execute(program, &s(&["list", "wp"])).await;
        assert_eq!(r.exit_code, 0, "{program}: {r:?}");
        assert!(r.stdout.starts_with("WP \""), "{program}: {r:?}");
    }
}

#[tokio::test]
async fn bare_appcmd_is_not_recognized() {
    let r = sim().execute("appcmd", &s(&["list", "wp"])).await;
    assert_eq!(
        r,
        CommandResult {
            stdout: String::new(),
            stderr: "'appcmd' is not recognized as an internal or external command,\r\n\
                     operable program or batch file.\r\n"
                .into(),
            exit_code: 1,
        }
    );
    let r = sim().execute("Get-WebAppPoolState", &[]).await;
    assert!(
        r.stderr
            .starts_with("'Get-WebAppPoolState' is not recognized")
    );
    // Unknown %VARS% stay as typed, like cmd.exe leaves them.
    let r = sim().execute("%NOPE%\\x.exe", &[]).await;
    assert!(
        r.stderr.starts_with("'%NOPE%\\x.exe' is not recognized"),
        "{r:?}"
    );
    assert_eq!(
        iis::error_message(&r.stdout, &r.stderr),
        "'%NOPE%\\x.exe' is not recognized as an internal or external command, operable program or batch file."
    );
}

#[tokio::test]
async fn hostname_prints_configured_name() {
    let sim = sim();
    for program in ["hostname", "HOSTNAME.EXE"] {
        let r = sim.execute(program, &[]).await;
        assert_eq!(r, CommandResult::ok("EX01\r\n".into()));
    }
    assert_eq!(run(&sim, &iis::hostname()).await.stdout.trim(), "EX01");
    let r = sim.execute("hostname", &s(&["NEW"])).await;
    assert_eq!(r.exit_code, 1);
    // %COMPUTERNAME% expands to the hostname, as cmd.exe does.
    let r = sim.execute("%COMPUTERNAME%", &[]).await;
    assert!(r.stderr.starts_with("'EX01' is not recognized"), "{r:?}");
}

#[tokio::test]
async fn list_apppool_round_trip() {
    let sim = sim();
    let r = run(&sim, &iis::list_apppools()).await;
    assert_eq!(r.exit_code, 0);
    assert!(r.stdout.starts_with(
        "APPPOOL \"MSExchangeSyncAppPool\" (MgdVersion:v4.0,MgdMode:Integrated,state:Started)\r\n"
    ));
    assert!(
        !r.stdout.replace("\r\n", "").contains('\n'),
        "only CRLF line ends"
    );
    let pools = iis::parse_apppools(&r.stdout);
    assert_eq!(pools.len(), 8);
    assert_eq!(pools[5].name, "DefaultAppPool");
    assert_eq!(pools[6].name, "My Pool");
    assert_eq!(pools[7].state, PoolState::Stopped);
    assert!(pools[..7].iter().all(|p| p.state == PoolState::Started));
}

#[tokio::test]
async fn list_apppool_by_identifier_and_state() {
    let sim = sim();
    let r = sim
        .execute(APPCMD, &s(&["list", "apppool", "\"my pool\""]))
        .await;
    assert_eq!(iis::parse_apppools(&r.stdout).len(), 1);
    let r = sim
        .execute(APPCMD, &s(&["list", "apppool", "/state:Stopped"]))
        .await;
    let pools = iis::parse_apppools(&r.stdout);
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].name, "StoppedPool");
    let r = sim.execute(APPCMD, &s(&["list", "apppool", "Nope"])).await;
    assert_eq!(r.exit_code, 1168);
}

#[tokio::test]
async fn list_wp_round_trip_initial_state() {
    let sim = sim();
    let r = run(&sim, &iis::list_workers()).await;
    assert_eq!(r.exit_code, 0);
    let workers = iis::parse_workers(&r.stdout);
    assert_eq!(workers, sim.workers());
    // One worker per started pool, none for the stopped one.
    assert_eq!(workers.len(), 7);
    assert!(iis::pids_of(&workers, "StoppedPool").is_empty());
    for w in &workers {
        assert_eq!(w.pid % 4, 0, "{w:?}");
        assert!((1000..100_000).contains(&w.pid), "{w:?}");
    }
    let mut pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 7, "PIDs are unique");
}

#[tokio::test]
async fn list_wp_with_no_workers_prints_nothing() {
    let mut config = IisSimConfig::exchange("EX02");
    for p in &mut config.pools {
        p.1 = PoolState::Stopped;
    }
    let sim = IisSim::new(config);
    let r = run(&sim, &iis::list_workers()).await;
    assert_eq!(r, CommandResult::ok(String::new()));
}

#[tokio::test]
async fn recycle_overlaps_then_drains() {
    let sim = sim_with(400, 60_000);
    let name = "MSExchangeSyncAppPool";
    let before = iis::pids_of(
        &iis::parse_workers(&run(&sim, &iis::list_workers()).await.stdout),
        name,
    );
    assert_eq!(before.len(), 1);

    let r = run(&sim, &iis::recycle(&pool(name))).await;
    assert_eq!(
        r,
        CommandResult::ok(format!("\"{name}\" successfully recycled\r\n"))
    );

    let during = iis::pids_of(
        &iis::parse_workers(&run(&sim, &iis::list_workers()).await.stdout),
        name,
    );
    assert_eq!(during.len(), 2, "old and new worker overlap: {during:?}");
    assert!(during.contains(&before[0]), "old worker still draining");
    let new_pid = *during.iter().find(|p| **p != before[0]).unwrap();
    assert!(new_pid > before[0]);
    assert_eq!(new_pid % 4, 0);

    tokio::time::sleep(Duration::from_millis(600)).await;
    // Liveness follows deadlines: no background task needed.
    assert_eq!(iis::pids_of(&sim.workers(), name), [new_pid]);
    let after = iis::pids_of(
        &iis::parse_workers(&run(&sim, &iis::list_workers()).await.stdout),
        name,
    );
    assert_eq!(after, [new_pid], "old worker gone after drain");
    // Other pools untouched.
    assert_eq!(sim.workers().len(), 7);
}

#[tokio::test]
async fn recycle_takes_recycle_time() {
    let mut config = IisSimConfig::exchange("EX01");
    config.recycle_time = Duration::from_millis(200);
    let sim = IisSim::new(config);
    let start = Instant::now();
    let r = run(&sim, &iis::recycle(&pool("MSExchangeOWAAppPool"))).await;
    assert_eq!(r.exit_code, 0);
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn recycle_accepts_quoted_unquoted_and_positional_forms() {
    let sim = sim();
    for args in [
        ["recycle", "apppool", "/apppool.name:\"My Pool\""].as_slice(),
        &["recycle", "apppool", "\"My Pool\""],
        &["RECYCLE", "APPPOOL", "/APPPOOL.NAME:\"my pool\""],
    ] {
        let r = sim.execute(APPCMD, &s(args)).await;
        assert_eq!(
            r,
            CommandResult::ok("\"My Pool\" successfully recycled\r\n".into()),
            "{args:?}"
        );
    }
    for args in [
        ["recycle", "apppool", "/apppool.name:MSExchangeSyncAppPool"].as_slice(),
        &["recycle", "apppool", "MSExchangeSyncAppPool"],
    ] {
        let r = sim.execute(APPCMD, &s(args)).await;
        assert_eq!(r.exit_code, 0, "{args:?}: {r:?}");
    }
    assert_eq!(iis::pids_of(&sim.workers(), "My Pool").len(), 4);
    // Unquoted, a space splits the name: appcmd sees two identifiers.
    let r = sim
        .execute(APPCMD, &s(&["recycle", "apppool", "My", "Pool"]))
        .await;
    assert_ne!(r.exit_code, 0);
}

#[tokio::test]
async fn recycle_unknown_pool_round_trip() {
    let sim = sim();
    let r = run(&sim, &iis::recycle(&pool("NoSuchPool"))).await;
    assert_eq!(r.exit_code, 1168);
    assert_eq!(
        r.stdout,
        "ERROR ( message:Cannot find APPPOOL object with identifier \"NoSuchPool\". )\r\n"
    );
    let msg = iis::error_message(&r.stdout, &r.stderr);
    assert!(msg.starts_with("Cannot find APPPOOL object"), "{msg}");
}

#[tokio::test]
async fn recycle_stopped_pool_fails_not_started() {
    let sim = sim();
    let r = run(&sim, &iis::recycle(&pool("StoppedPool"))).await;
    assert_eq!(r.exit_code, 1062);
    assert_eq!(
        r.stdout,
        "ERROR ( hresult:80070426, message:Command execution failed.\r\nThe service has not been started.\r\n )\r\n"
    );
    assert_eq!(
        iis::error_message(&r.stdout, &r.stderr),
        "Command execution failed. The service has not been started. (hresult 80070426)"
    );
    assert!(sim.workers().iter().all(|w| w.pool != "StoppedPool"));
}

#[tokio::test]
async fn recycle_failing_pool_is_access_denied() {
    let sim = sim();
    let before = sim.workers();
    let r = run(&sim, &iis::recycle(&pool("MSExchangeOWAAppPool"))).await;
    assert_eq!(r.exit_code, 5);
    assert_eq!(
        r.stdout,
        "ERROR ( hresult:80070005, message:Command execution failed.\r\nAccess is denied.\r\n )\r\n"
    );
    let msg = iis::error_message(&r.stdout, &r.stderr);
    assert!(msg.contains("Access is denied"), "{msg}");
    assert!(msg.contains("(hresult 80070005)"), "{msg}");
    assert_eq!(sim.workers(), before, "nothing recycled");
}

#[tokio::test]
async fn recycle_without_identifier_is_an_appcmd_error() {
    let sim = sim();
    for args in [
        ["recycle", "apppool"].as_slice(),
        &["recycle", "apppool", "/apppool.name:"],
        &["recycle", "apppool", "/apppool.name:\"\""],
    ] {
        let r = sim.execute(APPCMD, &s(args)).await;
        assert_eq!(r.exit_code, 1, "{args:?}");
        assert!(r.stdout.starts_with("ERROR ( message:"), "{r:?}");
        assert!(iis::error_message(&r.stdout, &r.stderr).contains("Must specify"));
    }
}

#[tokio::test]
async fn appcmd_unknown_verb_or_object_fails() {
    let sim = sim();
    for args in [
        [].as_slice(),
        &["list"],
        &["delete", "apppool", "X"],
        &["list", "site"],
    ] {
        let r = sim.execute(APPCMD, &s(args)).await;
        assert_eq!(r.exit_code, 1, "{args:?}");
        assert!(r.stdout.starts_with("ERROR ( message:"), "{r:?}");
    }
}

#[tokio::test]
async fn iisreset_status_when_running() {
    let sim = sim();
    let r = run(&sim, &iis::iisreset_status()).await;
    assert_eq!(
        r,
        CommandResult::ok(
            "Status for IIS Admin Service ( IISADMIN ) : Running\r\n\
             Status for Windows Process Activation Service ( WAS ) : Running\r\n\
             Status for World Wide Web Publishing Service ( W3SVC ) : Running\r\n"
                .into()
        )
    );
    assert!(iis::iis_running(&r.stdout));
    assert!(sim.iis_running());
}

#[tokio::test]
async fn iisreset_takes_iis_down_then_brings_fresh_workers() {
    // 2 s outage: "Stopped" for 1.5 s, then "Start Pending"; checks sit
    // well inside each phase so a loaded machine does not flake.
    let sim = sim_with(60_000, 2_000);
    let old: Vec<u32> = sim.workers().iter().map(|w| w.pid).collect();

    let start = Instant::now();
    let reset = tokio::spawn({
        let sim = sim.clone();
        async move { run(&sim, &iis::iisreset()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Early in the outage: everything stopped, no workers.
    let status = run(&sim, &iis::iisreset_status()).await;
    assert_eq!(status.exit_code, 0);
    assert!(status.stdout.contains("( W3SVC ) : Stopped"), "{status:?}");
    assert!(!iis::iis_running(&status.stdout));
    let wp = run(&sim, &iis::list_workers()).await;
    assert_eq!(wp, CommandResult::ok(String::new()));
    // Recycling while WAS is down fails.
    let r = run(&sim, &iis::recycle(&pool("MSExchangeSyncAppPool"))).await;
    assert_eq!(r.exit_code, 1062);

    // Late in the outage: Start Pending.
    tokio::time::sleep_until(start + Duration::from_millis(1_750)).await;
    let status = run(&sim, &iis::iisreset_status()).await;
    assert!(status.stdout.contains(": Start Pending"), "{status:?}");
    assert!(!iis::iis_running(&status.stdout));

    let r = reset.await.unwrap();
    assert_eq!(
        r,
        CommandResult::ok(
            "\r\nAttempting stop...\r\nInternet services successfully stopped\r\n\
             Attempting start...\r\nInternet services successfully restarted\r\n"
                .into()
        )
    );
    assert!(iis::iis_running(
        &run(&sim, &iis::iisreset_status()).await.stdout
    ));
    let workers = iis::parse_workers(&run(&sim, &iis::list_workers()).await.stdout);
    assert_eq!(workers.len(), 7, "one fresh worker per started pool");
    assert!(
        workers.iter().all(|w| !old.contains(&w.pid)),
        "all PIDs fresh"
    );
}

#[tokio::test]
async fn iisreset_takes_its_downtime_and_accepts_plain_form() {
    let sim = sim_with(60_000, 200);
    let start = Instant::now();
    let r = sim.execute("iisreset", &[]).await;
    assert_eq!(r.exit_code, 0);
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(
        r.stdout
            .ends_with("Internet services successfully restarted\r\n")
    );
    let r = sim
        .execute("iisreset.exe", &s(&["/NOFORCE", "/timeout:30"]))
        .await;
    assert_eq!(r.exit_code, 0);
    let r = sim.execute("iisreset", &s(&["/bogus"])).await;
    assert_eq!(r.exit_code, 1);
}

// ------------------------------------------------ cmd.exe command lines

/// A console that remembers what had been printed at each flush.
#[derive(Default)]
struct Flushes {
    captured: Captured,
    at_flush: Vec<String>,
}

impl Console for Flushes {
    fn stdout(&mut self, text: &str) {
        self.captured.stdout(text);
    }
    fn stderr(&mut self, text: &str) {
        self.captured.stderr(text);
    }
    fn flush(&mut self) {
        // Like the shell's console: a flush with nothing new changes nothing.
        if self.at_flush.last().map_or(0, String::len) < self.captured.stdout.len() {
            self.at_flush.push(self.captured.stdout.clone());
        }
    }
    fn started(&mut self, written: &str) -> usize {
        self.captured.started(written)
    }
    fn exited(&mut self, process: usize, exit_code: i32) {
        self.captured.exited(process, exit_code);
    }
}

async fn line(sim: &IisSim, line: &str) -> (Captured, i32) {
    let mut console = Captured::default();
    let code = sim.run_line(line, &mut console).await;
    (console, code)
}

fn failing_recycle() -> String {
    format!("{APPCMD} recycle apppool /apppool.name:\"Nope\"")
}

#[tokio::test]
async fn revokes_survey_line_reports_each_part() {
    let sim = sim();
    let survey = iis::survey();
    let (out, code) = line(&sim, &survey.command().program).await;
    assert_eq!(code, 0, "{out:?}");
    let parts = survey.finished(&out.stdout);
    assert_eq!(parts.len(), 3, "{out:?}");
    assert_eq!(parts[0].stdout, "EX01\r\n");
    assert_eq!(iis::parse_apppools(&parts[1].stdout).len(), 8);
    assert_eq!(iis::parse_workers(&parts[2].stdout), sim.workers());
    assert!(parts.iter().all(|p| p.exit_code == 0));
    // Three programs, logged as the line wrote them; echo and call start none.
    let started: Vec<&str> = out.started.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        started,
        [
            iis::hostname().command_line(),
            iis::list_apppools().command_line(),
            iis::list_workers().command_line(),
        ]
    );
    assert!(out.started.iter().all(|(_, code)| *code == Some(0)));
}

#[tokio::test]
async fn revokes_recycle_line_reports_every_pool_a_failure_hides_nothing() {
    let sim = sim();
    let names = [
        SYNC,
        "MSExchangeOWAAppPool",
        "Nope",
        "StoppedPool",
        "My Pool",
    ];
    let pools: Vec<_> = names.iter().map(|n| pool(n)).collect();
    let before = sim.workers();
    let batch = iis::recycle_pools(&pools);
    let (out, _) = line(&sim, &batch.command().program).await;
    let parts = batch.finished(&out.stdout);
    let codes: Vec<(&str, i32)> = parts
        .iter()
        .map(|p| (p.label.as_str(), p.exit_code))
        .collect();
    assert_eq!(
        codes,
        [
            ("recycle-1", 0),
            ("recycle-2", 5),
            ("recycle-3", 1168),
            ("recycle-4", 1062),
            ("recycle-5", 0),
            ("workers", 0)
        ],
        "{out:?}"
    );
    assert_eq!(
        parts[0].stdout,
        format!("\"{SYNC}\" successfully recycled\r\n")
    );
    assert!(
        iis::error_message(&parts[1].stdout, "").contains("Access is denied"),
        "{parts:?}"
    );
    assert!(
        iis::error_message(&parts[2].stdout, "").contains("Cannot find APPPOOL"),
        "{parts:?}"
    );
    // The listing at the end sees the new workers next to the draining ones.
    let after = iis::parse_workers(&parts[5].stdout);
    assert_eq!(iis::pids_of(&after, SYNC).len(), 2);
    assert_eq!(iis::pids_of(&after, "My Pool").len(), 2);
    assert_eq!(after.len(), before.len() + 2);
    // Each program logged once, as the single-pool command, with its exit code.
    let started: Vec<(String, Option<i32>)> = out.started;
    let mut expected: Vec<(String, Option<i32>)> = pools
        .iter()
        .zip([0, 5, 1168, 1062, 0])
        .map(|(p, code)| (iis::recycle(p).command_line(), Some(code)))
        .collect();
    expected.push((iis::list_workers().command_line(), Some(0)));
    assert_eq!(started, expected);
}

#[tokio::test]
async fn errorlevel_expands_with_the_line_unless_call_expands_it_again() {
    let sim = sim();
    let fail = failing_recycle();
    let last_line = |stdout: &str| stdout.lines().last().unwrap_or_default().to_owned();
    // Expanded when cmd.exe reads the line, before appcmd ran: still 0.
    let (out, _) = line(&sim, &format!("{fail} & echo %errorlevel%")).await;
    assert_eq!(last_line(&out.stdout), "0");
    // The caret hides it from that expansion, but nothing expands it later.
    let (out, _) = line(&sim, &format!("{fail} & echo %^errorlevel%")).await;
    assert_eq!(last_line(&out.stdout), "%errorlevel%");
    // Without the caret, call gets the value already expanded: 0.
    let (out, _) = line(&sim, &format!("{fail} & call echo %errorlevel%")).await;
    assert_eq!(last_line(&out.stdout), "0");
    // call expands it again when it runs: appcmd's exit code.
    let (out, _) = line(&sim, &format!("{fail} & call echo %^errorlevel%")).await;
    assert_eq!(last_line(&out.stdout), "1168");
    let (out, _) = line(
        &sim,
        &format!("{fail} & call echo a %^errorlevel% & hostname & call echo b %^ERRORLEVEL%"),
    )
    .await;
    assert_eq!(
        out.stdout,
        "ERROR ( message:Cannot find APPPOOL object with identifier \"Nope\". )\r\na 1168 \r\nEX01\r\nb 0\r\n"
    );
}

#[tokio::test]
async fn percent_signs_pair_like_cmd_on_a_command_line() {
    let sim = sim();
    for (echoed, printed) in [
        // An undefined name keeps its %; its closing % opens the next one.
        ("%a %windir% c%", r"%a C:\Windows c%"),
        ("%%windir%%", r"%C:\Windows%"),
        ("%nope%windir%", "%nopeC:\\Windows"),
        ("100%", "100%"),
        ("%windir:~0,2%", "C:"),
        ("%windir:~-7%", "Windows"),
        (r"%windir:\=/%", "C:/Windows"),
        ("%COMPUTERNAME:ex=XX%", "XX01"),
        ("%NOPE:~0,2%", "%NOPE:~0,2%"),
        // Carets escape outside quotes only.
        ("^&^^ \"a ^& b\"", "&^ \"a ^& b\""),
    ] {
        let (out, code) = line(&sim, &format!("echo {echoed}")).await;
        assert_eq!(out.stdout, format!("{printed}\r\n"), "echo {echoed}");
        assert_eq!(code, 0);
    }
    let (out, _) = line(&sim, "echo.").await;
    assert_eq!(out.stdout, "\r\n");
    let (out, _) = line(&sim, "echo").await;
    assert_eq!(out.stdout, "ECHO is on.\r\n");
    // Echo prints the spaces before the next operator too.
    let (out, _) = line(&sim, "echo x  & echo y").await;
    assert_eq!(out.stdout, "x  \r\ny\r\n");
}

#[tokio::test]
async fn and_and_or_run_on_success_or_failure() {
    let sim = sim();
    let fail = failing_recycle();
    let (out, code) = line(&sim, "hostname && echo yes || echo no").await;
    // "yes " with the space before `||`, as cmd.exe's echo prints it.
    assert_eq!((out.stdout.as_str(), code), ("EX01\r\nyes \r\n", 0));
    let (out, code) = line(&sim, &format!("{fail} && echo yes || echo no")).await;
    assert!(out.stdout.ends_with(")\r\nno\r\n"), "{out:?}");
    // echo leaves ERRORLEVEL alone: the line still ends with appcmd's code.
    assert_eq!(code, 1168);
    let (out, _) = line(&sim, &format!("{fail} && hostname & hostname")).await;
    assert_eq!(out.started.len(), 2, "{out:?}");
}

#[tokio::test]
async fn the_line_exits_with_the_last_commands_errorlevel() {
    let sim = sim();
    let fail = failing_recycle();
    assert_eq!(line(&sim, &format!("{fail} & hostname")).await.1, 0);
    assert_eq!(line(&sim, &format!("hostname & {fail}")).await.1, 1168);
    // An unknown program: ERRORLEVEL 9009 inside the line, but `cmd /c`
    // exits 1 when it was the last command.
    let (out, code) = line(&sim, "nope & call echo %^errorlevel%").await;
    assert_eq!((out.stdout.as_str(), code), ("9009\r\n", 9009));
    assert!(out.stderr.starts_with("'nope' is not recognized"));
    assert_eq!(line(&sim, "hostname & nope").await.1, 1);
    assert_eq!(line(&sim, "").await.1, 0);
}

#[tokio::test]
async fn pipes_redirections_and_blocks_are_refused_and_nothing_runs() {
    let sim = sim();
    for refused in [
        "hostname | findstr EX",
        "hostname > out.txt",
        "hostname 2>&1",
        "(hostname)",
        "hostname &",
        "& hostname",
        "hostname & & hostname",
    ] {
        let (out, code) = line(&sim, refused).await;
        assert_eq!(code, 1, "{refused}");
        assert!(out.stdout.is_empty(), "{refused}: {out:?}");
        assert!(
            out.stderr.contains("does not simulate"),
            "{refused}: {out:?}"
        );
        assert!(out.started.is_empty(), "{refused}");
    }
    // Inside quotes they are text.
    let (out, _) = line(&sim, "echo \"a | b > c\"").await;
    assert_eq!(out.stdout, "\"a | b > c\"\r\n");
}

#[tokio::test]
async fn output_becomes_readable_before_a_recycle_waits() {
    let mut config = IisSimConfig::exchange("EX01");
    config.recycle_time = Duration::from_millis(30);
    let sim = IisSim::new(config);
    let batch = iis::recycle_pools(&[pool(SYNC), pool("MSExchangeOWAAppPool")]);
    let mut console = Flushes::default();
    sim.run_line(&batch.command().program, &mut console).await;
    // Nothing printed before the first recycle; the first pool's result is
    // out before the second one waits.
    assert_eq!(console.at_flush.len(), 1, "{:?}", console.at_flush);
    let parts = batch.finished(&console.at_flush[0]);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].exit_code, 0);
    assert_eq!(batch.finished(&console.captured.stdout).len(), 3);
    // With no recycle time the line never waits, so it never flushes early.
    let mut console = Flushes::default();
    sim_with(0, 0)
        .run_line(&batch.command().program, &mut console)
        .await;
    assert!(console.at_flush.is_empty());
}
