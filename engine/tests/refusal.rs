//! A message the recipient refuses for good ends its relationship for this node: the messages
//! chained behind it are given up instead of retried for ever, and a new one is refused
//! before it is signed. Driven through `State::handle` alone, as the daemon and the
//! simulation drive it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rapport_engine::{
    CommandId, Config, Draft, Error, Failure, Input, Loaded, Metrics, NodeId, Output, Relationships, RequestId, State,
    Submitted,
};
use rapport_protocol::{
    Body, Category, Code, DataTerms, Header, KeyId, Message, MessageId, Money, Offer, Payload, Portability, Price,
    PriceModel, ProblemReport, Purpose, RelationshipId, Renewal, Role, Terms, TermsProposal, Timestamp,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn id_of(key: &SigningKey) -> KeyId {
    KeyId::from_bytes(key.verifying_key().to_bytes())
}

fn price() -> Price {
    Price { model: PriceModel::PerUsage, amount: Money::new("EUR", 25), metric: Some("kWh".into()), threshold: None }
}

fn proposal() -> Body {
    let purpose = Purpose::new("dpv:ServiceProvision").expect("a registered purpose");
    let category = Category::new("pd:Location").expect("a registered category");
    Body::TermsProposal(TermsProposal {
        role: Role::Vendor,
        terms: Terms {
            duration: 365 * 86_400,
            renewal: Renewal::OptIn,
            notice_period: 1,
            price: price(),
            data: DataTerms { purposes: vec![purpose], categories: vec![category] },
            portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
            deletion_deadline: 60 * 86_400,
            exit_fee: Money::new("EUR", 0),
        },
    })
}

fn offer(title: &str) -> Body {
    Body::Offer(Offer {
        title: title.into(),
        description: "Green electricity, billed by the kWh".into(),
        price: price(),
        terms: None,
    })
}

/// A node, driven the way a driver with an always-successful store drives it.
struct Node {
    state: State,
    now: Timestamp,
    next_command: u64,
    /// Requests sent and not yet answered: request, peer, envelope.
    sent: Vec<(RequestId, NodeId, Arc<[u8]>)>,
    replies: Vec<(CommandId, Result<Submitted, Error>)>,
    delivered: Vec<MessageId>,
}

impl Node {
    fn new(key: SigningKey) -> Node {
        let loaded = Loaded { relationships: Relationships::new(), outbox: Vec::new(), blocked: Vec::new() };
        let state = State::new(key, Config::default(), loaded, Arc::new(Metrics::default()), 7);
        Node {
            state,
            now: 1_700_000_000_000,
            next_command: 0,
            sent: Vec::new(),
            replies: Vec::new(),
            delivered: Vec::new(),
        }
    }

    fn handle(&mut self, input: Input) {
        self.state.handle(input, self.now);
        self.run();
    }

    /// Carries out every output, answering writes and flushes at once, until nothing is left.
    fn run(&mut self) {
        loop {
            while let Some(output) = self.state.poll_output() {
                match output {
                    Output::Write(_) => self.state.handle(Input::Written(Ok(())), self.now),
                    Output::Flush { .. } => self.state.handle(Input::Flushed(Ok(())), self.now),
                    Output::Send { peer, request, bytes } => self.sent.push((request, peer, bytes)),
                    Output::Reply { command, result } => self.replies.push((command, result)),
                    Output::Delivered(id) => self.delivered.push(id),
                    Output::Reload(rel) => panic!("unexpected reload of {rel}"),
                    _ => {}
                }
            }
            if !self.state.group_ready() {
                break;
            }
            self.state.handle(Input::Idle, self.now);
        }
    }

    /// Asks the node to send `body`; the reply.
    fn send(
        &mut self,
        relationship: Option<RelationshipId>,
        to: Option<KeyId>,
        body: Body,
    ) -> Result<Submitted, Error> {
        self.next_command += 1;
        let command = CommandId(self.next_command);
        self.handle(Input::Send { command, draft: Box::new(Draft { relationship, to, body }) });
        let at = self.replies.iter().position(|(c, _)| *c == command).expect("a reply to the command");
        self.replies.remove(at).1
    }

    /// The one request in flight; taken.
    fn take_request(&mut self) -> (RequestId, NodeId, Message) {
        assert_eq!(self.sent.len(), 1, "one request in flight");
        let (request, peer, bytes) = self.sent.remove(0);
        (request, peer, Message::open(&bytes).expect("our own envelope opens"))
    }
}

/// `from`'s signed problem report refusing `refused` with `code`.
fn problem(from: &SigningKey, refused: &Message, code: Code) -> Message {
    let h = Header::ack(refused.header().relationship, id_of(from), refused.header().from, refused.header().created_at);
    let body = Body::ProblemReport(ProblemReport::new(code, Some(refused.id()), "refused by the test"));
    Message::seal(Payload { header: h, body }, from).expect("a valid problem report")
}

fn rel_of(submitted: &Submitted) -> RelationshipId {
    let bytes: [u8; 16] = hex::decode(&submitted.relationship).unwrap().try_into().unwrap();
    RelationshipId::from_bytes(bytes)
}

/// A vendor's node connected to a customer, its offer to her on the wire.
struct Opened {
    node: Node,
    customer: SigningKey,
    submitted: Submitted,
    rel: RelationshipId,
    request: RequestId,
    peer: NodeId,
    first: Message,
}

fn opened(vendor: u8, customer: u8, title: &str) -> Opened {
    let customer = key(customer);
    let mut node = Node::new(key(vendor));
    let her = NodeId::of_key(&id_of(&customer));
    node.handle(Input::Connected(her));
    let submitted = node.send(None, Some(id_of(&customer)), offer(title)).expect("the offer is accepted");
    let rel = rel_of(&submitted);
    let (request, peer, first) = node.take_request();
    assert_eq!(peer, her);
    assert_eq!(first.id().to_hex(), submitted.id);
    Opened { node, customer, submitted, rel, request, peer, first }
}

#[test]
fn a_final_refusal_gives_up_what_follows_and_refuses_what_comes_next() {
    let Opened { mut node, customer, submitted: opened, rel, request, peer, first } = opened(1, 2, "Winter tariff");

    // A second message in the relationship waits behind the first: it is not sent yet.
    let second = node.send(Some(rel), None, proposal()).expect("his terms may follow his offer").id;
    assert!(node.sent.is_empty(), "the second message waits for the first one's receipt");
    assert_eq!(node.state.outbox().len(), 2);

    // She refuses the first for good.
    let report = problem(&customer, &first, Code::Fork);
    node.handle(Input::Answer { request, peer, answer: Ok(report) });

    let delivered: Vec<String> = node.delivered.iter().map(|id| id.to_hex()).collect();
    assert!(delivered.contains(&opened.id), "the refused message's delivery is over");
    assert!(delivered.contains(&second), "the message chained on it is given up, not retried");
    assert_eq!(node.state.outbox().len(), 0, "nothing is left to retry");
    assert!(node.sent.is_empty(), "nothing else was sent");

    // A new message in that relationship is refused before it is signed or stored.
    let staged_before = node.state.relationships().get(&rel).expect("the relationship").log().len();
    match node.send(Some(rel), None, proposal()) {
        Err(Error::Refused { code: Code::Fork, detail }) => {
            assert!(detail.contains(&opened.id), "the reason names the refused message: {detail}")
        }
        other => panic!("expected a fork refusal, got {other:?}"),
    }
    assert_eq!(node.state.relationships().get(&rel).expect("the relationship").log().len(), staged_before);

    // Another relationship with her is not affected.
    node.send(None, Some(id_of(&customer)), offer("Summer tariff")).expect("a new relationship may open");
}

#[test]
fn a_transient_refusal_is_retried() {
    let Opened { mut node, customer, rel, request, peer, first, .. } = opened(3, 4, "Heat pump service");
    node.handle(Input::Answer { request, peer, answer: Ok(problem(&customer, &first, Code::RateLimited)) });

    assert!(node.delivered.is_empty(), "a rate-limited message is not given up");
    assert_eq!(node.state.outbox().len(), 1, "it waits for its retry");
    // The relationship still takes messages: the refusal was not final.
    assert!(node.state.relationships().refusal(&rel).is_none());

    // When the retry falls due it goes again, and a receipt ends it.
    for _ in 0..10 {
        if !node.sent.is_empty() {
            break;
        }
        node.now = node.state.poll_timeout().expect("a retry is scheduled");
        node.handle(Input::Timeout);
    }
    let (request, peer, again) = node.take_request();
    assert_eq!(again.id(), first.id(), "the same envelope goes again");
    node.handle(Input::SendFailed { request, peer, failure: Failure::NoAnswer });
    assert!(node.delivered.is_empty());
}
