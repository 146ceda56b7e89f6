//! Feeds arbitrary bytes to every handshake message parser: a responder's
//! read of SecureHandshakeInit and SecureHandshakeConfirm, and an initiator's
//! read of SecureHandshakeResponse, for each pattern. The honest messages up
//! to the fuzzed one are real, so the parser under test is reached with
//! genuine state. Nothing may panic, and an authenticated message that was
//! altered must be refused.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use netproto_crypto::{AnyPeer, Handshake, HandshakeConfig, Keypair, Pattern, TimestampGuard};
use rand::rngs::StdRng;
use rand::SeedableRng;

const NOW: Duration = Duration::from_secs(1_763_000_000);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, forged)) = data.split_first() else { return };
    let pattern = [Pattern::XX, Pattern::XK, Pattern::IK, Pattern::NK][usize::from(selector % 4)];
    let target = usize::from(selector / 4) % pattern.message_count();
    let mut rng = StdRng::seed_from_u64(u64::from(selector));
    let client_key = Keypair::generate(&mut rng);
    let server_key = Keypair::generate(&mut rng);
    let mut ccfg = HandshakeConfig::new(pattern.initiator_has_static().then(|| client_key.clone()), Arc::new(AnyPeer))
        .with_pattern(pattern);
    if pattern.responder_key_known() {
        ccfg = ccfg.with_remote_key(*server_key.public());
    }
    let scfg = HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer)).with_pattern(pattern);
    let (Ok(mut client), Ok(mut server)) = (Handshake::initiator(ccfg), Handshake::responder(scfg)) else {
        return;
    };
    let mut guard = TimestampGuard::new(4);
    guard.set_now(NOW);
    for i in 0..pattern.message_count() {
        let client_writes = i % 2 == 0;
        let (writer, reader) = if client_writes { (&mut client, &mut server) } else { (&mut server, &mut client) };
        let mut msg = Vec::new();
        if writer.write_message(&mut rng, NOW, &mut msg).is_err() {
            return;
        }
        let input = if i == target { forged } else { &msg[..] };
        let g = if client_writes { Some(&mut guard) } else { None };
        if reader.read_message(input, g).is_err() {
            return;
        }
        // Every message except XX's plaintext first one is authenticated: a
        // reader that accepted it must have been given the honest bytes.
        if i == target && (i > 0 || pattern != Pattern::XX) {
            assert_eq!(input, &msg[..], "forged {pattern:?} message {i} accepted");
        }
    }
});
