//! Messages in plain words for the CLI's text output: amounts with their currency, dates,
//! durations, and a one-line summary of each kind's body, from the JSON the API gives
//! (`GET /v1/relationships/{id}/log`, `GET /v1/public`). `--json` prints the JSON itself.

use serde_json::{json, Value};

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// Decimal places of an ISO 4217 currency's minor unit: 2 for most, 0 or 3 for a few.
fn exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `{"currency": "EUR", "minor_units": 2150}` as `21.50 EUR`.
pub(super) fn money(v: &Value) -> String {
    let currency = s(v, "currency");
    let Some(units) = v["minor_units"].as_u64() else { return String::new() };
    match exponent(currency) {
        0 => format!("{units} {currency}"),
        e => {
            let scale = 10u64.pow(e);
            format!("{}.{:0width$} {currency}", units / scale, units % scale, width = e as usize)
        }
    }
}

/// A price in words: `0.21 EUR per kWh delivered`, `89.00 EUR upfront`.
pub(super) fn price(v: &Value) -> String {
    let amount = money(&v["amount"]);
    let metric = s(v, "metric");
    let mut out = match s(v, "model") {
        "upfront" => format!("{amount} upfront"),
        "subscription" => format!("{amount} a period"),
        "per_usage" | "per_impact" if !metric.is_empty() => format!("{amount} per {metric}"),
        other => format!("{amount} {}", other.replace('_', " ")),
    };
    if let Some(threshold) = v["threshold"].as_u64() {
        out.push_str(&format!(" (threshold {threshold})"));
    }
    out
}

