//! Unit tests of `secure`.
use super::*;
use ember_core::{BlockId, Txid};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use wire::Inv;

const MAGIC: [u8; 4] = *b"EMBd";
/// Bytes of the encrypted length that starts every frame.
const LENGTH_MESSAGE: usize = 4 + TAG;

async fn pair(
    prologue_a: &[u8],
    prologue_b: &[u8],
) -> (Result<Session, WireError>, Result<Session, WireError>, NodeId, NodeId) {
    let (mut a, mut b) = duplex(1 << 20);
    let (ka, kb) = (NodeKey::generate(), NodeKey::generate());
    let (ia, ib) = (ka.id(), kb.id());
    let (pa, pb) = (prologue_a.to_vec(), prologue_b.to_vec());
    // Each side closes its end when done (or failed): buffered bytes stay readable.
    let ta = tokio::spawn(async move { handshake(&mut a, MAGIC, &pa, &ka, true).await });
    let rb = handshake(&mut b, MAGIC, &pb, &kb, false).await;
    drop(b);
    (ta.await.unwrap(), rb, ia, ib)
}

fn connected(sa: Session, sb: Session) -> (SecureWriter<DuplexStream>, SecureReader<DuplexStream>) {
    let (x, y) = duplex(1 << 16);
    let (_, w) = sa.split((), x);
    let (r, _) = sb.split(y, ());
    (w, r)
}

#[test]
fn the_ring_cipher_speaks_the_same_noise_as_the_pure_rust_one() {
    use snow::resolvers::DefaultResolver;
    let params = || NOISE_PARAMS.parse::<snow::params::NoiseParams>().unwrap();
    let key = || snow::Builder::new(params()).generate_keypair().unwrap().private;
    let (ka, kb) = (key(), key());
    // What the node builds (ring for the cipher), against snow's pure-Rust resolver.
    let mut a = snow::Builder::new(params())
        .local_private_key(&ka)
        .unwrap()
        .prologue(b"p")
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut b = snow::Builder::with_resolver(params(), Box::new(DefaultResolver))
        .local_private_key(&kb)
        .unwrap()
        .prologue(b"p")
        .unwrap()
        .build_responder()
        .unwrap();
    let (mut buf, mut out) = ([0u8; 1024], [0u8; 1024]);
    for step in 0..3 {
        let (from, to) = if step % 2 == 0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
        let n = from.write_message(&[], &mut buf).unwrap();
        to.read_message(&buf[..n], &mut out).unwrap();
    }
    let mut a = a.into_transport_mode().unwrap();
    let mut b = b.into_transport_mode().unwrap();
    for round in 0..3 {
        let text = format!("round {round}");
        let n = a.write_message(text.as_bytes(), &mut buf).unwrap();
        let m = b.read_message(&buf[..n], &mut out).unwrap();
        assert_eq!(&out[..m], text.as_bytes());
        let n = b.write_message(text.as_bytes(), &mut buf).unwrap();
        let m = a.read_message(&buf[..n], &mut out).unwrap();
        assert_eq!(&out[..m], text.as_bytes());
        a.rekey_outgoing();
        b.rekey_incoming();
        b.rekey_outgoing();
        a.rekey_incoming();
    }
    // One flipped bit fails the tag on either implementation.
    let n = a.write_message(b"x", &mut buf).unwrap();
    buf[0] ^= 1;
    assert!(b.read_message(&buf[..n], &mut out).is_err());
}

#[tokio::test]
async fn both_sides_learn_each_others_id_and_messages_round_trip_across_rekeys() {
    let p = prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted);
    let (sa, sb, ia, ib) = pair(&p, &p).await;
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    assert_eq!(sa.remote, ib);
    assert_eq!(sb.remote, ia);
    let (mut w, mut r) = connected(sa, sb);
    let big = Message::Addr(vec!["x".repeat(1000); 1000]);
    let msgs: Vec<Message> = (0..2 * REKEY_FRAMES + 3)
        .map(|i| match i % 3 {
            0 => Message::Ping(i),
            1 => Message::Inv(vec![Inv::Tx(Txid::from_bytes([i as u8; 32]))]),
            _ if i % 50 == 2 => big.clone(),
            _ => Message::GetAddr,
        })
        .collect();
    let sent = msgs.clone();
    let writer = tokio::spawn(async move {
        for m in &sent {
            let n = w.write_message(m).await.unwrap();
            assert_eq!(n, frame_size(encode(m).len()));
        }
    });
    for m in msgs {
        let (got, _) = r.read_message(MAX_FRAME).await.unwrap();
        assert_eq!(got, m);
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn an_initiator_expecting_another_id_stops_before_revealing_its_key() {
    let (mut a, mut b) = duplex(1 << 16);
    let (ka, kb, other) = (NodeKey::generate(), NodeKey::generate(), NodeKey::generate());
    let (want, got) = (other.id(), kb.id());
    let p = prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted);
    let p2 = p.clone();
    let ta = tokio::spawn(async move {
        handshake_expecting(&mut a, MAGIC, &p2, &ka, true, Some(want)).await
    });
    let rb = handshake(&mut b, MAGIC, &p, &kb, false).await;
    let ra = ta.await.unwrap();
    assert!(
        matches!(ra, Err(WireError::UnexpectedNodeId { expected, got: g }) if expected == want && g == got),
        "{:?}",
        ra.err()
    );
    // Message 3 was never sent: the responder saw the connection close instead.
    assert!(matches!(rb, Err(WireError::Closed)), "{:?}", rb.err());
}

