//! The simulated IIS driven the way a WinRM client drives it: command lines
//! in, Windows' output text and exit codes out (appcmd, iisreset, hostname,
//! cmd.exe's own errors), parsed back with `revoke_core::iis`.

use std::time::Duration;

use revoke_core::iis::{self, PoolState};
use tokio::time::Instant;

use super::fixtures::*;
use super::{CommandResult, IisSim, IisSimConfig};

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
