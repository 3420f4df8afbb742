//! `--generate man | completions SHELL | unit system|user`: packaging files produced from the
//! binary itself, so the man page and completions always match the flags (one source of truth:
//! the clap [`Cli`](crate::cli::Cli)) and the units match [`crate::install::service`]. `debian/rules` and
//! `rpm/ftagent.spec` call this; nothing here reads or writes files.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::install::service::{self, UnitKind};

const USAGE: &str =
    "--generate takes `man`, `completions SHELL` (bash, zsh, fish, elvish, powershell) or `unit system|user`";

/// Write the requested file to `out`.
pub fn generate(what: &[String], out: &mut dyn Write) -> Result<()> {
    let args: Vec<&str> = what.iter().map(String::as_str).collect();
    let io = |e: std::io::Error| Error::Terminal { what: "cannot write the generated file", source: e };
    match args.as_slice() {
        ["man"] => clap_mangen::Man::new(Cli::command()).render(out).map_err(io),
        ["completions", shell] => {
            let shell: Shell = shell.parse().map_err(|_| Error::Usage(format!("unknown shell `{shell}`; {USAGE}")))?;
            // clap_complete panics on a write error (e.g. `| head`); render to memory first.
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ftagent", &mut buf);
            out.write_all(&buf).map_err(io)
        }
        ["unit", kind] => {
            let kind = UnitKind::parse(kind)?;
            out.write_all(service::unit_text(kind, Path::new(service::PACKAGED_EXE)).as_bytes()).map_err(io)
        }
        _ => Err(Error::Usage(USAGE.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(args: &[&str]) -> Result<String> {
        let mut out = Vec::new();
        generate(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn man_page_documents_every_flag() {
        let man = gen(&["man"]).unwrap();
        assert!(man.starts_with(".ie") || man.contains(".TH ftagent"), "{}", &man[..80.min(man.len())]);
        for flag in ["setup", "install\\-service", "no\\-update\\-check", "limited", "generate"] {
            assert!(man.contains(flag), "man page lacks {flag}");
        }
    }

    #[test]
    fn man_page_documents_the_operator_interfaces() {
        let man = gen(&["man"]).unwrap();
        for text in
            ["\\-\\-status", "\\-\\-top", "status.json", "metrics_listen", "webhook_format", "pagerduty_routing_key"]
        {
            assert!(man.contains(text), "man page lacks {text}");
        }
        assert!(
            man.contains("X\\-Ftagent\\-Signature") && man.contains("SIGHUP") && man.contains("3 no agent running")
        );
    }

    /// Regression: clap_complete panicked when stdout was closed (`--generate completions bash | head`).
    #[test]
    fn a_closed_output_is_an_error_not_a_panic() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let what = vec!["completions".to_string(), "bash".to_string()];
        let err = generate(&what, &mut Closed).unwrap_err();
        assert!(err.to_string().contains("cannot write"), "{err}");
    }

    #[test]
    fn completions_for_each_shell() {
        assert!(gen(&["completions", "bash"]).unwrap().contains("--install-service"));
        assert!(gen(&["completions", "zsh"]).unwrap().contains("#compdef ftagent"));
        assert!(gen(&["completions", "fish"]).unwrap().contains("complete -c ftagent"));
    }

    #[test]
    fn units_point_at_the_packaged_binary() {
        assert!(gen(&["unit", "system"]).unwrap().contains("ExecStart=/usr/bin/ftagent --config"));
        assert!(gen(&["unit", "user"]).unwrap().contains("ExecStart=/usr/bin/ftagent --limited"));
    }

    #[test]
    fn bad_requests_are_usage_errors_naming_the_choices() {
        for args in [&["completions", "tcsh"][..], &["unit", "both"], &["manpage"], &["unit"]] {
            match gen(args) {
                Err(Error::Usage(msg)) => assert!(msg.contains("system") || msg.contains("shell"), "{msg}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }
}
