//! The framing of `/rapport/<network>/msg/1` (spec/protocol.md §11.2): on one stream, the requester
//! writes one frame holding one COSE_Sign1 envelope and closes its side; the responder writes
//! one frame holding its signed `receipt` or `problem_report` and closes. A frame is the
//! payload's length as an unsigned LEB128 varint (multiformats `unsigned-varint`, at most three
//! bytes here) followed by exactly that many bytes. The bytes are carried untouched: the codec
//! never re-encodes what was signed.
//!
//! The node's codec also *opens* what it reads ([`Codec::opening`]): the envelope is parsed and
//! its signature strictly verified by the connection's own task, as the frame arrives, so the
//! node's event loop receives checked messages and spends no time on signatures, and no task
//! hand-off is added per message. Probes and the benchmark's raw peer use [`Codec::raw`].

use std::io;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::StreamProtocol;
use rapport_protocol::cbor::MAX_MESSAGE_SIZE;
use rapport_protocol::{envelope, Message, MessageId};

/// Largest frame payload: the protocol's message size limit.
pub const MAX_FRAME: usize = MAX_MESSAGE_SIZE;

/// The request-response codec: signed bytes in, signed bytes out.
#[derive(Debug, Clone, Default)]
pub struct Codec {
    open: bool,
}

impl Codec {
    /// A codec that opens every envelope it reads ([`Request::Opened`], [`Response::Opened`]).
    pub fn opening() -> Codec {
        Codec { open: true }
    }

    /// A codec that hands over the bytes it reads as they are.
    pub fn raw() -> Codec {
        Codec { open: false }
    }

    fn read(&self, bytes: Vec<u8>) -> Envelope {
        if self.open {
            let opened = Message::open(&bytes).map_err(|error| Refused { id: MessageId::of(&bytes), error });
            Envelope::Opened(Box::new(opened))
        } else {
            Envelope::Raw(bytes)
        }
    }
}

/// An envelope that failed [`Message::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The id of the bytes as received (spec §3.4), for the problem report to name.
    pub id: MessageId,
    /// Why it was refused.
    pub error: envelope::Error,
}

/// One envelope, as read from the wire or to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// The bytes, unopened.
    Raw(Vec<u8>),
    /// Opened by the codec: the verified message, or why it was refused.
    Opened(Box<Result<Message, Refused>>),
}

impl Envelope {
    /// The envelope's bytes, to write; `None` for one that was refused (it has nothing to send).
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Envelope::Raw(bytes) => Some(bytes),
            Envelope::Opened(opened) => opened.as_ref().as_ref().ok().map(Message::bytes),
        }
    }

    /// The envelope's bytes, however it was read (a refused one has none: empty).
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Envelope::Raw(bytes) => bytes,
            Envelope::Opened(opened) => opened.as_ref().as_ref().map(|m| m.bytes().to_vec()).unwrap_or_default(),
        }
    }
}

/// A response: the signed `receipt` or `problem_report`.
pub type Response = Envelope;

/// A request as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// One envelope.
    Envelope(Envelope),
    /// A frame whose announced length exceeds [`MAX_FRAME`]; its payload was not read, and the
    /// node answers it with a `too-large` problem report. Written, it is that frame's head
    /// alone (tests send it to check the refusal).
    TooLarge(usize),
}

/// A frame's announced length.
enum Head {
    Len(usize),
    TooLarge(usize),
}

/// Writes `bytes` as one frame.
pub async fn write_frame<T: AsyncWrite + Unpin>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    if bytes.len() > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "message larger than the frame limit"));
    }
    let (head, len) = varint(bytes.len());
    // One write: each write on a yamux stream is a frame of its own on the wire.
    let mut frame = Vec::with_capacity(len + bytes.len());
    frame.extend_from_slice(&head[..len]);
    frame.extend_from_slice(bytes);
    io.write_all(&frame).await?;
    io.flush().await
}

/// `n` as an unsigned LEB128 varint, shortest form: the bytes and how many are used.
fn varint(mut n: usize) -> ([u8; 10], usize) {
    let mut head = [0u8; 10];
    let mut len = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        head[len] = if n == 0 { byte } else { byte | 0x80 };
        len += 1;
        if n == 0 {
            return (head, len);
        }
    }
}

/// Reads a frame's length: at most three varint bytes, minimal form.
async fn read_head<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Head> {
    let mut len: usize = 0;
    for i in 0..3 {
        let mut b = [0u8; 1];
        io.read_exact(&mut b).await?;
        len |= usize::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            if i > 0 && b[0] == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "non-minimal frame length"));
            }
            return Ok(if len > MAX_FRAME { Head::TooLarge(len) } else { Head::Len(len) });
        }
    }
    Ok(Head::TooLarge(len))
}

async fn read_payload<T: AsyncRead + Unpin>(io: &mut T, len: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; len];
    io.read_exact(&mut out).await?;
    Ok(out)
}

/// Reads one frame, refusing a length above [`MAX_FRAME`] before reading its payload, and a
/// non-minimal varint.
pub async fn read_frame<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Vec<u8>> {
    match read_head(io).await? {
        Head::Len(len) => read_payload(io, len).await,
        Head::TooLarge(len) => {
            Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes or more exceeds {MAX_FRAME}")))
        }
    }
}