/// Days since 1970-01-01 as (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Unix ms as `2026-01-31`.
pub(super) fn date(ms: u64) -> String {
    let (y, m, d) = civil((ms / 86_400_000) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix ms as `2026-01-31 14:05 UTC`.
pub(super) fn datetime(ms: u64) -> String {
    let minutes = (ms / 60_000) % 1440;
    format!("{} {:02}:{:02} UTC", date(ms), minutes / 60, minutes % 60)
}

/// Seconds as `1 year`, `30 days`, `6 hours`.
pub(super) fn duration(secs: u64) -> String {
    let plural = |n: u64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    const DAY: u64 = 86_400;
    match secs {
        0 => "none".into(),
        s if s % (365 * DAY) == 0 => plural(s / (365 * DAY), "year"),
        s if s % DAY == 0 => plural(s / DAY, "day"),
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

/// Terms in one line: price, duration, renewal, notice.
pub(super) fn terms(t: &Value) -> String {
    let mut out = format!("{}, for {}", price(&t["price"]), duration(t["duration"].as_u64().unwrap_or(0)));
    match s(t, "renewal") {
        "" => {}
        r => out.push_str(&format!(", renewal {}", r.replace('_', " "))),
    }
    if let Some(n) = t["notice_period"].as_u64() {
        out.push_str(&format!(", notice {}", duration(n)));
    }
    out
}

fn list(v: &Value) -> String {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

fn short(id: &str) -> &str {
    &id[..id.len().min(16)]
}

/// One line about a message of `kind` with `body`.
pub(super) fn summary(kind: &str, b: &Value) -> String {
    match kind {
        "offer" => {
            let mut out = format!("\u{201c}{}\u{201d}, {}", s(b, "title"), price(&b["price"]));
            if b["terms"].is_object() {
                out.push_str(&format!("; terms: {}", terms(&b["terms"])));
            }
            out
        }
        "intent" => {
            let mut out = format!("\u{201c}{}\u{201d}", s(b, "title"));
            if b["budget"].is_object() {
                out.push_str(&format!(", budget {}", money(&b["budget"])));
            }
            if let Some(tags) = b["tags"].as_array().filter(|t| !t.is_empty()) {
                out.push_str(&format!(" [{}]", list(&Value::Array(tags.clone()))));
            }
            out
        }
        "terms_proposal" => format!("{} proposes {}", s(b, "role"), terms(&b["terms"])),
        "terms_acceptance" => format!("accepts proposal {}", short(s(b, "proposal"))),
        "terms_rejection" => {
            let mut out = format!("rejects proposal {}", short(s(b, "proposal")));
            if !s(b, "reason").is_empty() {
                out.push_str(&format!(": {}", s(b, "reason")));
            }
            if b["counter"].is_object() {
                out.push_str(&format!("; counter-proposal {}", terms(&b["counter"])));
            }
            out
        }
        "consent_grant" => {
            let mut out = format!("consents to {} over {}", list(&b["purposes"]), list(&b["categories"]));
            if b["third_party_sharing"] == true {
                out.push_str(", third parties included");
            }
            if let Some(r) = b["retention"].as_u64() {
                out.push_str(&format!(", kept {}", duration(r)));
            }
            if let Some(e) = b["expires"].as_u64() {
                out.push_str(&format!(", until {}", date(e)));
            }
            out
        }
        "consent_revocation" => {
            let mut out = format!("revokes consent {}", short(s(b, "grant")));
            if !s(b, "reason").is_empty() {
                out.push_str(&format!(": {}", s(b, "reason")));
            }
            out
        }
        "usage_report" | "impact_report" => {
            let span = match (b["start"].as_u64(), b["end"].as_u64()) {
                (Some(a), Some(z)) => format!(", {} to {}", date(a), date(z)),
                _ => String::new(),
            };
            format!("{} {} {}{span}", s(b, "metric"), b["value"], s(b, "unit"))
        }
        "countersignature" => format!("countersigns report {}", short(s(b, "report"))),
        "data_share" => {
            let purpose = if s(b, "purpose").is_empty() { String::new() } else { format!(" for {}", s(b, "purpose")) };
            format!(
                "{}: {} bytes of {} ({}){purpose}",
                s(b, "content"),
                b["size"],
                list(&b["categories"]),
                s(b, "media_type")
            )
        }
        "introduction" => {
            let commission = match s(&b["commission"], "basis") {
                "percent" => {
                    let bp = b["commission"]["basis_points"].as_u64().unwrap_or(0);
                    format!(", commission {}.{:02} %", bp / 100, bp % 100)
                }
                "fixed" => format!(", commission {}", money(&b["commission"]["amount"])),
                "none" | "" => ", no commission".into(),
                other => format!(", commission {other}"),
            };
            format!("introduces {}: {}{commission}", s(&b["party"], "name"), s(b, "offering"))
        }
        "separation_notice" => {
            let steps: Vec<String> = b["disposition"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| format!("{} {}", s(d, "action").replace('_', " "), s(d, "category")))
                .collect();
            let effective = b["effective"].as_u64().map(date).unwrap_or_default();
            format!("notice of separation, effective {effective}: {}", steps.join("; "))
        }
        "disposition_statement" => {
            let items: Vec<String> = b["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| {
                    let mut out = format!("{} {}", s(i, "category"), s(i, "outcome").replace('_', " "));
                    if let Some(until) = i["until"].as_u64() {
                        out.push_str(&format!(" until {}", date(until)));
                    }
                    out
                })
                .collect();
            format!("states: {}", items.join("; "))
        }
        "closure_receipt" => format!("confirms statement {}; closed", short(s(b, "statement"))),
        "receipt" => format!("receipt for {}", short(s(b, "message"))),
        "problem_report" => format!("refused {} ({}): {}", short(s(b, "message")), s(b, "code"), s(b, "text")),
        _ => String::new(),
    }
}

/// The status lines about a damaged store, if it is.
pub(super) fn damage(v: &Value) -> String {
    let mut out = String::new();
    for d in v["damage"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\ndamage         {} bytes at offset {}, skipped; naming relationships: {} (stop the node and run `rapport repair`)",
            d["len"],
            d["offset"],
            d["relationships"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()
        ));
    }
    for d in v["damaged"].as_array().into_iter().flatten() {
        out.push_str(&format!("\nset aside      relationship {}: {}", s(d, "relationship"), s(d, "detail")));
    }
    out
}

/// A terms document (spec §5.3) that `terms propose` accepts as it is: a year at 0.21 EUR per
/// kWh, renewed only if both agree, a month's notice, location data for the service itself,
/// the customer's data back within 30 days of notice and deleted within 60.
pub(super) fn example_terms() -> Value {
    json!({
        "duration": 31_536_000,
        "renewal": "opt_in",
        "notice_period": 2_592_000,
        "price": { "model": "per_usage", "amount": { "currency": "EUR", "minor_units": 21 }, "metric": "kWh" },
        "data": { "purposes": ["dpv:ServiceProvision"], "categories": ["pd:Location"] },
        "portability": { "format": "application/json", "deadline": 2_592_000 },
        "deletion_deadline": 5_184_000,
        "exit_fee": { "currency": "EUR", "minor_units": 0 }
    })
}

/// One entry of a relationship's log in plain words: `seq`, time, kind and what it says, then
/// its id and sender.
pub(super) fn timeline_entry(m: &Value) -> String {
    let seq = match m["seq"].as_u64() {
        Some(0) | None => "  ·".to_owned(),
        Some(n) => format!("{n:>3}"),
    };
    format!(
        "{seq}  {}  {:<21} {}\n     id {}  from {:.16}",
        datetime(m["created_at"].as_u64().unwrap_or(0)),
        s(m, "kind"),
        summary(s(m, "kind"), &m["body"]),
        s(m, "id"),
        s(m, "from")
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn amounts_dates_and_durations_read_as_people_write_them() {
        assert_eq!(money(&json!({"currency": "EUR", "minor_units": 2150})), "21.50 EUR");
        assert_eq!(money(&json!({"currency": "EUR", "minor_units": 21})), "0.21 EUR");
        assert_eq!(money(&json!({"currency": "JPY", "minor_units": 500})), "500 JPY");
        assert_eq!(money(&json!({"currency": "KWD", "minor_units": 1005})), "1.005 KWD");
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_769_904_000_000), "2026-02-01");
        assert_eq!(datetime(951_782_400_000 + 13 * 3_600_000 + 5 * 60_000), "2000-02-29 13:05 UTC");
        assert_eq!(duration(31_536_000), "1 year");
        assert_eq!(duration(2_592_000), "30 days");
        assert_eq!(duration(86_400), "1 day");
        assert_eq!(duration(90), "90 seconds");
    }

    /// Each kind of the spec's vectors, as the CLI prints it.
    #[test]
    fn every_kind_of_the_vectors_reads_in_plain_words() {
        let golden = [
            ("offer", "\u{201c}Rooftop solar lease\u{201d}, 0.21 EUR per kWh delivered; terms: 0.21 EUR per kWh delivered, for 1 year, renewal opt in, notice 30 days"),
            ("intent", "\u{201c}Solar panels for a terraced house\u{201d}, budget 4000.00 EUR [solar, energy, lease]"),
            ("terms_proposal", "customer proposes 0.18 EUR per kWh delivered, for 1 year, renewal opt in, notice 30 days"),
            ("consent_grant", "consents to dpv:ServiceProvision, dpv:ServiceOptimisation over pd:Location, https://solar.example/vocab/PanelTelemetry, kept 1 year, until 2027-02-05"),
            ("usage_report", "energy delivered 412 kWh, 2026-01-02 to 2026-02-01"),
            ("introduction", "introduces Northwind Roofing: A roof inspection before the panels go up, commission 5.00 %"),
            ("separation_notice", "notice of separation, effective 2026-01-31: return and delete pd:Location; delete https://solar.example/vocab/PanelTelemetry"),
            ("disposition_statement", "states: pd:Location returned and deleted; https://solar.example/vocab/PanelTelemetry retained until 2028-01-01"),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors/kinds");
        let mut seen = std::collections::HashSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
            let bytes = hex::decode(v["cose_hex"].as_str().unwrap()).unwrap();
            let m = rapport_protocol::Message::open(&bytes).unwrap();
            let kind = m.kind().as_str();
            let line = summary(kind, &serde_json::to_value(m.body()).unwrap());
            assert!(!line.is_empty() && !line.contains("null"), "{kind}: {line:?}");
            if let Some((_, want)) = golden.iter().find(|(k, _)| *k == kind) {
                if m.header().relationship.is_some() || kind != "offer" {
                    assert_eq!(line, *want, "{kind}");
                }
            }
            seen.insert(kind);
        }
        assert!(seen.len() >= 17, "{seen:?}");
    }
}
