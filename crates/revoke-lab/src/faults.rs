//! Faults a lab server can be given, and what each changes. A fault only
//! ever touches the server it names.

use std::time::Duration;

use serde::Deserialize;

use super::iis::IisSimConfig;
use revoke_core::iis::PoolState;

/// `[[fault]] server = "EX03" kind = "..."` in the lab's TOML.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultSpec {
    pub server: String,
    #[serde(flatten)]
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// Nothing listens on its ports: connection refused.
    RefuseConnections,
    /// Accepts TCP, reads, never answers.
    NeverAnswer,
    /// Extra latency on every response of that server.
    Slow { latency_ms: u64 },
    /// Every authentication fails with 401.
    RejectCredentials,
    /// Shell Create answers a WS-Management fault (quota exceeded).
    SoapFault,
    /// Recycling that pool fails (access denied, exit 5).
    CommandFails { pool: String },
    /// The pool does not exist on that server.
    PoolAbsent { pool: String },
    /// The pool exists but is stopped.
    PoolStopped { pool: String },
    // Hostile answers, as anyone on the path of plain HTTP could give them
    // (docs/security.md, "Transport hardening"):
    /// The answer to the first Receive is a 200 whose body streams far past
    /// any WinRM answer (512 MiB, never held in memory by the lab).
    HugeResponse,
    /// Every command line keeps printing and never exits.
    EndlessOutput,
    /// The first command that changes something (a recycle or iisreset
    /// line) is run, then answered with a 401, as if authentication had failed.
    #[serde(rename = "reply-401-after-command")]
    Reply401AfterCommand,
    /// On a sealed session, the first Receive is answered with an unsealed,
    /// empty 200 (and not acted on).
    #[serde(rename = "unsealed-200")]
    Unsealed200,
    /// The answer to the first Signal is sealed with a broken signature.
    BadSignature,
    /// NTLM: the CHALLENGE never grants sealing (NTLMSSP_NEGOTIATE_SEAL).
    WithholdSealing,
    /// The first command that changes something is run, then never answered
    /// (the client's per-server timeout ends the wait).
    SilentAfterCommand,
    /// Kerberos: accepts the ticket but leaves the AP-REP out of its 200,
    /// as a server that does not hold the service's key would have to.
    #[serde(rename = "withhold-ap-rep")]
    WithholdApRep,
}

/// The faults of one server, folded into what the server code asks.
#[derive(Debug, Clone, Default)]
pub struct ServerFaults {
    pub refuse_connections: bool,
    pub never_answer: bool,
    pub extra_latency: Duration,
    pub reject_credentials: bool,
    pub shell_quota_fault: bool,
    pub huge_response: bool,
    pub endless_output: bool,
    pub reply_401_after_command: bool,
    pub unsealed_200: bool,
    pub bad_signature: bool,
    pub withhold_ap_rep: bool,
    pub silent_after_command: bool,
    pub withhold_sealing: bool,
    failing_pools: Vec<String>,
    absent_pools: Vec<String>,
    stopped_pools: Vec<String>,
}

impl ServerFaults {
    pub fn for_server(name: &str, specs: &[FaultSpec]) -> Self {
        let mut f = ServerFaults::default();
        for spec in specs.iter().filter(|s| s.server.eq_ignore_ascii_case(name)) {
            match &spec.fault {
                Fault::RefuseConnections => f.refuse_connections = true,
                Fault::NeverAnswer => f.never_answer = true,
                Fault::Slow { latency_ms } => f.extra_latency += Duration::from_millis(*latency_ms),
                Fault::RejectCredentials => f.reject_credentials = true,
                Fault::SoapFault => f.shell_quota_fault = true,
                Fault::CommandFails { pool } => f.failing_pools.push(pool.clone()),
                Fault::PoolAbsent { pool } => f.absent_pools.push(pool.clone()),
                Fault::PoolStopped { pool } => f.stopped_pools.push(pool.clone()),
                Fault::HugeResponse => f.huge_response = true,
                Fault::EndlessOutput => f.endless_output = true,
                Fault::Reply401AfterCommand => f.reply_401_after_command = true,
                Fault::Unsealed200 => f.unsealed_200 = true,
                Fault::BadSignature => f.bad_signature = true,
                Fault::WithholdApRep => f.withhold_ap_rep = true,
                Fault::SilentAfterCommand => f.silent_after_command = true,
                Fault::WithholdSealing => f.withhold_sealing = true,
            }
        }
        f
    }

    /// Pool faults live in the simulated IIS, like the real condition would.
    pub fn apply_to_iis(&self, config: &mut IisSimConfig) {
        config
            .failing_pools
            .extend(self.failing_pools.iter().cloned());
        config.pools.retain(|(name, _)| {
            !self
                .absent_pools
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name))
        });
        for (name, state) in &mut config.pools {
            if self
                .stopped_pools
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name))
            {
                *state = PoolState::Stopped;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(server: &str, fault: Fault) -> FaultSpec {
        FaultSpec {
            server: server.into(),
            fault,
        }
    }

    #[test]
    fn only_the_named_server_is_affected() {
        let specs = vec![
            spec("EX02", Fault::RejectCredentials),
            spec("ex02", Fault::Slow { latency_ms: 30 }),
            spec("EX03", Fault::NeverAnswer),
        ];
        let ex02 = ServerFaults::for_server("EX02", &specs);
        assert!(ex02.reject_credentials && !ex02.never_answer);
        assert_eq!(ex02.extra_latency, Duration::from_millis(30));
        let ex01 = ServerFaults::for_server("EX01", &specs);
        assert!(!ex01.reject_credentials && !ex01.never_answer);
        assert_eq!(ex01.extra_latency, Duration::ZERO);
    }

    #[test]
    fn hostile_fault_kinds_read_from_toml() {
        #[derive(Deserialize)]
        struct Doc {
            fault: Vec<FaultSpec>,
        }
        let doc: Doc = toml::from_str(
            r#"
            [[fault]]
            server = "EX01"
            kind = "huge-response"
            [[fault]]
            server = "EX01"
            kind = "endless-output"
            [[fault]]
            server = "EX01"
            kind = "reply-401-after-command"
            [[fault]]
            server = "EX01"
            kind = "unsealed-200"
            [[fault]]
            server = "EX01"
            kind = "bad-signature"
            "#,
        )
        .unwrap();
        let f = ServerFaults::for_server("EX01", &doc.fault);
        assert!(
            f.huge_response
                && f.endless_output
                && f.reply_401_after_command
                && f.unsealed_200
                && f.bad_signature
        );
    }

    #[test]
    fn pool_faults_change_the_iis_config() {
        let specs = vec![
            spec("EX01", Fault::PoolAbsent { pool: "B".into() }),
            spec("EX01", Fault::PoolStopped { pool: "C".into() }),
            spec("EX01", Fault::CommandFails { pool: "A".into() }),
        ];
        let mut config = IisSimConfig {
            hostname: "EX01".into(),
            pools: vec![
                ("A".into(), PoolState::Started),
                ("B".into(), PoolState::Started),
                ("C".into(), PoolState::Started),
            ],
            recycle_time: Duration::ZERO,
            drain_time: Duration::ZERO,
            iisreset_downtime: Duration::ZERO,
            failing_pools: vec![],
            exit_when_idle: false,
        };
        ServerFaults::for_server("EX01", &specs).apply_to_iis(&mut config);
        assert_eq!(
            config.pools,
            vec![
                ("A".into(), PoolState::Started),
                ("C".into(), PoolState::Stopped)
            ]
        );
        assert_eq!(config.failing_pools, vec!["A".to_string()]);
    }
}