fn refused_envelope() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "a refused envelope has no bytes to send")
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Request> {
        match read_head(io).await? {
            Head::Len(len) => Ok(Request::Envelope(self.read(read_payload(io, len).await?))),
            Head::TooLarge(len) => Ok(Request::TooLarge(len)),
        }
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        Ok(self.read(read_frame(io).await?))
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()> {
        match req {
            Request::Envelope(envelope) => write_frame(io, envelope.bytes().ok_or_else(refused_envelope)?).await,
            // Only a probe sends this: the head of an over-long frame, without its payload.
            Request::TooLarge(len) => {
                let (head, n) = varint(len);
                io.write_all(&head[..n]).await?;
                io.flush().await
            }
        }
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()> {
        write_frame(io, res.bytes().ok_or_else(refused_envelope)?).await
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use futures::io::Cursor;

    use super::*;

    fn framed(bytes: &[u8]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        block_on(write_frame(&mut out, bytes)).unwrap();
        out.into_inner()
    }

    #[test]
    fn frames_round_trip_with_minimal_lengths() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, MAX_FRAME] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let wire = framed(&bytes);
            let head = wire.len() - len;
            assert_eq!(
                head,
                if len < 128 {
                    1
                } else if len < 16_384 {
                    2
                } else {
                    3
                },
                "length {len}"
            );
            assert_eq!(block_on(read_frame(&mut Cursor::new(wire))).unwrap(), bytes);
        }
        assert_eq!(framed(&[0xaa; 300])[..2], [0xac, 0x02]);
    }

    #[test]
    fn oversized_truncated_and_non_minimal_frames_are_refused() {
        let mut out = Cursor::new(Vec::new());
        assert!(block_on(write_frame(&mut out, &vec![0; MAX_FRAME + 1])).is_err());
        // A length of MAX_FRAME + 1 is refused before any payload is read.
        let mut big = framed(&vec![0; MAX_FRAME]);
        big[0] += 1;
        assert_eq!(block_on(read_frame(&mut Cursor::new(big))).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // Four-byte lengths, non-minimal lengths and truncated payloads.
        for wire in [vec![0x80, 0x80, 0x80, 0x01], vec![0x81, 0x00, 0x00], vec![0x05, 1, 2]] {
            assert!(block_on(read_frame(&mut Cursor::new(wire))).is_err());
        }
        // As a request, an over-long frame is reported (to be answered `too-large`) unread.
        let mut codec = Codec::raw();
        let protocol = StreamProtocol::new("/rapport/local/msg/1");
        let mut wire = Cursor::new(vec![0x80, 0x80, 0x08, 0xff]);
        let read = block_on(libp2p::request_response::Codec::read_request(&mut codec, &protocol, &mut wire));
        assert_eq!(read.unwrap(), Request::TooLarge(131_072));
        assert_eq!(wire.position(), 3, "the payload is not read");
    }

    #[test]
    fn the_opening_codec_verifies_what_it_reads() {
        use rapport_protocol::{Body, HasCode as _, Header, Intent, KeyId, Payload};
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let header = Header::public(KeyId::from_bytes(key.verifying_key().to_bytes()), 1_700_000_000_000);
        let body = Body::Intent(Intent {
            title: "Bike repair".into(),
            description: String::new(),
            tags: Vec::new(),
            budget: None,
        });
        let message = Message::seal(Payload { header, body }, &key).unwrap();
        let mut forged = message.bytes().to_vec();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let protocol = StreamProtocol::new("/rapport/local/msg/1");
        let read = |codec: &mut Codec, bytes: &[u8]| {
            let mut wire = Cursor::new(framed(bytes));
            let request = block_on(libp2p::request_response::Codec::read_request(codec, &protocol, &mut wire));
            let response = block_on(libp2p::request_response::Codec::read_response(
                codec,
                &protocol,
                &mut Cursor::new(framed(bytes)),
            ));
            (request.unwrap(), response.unwrap())
        };
        let (request, response) = read(&mut Codec::opening(), message.bytes());
        assert_eq!(request, Request::Envelope(Envelope::Opened(Box::new(Ok(message.clone())))));
        assert_eq!(response, Envelope::Opened(Box::new(Ok(message.clone()))));
        let (request, _) = read(&mut Codec::opening(), &forged);
        let Request::Envelope(Envelope::Opened(opened)) = request else { panic!("{request:?}") };
        let Err(refused) = *opened else { panic!("a forged signature was accepted") };
        assert_eq!(refused.id, MessageId::of(&forged), "the problem report can name what was sent");
        assert_eq!(refused.error.code(), rapport_protocol::Code::BadSignature);
        // The raw codec hands over the bytes as they came, and writes what it is given.
        let (request, _) = read(&mut Codec::raw(), &forged);
        assert_eq!(request, Request::Envelope(Envelope::Raw(forged.clone())));
        let write = |envelope: Envelope| {
            let (mut codec, mut out) = (Codec::raw(), Cursor::new(Vec::new()));
            let written = libp2p::request_response::Codec::write_response(&mut codec, &protocol, &mut out, envelope);
            block_on(written).map(|()| out.into_inner())
        };
        assert_eq!(write(Envelope::Opened(Box::new(Ok(message.clone())))).unwrap(), framed(message.bytes()));
        let refused = Envelope::Opened(Box::new(Err(refused)));
        assert_eq!(write(refused).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