#[tokio::test]
async fn another_network_cannot_complete_the_handshake() {
    let (sa, sb, _, _) = pair(
        &prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted),
        &prologue(MAGIC, BlockId::from_bytes([1; 32]), FrameMode::Encrypted),
    )
    .await;
    assert!(matches!(sa, Err(WireError::Handshake(_))), "initiator: {:?}", sa.err());
    // The initiator gives up on message 2 (its tag fails): the responder never gets message 3.
    assert!(matches!(sb, Err(WireError::Closed)), "responder: {:?}", sb.err());
}

#[tokio::test]
async fn a_plaintext_version_is_refused_by_its_size() {
    let (mut a, mut b) = duplex(1 << 16);
    let v = Message::Version(wire::Version {
        protocol: wire::PROTOCOL_VERSION,
        genesis: BlockId::ZERO,
        best_height: 0,
        best_work: [0; 32],
        listen_port: 1,
        user_agent: "old".into(),
        nonce: 1,
    });
    wire::write_message(&mut a, MAGIC, &v).await.unwrap();
    let key = NodeKey::generate();
    let err = handshake(&mut b, MAGIC, b"p", &key, false).await.err().unwrap();
    assert!(matches!(err, WireError::Handshake(_)) && err.is_misbehaviour(), "{err}");
    // The responder answered nothing: it never spoke to the plaintext peer.
    drop(b);
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn altered_frames_fail_authentication_and_lengths_are_capped() {
    let p = prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted);
    for flip_at in [0usize, 19, 20, 30] {
        let (sa, sb, _, _) = pair(&p, &p).await;
        let (sa, sb) = (sa.unwrap(), sb.unwrap());
        let (mut x, y) = duplex(1 << 16);
        let (_, mut w) = sa.split((), Vec::new());
        let (mut r, _) = sb.split(y, ());
        w.write_message(&Message::Ping(42)).await.unwrap();
        let mut bytes = std::mem::take(&mut w.inner);
        bytes[flip_at] ^= 1;
        x.write_all(&bytes).await.unwrap();
        assert!(matches!(r.read_message(MAX_FRAME).await, Err(WireError::Auth)), "{flip_at}");
    }
    // A genuine length over the cap is refused before the payload arrives.
    let (sa, sb, _, _) = pair(&p, &p).await;
    let (mut x, y) = duplex(1 << 16);
    let (_, mut w) = sa.unwrap().split((), Vec::new());
    let (mut r, _) = sb.unwrap().split(y, ());
    w.write_message(&Message::Addr(vec!["x".repeat(100); 100])).await.unwrap();
    x.write_all(&w.inner[..LENGTH_MESSAGE]).await.unwrap();
    let err = r.read_message(MAX_HANDSHAKE_FRAME).await.err().unwrap();
    assert!(matches!(err, WireError::Oversized { max: MAX_HANDSHAKE_FRAME, .. }), "{err}");
}

#[tokio::test]
async fn plaintext_mode_round_trips_in_the_clear_and_never_meets_an_encrypting_peer() {
    let plain = prologue(MAGIC, BlockId::ZERO, FrameMode::Plaintext);
    let (sa, sb, _, _) = pair(&plain, &plain).await;
    let (x, y) = duplex(1 << 20);
    let (_, mut w) = sa.unwrap().split_with((), x, FrameMode::Plaintext);
    let (mut r, _) = sb.unwrap().split_with(y, (), FrameMode::Plaintext);
    let msgs = [Message::Ping(7), Message::Addr(vec!["z".repeat(1000); 100]), Message::GetAddr];
    for m in &msgs {
        let n = w.write_message(m).await.unwrap();
        let payload = encode(m);
        assert_eq!(n, 4 + payload.len(), "no tags in plaintext mode");
        let (got, read) = r.read_message(MAX_FRAME).await.unwrap();
        assert_eq!((&got, read), (m, n));
    }
    // A plaintext node and an encrypting one disagree on the prologue: no session.
    let (sa, sb, _, _) = pair(&plain, &prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted)).await;
    assert!(matches!(sa, Err(WireError::Handshake(_))), "initiator: {:?}", sa.err());
    assert!(matches!(sb, Err(WireError::Closed)), "responder: {:?}", sb.err());
}

