//! `revoke completions` and `revoke man`: generated from the parser's own
//! definitions, so each must know every command and flag revoke takes.

use crate::common::Revoke;

/// The bash script loads in bash and completes commands and flags.
#[tokio::test(flavor = "multi_thread")]
async fn the_bash_completion_loads_and_completes() {
    let run = Revoke::new(&["completions", "bash"]).run().await;
    run.assert_code(0);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("revoke.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    // What bash does on `revoke fl<TAB>` and `revoke flush --drain<TAB>`.
    let complete = |words: &str, index: usize| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {} && complete -p revoke >/dev/null && \
                 COMP_WORDS=({words}) && COMP_CWORD={index} && COMP_LINE='{words}' && \
                 COMP_POINT=${{#COMP_LINE}} && _revoke revoke && echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let commands = complete("revoke fl", 1);
    assert!(
        commands.split_whitespace().any(|w| w == "flush"),
        "{commands}"
    );
    let flags = complete("revoke flush --drain", 2);
    assert!(
        flags.split_whitespace().any(|w| w == "--drain-timeout"),
        "{flags}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = Revoke::new(&["completions", shell]).run().await;
        run.assert_code(0);
        assert!(
            run.stdout.contains("drain-timeout"),
            "{shell}: {}",
            run.stdout
        );
    }
    let run = Revoke::new(&["completions", "tcsh"]).run().await;
    run.assert_code(1);
    assert!(run.stderr.contains("tcsh"), "{}", run.stderr);
}

/// One page per command, each with that command's own flags.
#[tokio::test(flavor = "multi_thread")]
async fn man_pages_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let run = Revoke::new(&["man", out.to_str().unwrap()]).run().await;
    run.assert_code(0);
    let page = |name: &str| {
        std::fs::read_to_string(out.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"))
    };
    assert!(page("revoke").contains(".TH revoke 1"));
    for command in ["disable", "reset", "servers", "flush", "completions", "man"] {
        let text = page(&format!("revoke-{command}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{command}");
        assert!(
            text.contains(&format!("revoke {command}")),
            "{command}: {text}"
        );
    }
    assert!(page("revoke-flush").contains(r"\-\-drain\-timeout"));
    assert!(!page("revoke-servers").contains(r"\-\-drain\-timeout"));
}
