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

fn draft(args: &[&str]) -> anyhow::Result<Option<rapport_engine::Draft>> {
    let cli = Cli::try_parse_from(std::iter::once("rapport").chain(args.iter().copied())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    outgoing::outgoing(dir.path(), &cli.command)
}

/// The commands build the typed request the daemon reads back: the same draft on both sides.
#[test]
fn commands_build_typed_drafts() {
    let to = "ab".repeat(32);
    let offer = draft(&["offer", "--to", &to, "--title", "Tyres", "--amount", "8900", "--model", "per-usage"])
        .unwrap()
        .expect("an offer is a message");
    assert_eq!(offer.to, rapport_protocol::KeyId::from_hex(&to));
    let rapport_protocol::Body::Offer(o) = &offer.body else { panic!("{offer:?}") };
    assert_eq!((o.title.as_str(), o.price.amount.minor_units), ("Tyres", 8900));
    assert_eq!(o.price.model, rapport_protocol::PriceModel::PerUsage);
    let json = serde_json::to_vec(&offer).unwrap();
    let back = crate::api::requests::parse::<crate::api::SendRequest>(&json).unwrap().check("offer").unwrap();
    assert_eq!(back, offer);

    let rel = "cd".repeat(16);
    let terms = serde_json::to_string(&describe::example_terms()).unwrap();
    let proposal =
        draft(&["terms", "propose", "--rel", &rel, "--role", "customer", "--terms", &terms]).unwrap().unwrap();
    assert_eq!(proposal.kind(), rapport_protocol::Kind::TermsProposal);
    assert!(draft(&["status"]).unwrap().is_none(), "status sends nothing");
}

/// A bad argument fails in the CLI with its reason, before the daemon is asked.
#[test]
fn bad_arguments_fail_before_the_daemon() {
    let rel = "cd".repeat(16);
    let cases: [(&[&str], &str); 5] = [
        (&["countersign", "xyz", &"00".repeat(32)], "32-digit hex relationship id"),
        (&["countersign", &rel, "00"], "report \"00\" is not a 64-digit hex message id"),
        (&["terms", "propose", "--rel", &rel, "--role", "boss", "--terms", "{}"], "role \"boss\""),
        (&["consent", "grant", &rel, "--purpose", "nope", "--category", "pd:Location"], "purpose \"nope\""),
        (&["separate", &rel, "--body", r#"{"effective": 1, "effective": 2}"#], "duplicate key"),
    ];
    for (args, reason) in cases {
        let e = draft(args).expect_err("refused");
        assert!(format!("{e:#}").contains(reason), "{args:?}: {e:#}");
    }
}