#[tokio::test]
async fn reading_survives_cancellation_mid_frame() {
    let p = prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted);
    let (sa, sb, _, _) = pair(&p, &p).await;
    let (mut x, y) = duplex(1 << 20);
    let (_, mut w) = sa.unwrap().split((), Vec::new());
    let (mut r, _) = sb.unwrap().split(y, ());
    let msg = Message::Addr(vec!["y".repeat(1000); 200]);
    w.write_message(&msg).await.unwrap();
    let bytes = std::mem::take(&mut w.inner);
    // Deliver all but the last byte in pieces, abandoning the read after each piece
    // (a zero timeout polls the read once, then drops it), as `select!` does.
    let (most, last) = bytes.split_at(bytes.len() - 1);
    for piece in most.chunks(7_000) {
        x.write_all(piece).await.unwrap();
        let read = r.read_message(MAX_FRAME);
        let res = tokio::time::timeout(std::time::Duration::ZERO, read).await;
        assert!(res.is_err(), "a partial frame cannot complete");
    }
    x.write_all(last).await.unwrap();
    assert_eq!(r.read_message(MAX_FRAME).await.unwrap().0, msg);
}

/// Each message's frame as it goes on the wire, written one by one.
async fn frames_of(w: &mut SecureWriter<Vec<u8>>, msgs: &[Message]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for m in msgs {
        w.write_message(m).await.unwrap();
        out.push(std::mem::take(&mut w.inner));
    }
    out
}

#[tokio::test]
async fn replayed_reordered_or_dropped_frames_fail_authentication() {
    let p = prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted);
    let n = REKEY_FRAMES as usize;
    let msgs: Vec<Message> = (0..n as u64 + 2).map(Message::Ping).collect();
    let first_frames: Vec<usize> = (0..4).collect();
    // (what, the frames delivered in this order, how many messages get through first)
    let cases: Vec<(&str, Vec<usize>, usize)> = vec![
        ("frame 1 replayed", vec![0, 1, 1, 2], 2),
        ("frames 1 and 2 swapped", vec![0, 2, 1, 3], 1),
        ("frame 1 dropped", vec![0, 2, 3], 1),
        ("frame 0 replayed at once", vec![0, 0], 1),
        // Across a rekey: the last frame under the old key again, and the first frame
        // under the new key dropped.
        ("the last frame before a rekey replayed", (0..n).chain([n - 1, n]).collect(), n),
        ("the first frame after a rekey dropped", (0..n).chain([n + 1]).collect(), n),
    ];
    for (what, order, good) in cases {
        let (sa, sb, _, _) = pair(&p, &p).await;
        let (_, mut w) = sa.unwrap().split((), Vec::new());
        let wire = frames_of(&mut w, &msgs).await;
        let (mut x, y) = duplex(1 << 20);
        let (mut r, _) = sb.unwrap().split(y, ());
        let feeder = tokio::spawn(async move {
            for i in order.clone() {
                x.write_all(&wire[i]).await.unwrap();
            }
            order
        });
        let mut got = Vec::new();
        let err = loop {
            match r.read_message(MAX_FRAME).await {
                Ok((m, _)) => got.push(m),
                Err(e) => break e,
            }
        };
        let order = feeder.await.unwrap();
        let want: Vec<Message> = order[..good].iter().map(|&i| msgs[i].clone()).collect();
        assert_eq!(got.len(), good, "{what}: {} messages got through", got.len());
        assert_eq!(got, want, "{what}");
        assert!(matches!(err, WireError::Auth), "{what}: {err}");
    }
    // The same frames in order all get through (the cases above fail for their alteration).
    let (sa, sb, _, _) = pair(&p, &p).await;
    let (_, mut w) = sa.unwrap().split((), Vec::new());
    let wire = frames_of(&mut w, &msgs[..4]).await;
    let (mut x, y) = duplex(1 << 20);
    let (mut r, _) = sb.unwrap().split(y, ());
    for i in &first_frames {
        x.write_all(&wire[*i]).await.unwrap();
    }
    for i in first_frames {
        assert_eq!(r.read_message(MAX_FRAME).await.unwrap().0, msgs[i]);
    }
}
