//! The command line's own tests: help texts, the example terms.

use clap::CommandFactory as _;

use super::*;
use serde_json::json;

/// Every `§N` a help text cites, with the command it belongs to (`terms propose`).
fn citations(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
    let mut texts: Vec<String> =
        [cmd.get_about(), cmd.get_long_about()].into_iter().flatten().map(|t| t.to_string()).collect();
    for arg in cmd.get_arguments() {
        texts.extend([arg.get_help(), arg.get_long_help()].into_iter().flatten().map(|t| t.to_string()));
    }
    for text in texts {
        for (i, _) in text.match_indices("spec §") {
            let rest = &text[i + "spec §".len()..];
            let n: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            out.push((path.trim().to_owned(), n.trim_end_matches('.').to_owned()));
        }
    }
    for sub in cmd.get_subcommands() {
        citations(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

/// `terms propose --example` prints terms that the checks of `POST /v1/send` accept.
#[test]
fn the_example_terms_are_valid() {
    let req = crate::api::SendRequest {
        relationship: None,
        to: Some("11".repeat(32)),
        body: json!({ "role": "customer", "terms": describe::example_terms() }),
    };
    req.check("terms_proposal").unwrap();
    let parsed = Cli::try_parse_from(["rapport", "terms", "propose", "--example"]).unwrap();
    assert!(matches!(parsed.command, Command::Terms { action: TermsAction::Propose { example: true, .. } }));
    assert!(Cli::try_parse_from(["rapport", "terms", "propose", "--rel", "ab"]).is_err(), "terms are required");
}

/// `rapport --help` once cited §5.12–§5.14 for the commands of §5.10–§5.12. Each command's
/// citation must name a heading of spec/protocol.md that is about that command.
#[test]
fn every_section_a_help_text_cites_exists_and_is_about_its_command() {
    let spec = include_str!("../../../spec/protocol.md");
    // What the cited heading must say, per command.
    let about = [
        ("introduce", "`introduction`"),
        ("separate", "`separation_notice`"),
        ("dispose", "`disposition_statement`"),
        ("share", "`data_share`"),
        ("send", "Message kinds"),
        ("terms propose", "`terms_proposal`"),
    ];
    let mut cited = Vec::new();
    citations(&Cli::command(), "", &mut cited);
    assert!(cited.len() >= about.len(), "{cited:?}");
    for (command, section) in &cited {
        let heading = spec
            .lines()
            .find(|l| l.starts_with('#') && l.trim_start_matches('#').starts_with(&format!(" {section} ")))
            .unwrap_or_else(|| panic!("`rapport {command}` cites §{section}, which spec/protocol.md lacks"));
        let (_, must) = about
            .iter()
            .find(|(c, _)| c == command)
            .unwrap_or_else(|| panic!("`rapport {command}` cites §{section}: add what it must be about here"));
        assert!(heading.contains(must), "`rapport {command}` cites {heading:?}, not about {must}");
    }
}
