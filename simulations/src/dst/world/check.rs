//! The checks at the end of a run, once the network has settled.

use std::collections::{BTreeMap, BTreeSet};

use rapport_node::store::Store as _;
use rapport_protocol::{Body, Code, MessageId, Phase, RelationshipId};

use super::super::workload::Action;
use super::World;

/// One party's stored record of one relationship.
struct Held {
    node: usize,
    chained: BTreeSet<MessageId>,
    receipts: BTreeSet<MessageId>,
    phase: Phase,
}

type Broken = (&'static str, String);

/// Durability, stored logs, views, convergence and completion; fills in the figures they
/// give.
pub(super) fn finish(w: &mut World) -> Result<(), Broken> {
    for node in 0..w.nodes.len() {
        w.check_durability(node);
        if let Some(v) = w.violation.take() {
            return Err((v.invariant, v.detail));
        }
    }
    let mut held: BTreeMap<RelationshipId, Vec<Held>> = BTreeMap::new();
    for (i, n) in w.nodes.iter().enumerate() {
        let store_err = |e: rapport_node::store::Error| ("store", format!("node {i}: {e}"));
        let reloaded =
            rapport_node::engine::load_relationships(&n.store).map_err(|e| ("restart", format!("node {i}: {e}")))?;
        let view = n.relationships().ok_or(("liveness", format!("node {i} is down at the end")))?;
        for rel in n.store.relationships().map_err(store_err)? {
            let bytes = n.store.relationship(&rel).map_err(store_err)?;
            let ids: BTreeSet<MessageId> = bytes.iter().map(|b| MessageId::of(b)).collect();
            if ids.len() != bytes.len() {
                return Err(("stored once", format!("node {i}, relationship {rel}: a message is stored twice")));
            }
            let verified = rapport_protocol::log::verify(&bytes)
                .map_err(|e| ("log", format!("node {i}, relationship {rel}: the stored log does not verify: {e}")))?;
            let ours = view.get(&rel).map(|r| (r.log().iter().map(|m| m.id()).collect::<Vec<_>>(), r.phase()));
            let replayed = reloaded.get(&rel).map(|r| (r.log().iter().map(|m| m.id()).collect::<Vec<_>>(), r.phase()));
            if ours != replayed {
                return Err((
                    "view",
                    format!("node {i}, relationship {rel}: its view differs from what a restart rebuilds"),
                ));
            }
            let r = &verified.relationship;
            let receipts = r
                .acknowledgements()
                .filter(|m| matches!(m.body(), Body::Receipt(_)))
                .map(|m| m.id())
                .collect::<BTreeSet<_>>();
            let chained = r.log().iter().map(|m| m.id()).collect();
            held.entry(rel).or_default().push(Held { node: i, chained, receipts, phase: r.phase() });
        }
    }
    let mut forked = BTreeSet::new();
    for (rel, parties) in &held {
        let window = parties.iter().any(|p| p.chained.iter().any(|id| w.lost_sent.contains(id)));
        let agree = parties.len() == 2 && parties[0].chained == parties[1].chained;
        if window && !agree {
            forked.insert(*rel);
            continue;
        }
        if !agree {
            let who: Vec<String> =
                parties.iter().map(|p| format!("node {} holds {}", p.node, p.chained.len())).collect();
            return Err(("convergence", format!("relationship {rel}: {}", who.join(", "))));
        }
        // A repeat is answered with the stored receipt (spec/node.md §3), so both parties
        // hold the same receipts.
        if parties[0].receipts != parties[1].receipts {
            w.figures.receipt_mismatches += 1;
            return Err((
                "receipts",
                format!(
                    "relationship {rel}: node {} holds {} receipts, node {} holds {}, not the same",
                    parties[0].node,
                    parties[0].receipts.len(),
                    parties[1].node,
                    parties[1].receipts.len()
                ),
            ));
        }
    }
    w.figures.forked_by_power_loss = forked.len() as u64;
    for (k, s) in w.scripts.iter().enumerate() {
        let Some(rel) = s.rel else { continue };
        let parties = held.get(&rel).map(Vec::as_slice).unwrap_or_default();
        if forked.contains(&rel) || parties.iter().any(|p| p.chained.iter().any(|id| w.lost_sent.contains(id))) {
            continue;
        }
        for (step, code) in &s.refused {
            let expected = matches!(
                (step, code),
                (Action::Insight, Code::ConsentRequired | Code::OutOfState) | (Action::Introduction, Code::OutOfState)
            );
            if !expected {
                return Err(("workload", format!("relationship {k}: its own node refused {step:?} with {code}")));
            }
        }
        let closed = parties.len() == 2 && parties.iter().all(|p| p.phase == Phase::Closed);
        if !closed || !s.done() {
            let phases: Vec<&str> = parties.iter().map(|p| p.phase.as_str()).collect();
            let d = format!(
                "relationship {k} ({rel}, vendor node {}, customer node {}) ended in phases {phases:?} after steps {}/{}, not closed",
                s.vendor, s.customer, s.cursors[0].next, s.cursors[1].next
            );
            return Err(("liveness", d));
        }
        w.figures.closed += 1;
    }
    Ok(())
}
