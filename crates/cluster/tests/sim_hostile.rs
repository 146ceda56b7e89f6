//! Hostile input in virtual time: strangers, replays, a member speaking as
//! another, gossip naming strangers, garbage. None of it may change any
//! node's member list; every drop is counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unchecked_time_subtraction,
    clippy::duration_suboptimal_units,
    clippy::map_unwrap_or,
    missing_docs
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BufMut;
use foca::{Codec, Header, Member, Message, PostcardCodec};
use netproto_cluster::{ClusterConfig, ClusterEvent, DropReason, MemberId, MemberState};
use netproto_crypto::{AllowList, HandshakeConfig, Keypair};
use netproto_testkit::{cluster_addr, LinkFaults, SimCluster};
use netproto_transport_udp::{Delivery, Endpoint, Event, UdpConfig};
use netproto_wire::Frame;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn joined(n: usize, seed: u64) -> SimCluster {
    let mut sim = SimCluster::new(n, seed, LinkFaults::with_delay(Duration::from_millis(1)));
    sim.start_all();
    assert!(sim
        .run_while_not(Duration::from_secs(10), SimCluster::converged)
        .is_some());
    sim
}

/// Every node's member list as (identity, state).
fn lists(sim: &SimCluster, nodes: &[usize]) -> Vec<Vec<(MemberId, MemberState)>> {
    nodes
        .iter()
        .map(|&i| {
            sim.node(i)
                .map(|n| n.members().into_iter().map(|m| (m.id, m.state)).collect())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn a_key_outside_the_allow_list_never_becomes_a_member() {
    let mut sim = SimCluster::new(6, 71, LinkFaults::with_delay(Duration::from_millis(1)));
    sim.set_config(ClusterConfig::lan((0..5).map(|i| sim.key(i))));
    for i in 0..5 {
        sim.start(i, &[0]);
    }
    sim.start(5, &[0, 1, 2]);
    sim.run_for(Duration::from_secs(20));
    let stranger = sim.key(5);
    for i in 0..5 {
        assert!(sim
            .node(i)
            .is_some_and(|n| n.members().iter().all(|m| m.id.key() != stranger)));
        assert_eq!(sim.node(i).map(|n| n.active_members().len()), Some(4));
    }
    let refused = sim.node(0).map(|n| {
        n.endpoint_stats()
            .dropped(netproto_transport_udp::DropReason::HandshakeFailed)
    });
    assert!(refused.is_some_and(|r| r > 0), "{refused:?}");
    assert_eq!(sim.node(5).map(|n| n.active_members().len()), Some(0));
}

#[test]
fn replayed_datagrams_do_not_keep_a_dead_member_alive() {
    let mut sim = joined(5, 72);
    sim.tap = Some(Vec::new());
    sim.run_for(Duration::from_secs(10));
    let from_dead: Vec<_> = sim
        .tap
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.from == cluster_addr(4))
        .collect();
    assert!(from_dead.len() > 20, "captured {}", from_dead.len());
    let dead = sim.id(4);
    sim.kill(4);
    // Replay everything node 4 sent, over and over, while it is dead.
    let mut down = false;
    for _ in 0..150 {
        for d in &from_dead {
            sim.inject(d.from, d.to, &d.bytes);
        }
        sim.run_for(Duration::from_millis(100));
        down = (0..4)
            .all(|i| sim.view(i)[4].is_some_and(|(id, st)| id == dead && st == MemberState::Down));
        if down {
            break;
        }
    }
    assert!(
        down,
        "replays kept the dead member alive: {:?}",
        sim.view(0)
    );
    let unauthentic: u64 = (0..4)
        .filter_map(|i| sim.node(i))
        .map(|n| {
            n.endpoint_stats()
                .dropped(netproto_transport_udp::DropReason::Unauthentic)
        })
        .sum();
    assert!(unauthentic > 0);
}

/// A hand-made member at an address where no node runs: an endpoint with
/// an allowed key, driven by the test through the simulation.
struct Puppet {
    endpoint: Endpoint,
    addr: SocketAddr,
}

impl Puppet {
    fn new(sim: &SimCluster, addr: SocketAddr) -> Self {
        let endpoint = Endpoint::new(
            UdpConfig::default(),
            None,
            Box::new(StdRng::seed_from_u64(9)),
            sim.now,
            Duration::from_secs(1_700_000_000),
        );
        let endpoint = endpoint.unwrap_or_else(|e| panic!("{e}"));
        Self { endpoint, addr }
    }

    fn pump(&mut self, sim: &mut SimCluster, time: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        let end = sim.now + time;
        while sim.now < end {
            sim.run_for(Duration::from_millis(5));
            let now = sim.now;
            let mine: Vec<_> = sim
                .unclaimed
                .drain(..)
                .filter(|d| d.to == self.addr)
                .collect();
            for mut d in mine {
                self.endpoint.handle_datagram(now, d.from, &mut d.bytes);
            }
            self.endpoint.handle_timeout(now);
            while let Some(t) = self.endpoint.poll_transmit(now) {
                sim.inject(self.addr, t.destination, &t.contents);
            }
            while let Some((_, ev)) = self.endpoint.poll_event() {
                events.push(ev);
            }
        }
        events
    }
}

fn packet(src: MemberId, dst: MemberId, updates: &[Member<MemberId>]) -> Vec<u8> {
    let mut buf = Vec::new();
    let header = Header {
        src,
        src_incarnation: 0,
        dst,
        message: Message::Gossip,
    };
    PostcardCodec
        .encode_header(&header, &mut buf)
        .unwrap_or_else(|e| panic!("{e}"));
    #[allow(clippy::cast_possible_truncation)]
    buf.put_u16(updates.len() as u16);
    for m in updates {
        PostcardCodec
            .encode_member(m, &mut buf)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    buf
}

#[test]
fn a_member_speaking_as_another_or_naming_strangers_changes_nothing() {
    // Node 5 is on the allow-list but never started: the puppet holds its key.
    let mut sim = SimCluster::new(6, 73, LinkFaults::with_delay(Duration::from_millis(1)));
    for i in 0..5 {
        sim.start(i, &[0]);
    }
    assert!(sim
        .run_while_not(Duration::from_secs(10), SimCluster::converged)
        .is_some());
    let before = lists(&sim, &[0, 1, 2, 3, 4]);
    let key = sim.keypair(5);
    let addr = cluster_addr(5);
    let mut puppet = Puppet::new(&sim, addr);
    let hs = HandshakeConfig::new(Some(key.clone()), Arc::new(AllowList::new([sim.key(0)])))
        .with_remote_key(sim.key(0));
    let now = sim.now;
    let sid = puppet
        .endpoint
        .connect(now, cluster_addr(0), hs)
        .unwrap_or_else(|e| panic!("{e}"));
    let events = puppet.pump(&mut sim, Duration::from_secs(2));
    assert!(
        events.iter().any(|e| matches!(e, Event::Connected(_))),
        "{events:?}"
    );

    let (victim, target, own) = (sim.id(1), sim.id(0), MemberId::new(key.public(), addr, 1));
    let mut rng = StdRng::seed_from_u64(5);
    let stranger = MemberId::new(Keypair::generate(&mut rng).public(), cluster_addr(40), 1);
    let forged = [
        // Node 1 "says" node 2 is down.
        packet(victim, target, &[Member::down(sim.id(2))]),
        // Node 1 "says" it left.
        packet(victim, target, &[Member::down(victim)]),
        // Our own identity, but gossip naming a stranger.
        packet(own, target, &[Member::alive(stranger)]),
    ];
    for p in &forged {
        let now = sim.now;
        puppet
            .endpoint
            .send(now, sid, &Frame::data(1, p.clone()), Delivery::Reliable)
            .unwrap_or_else(|e| panic!("{e}"));
        puppet.pump(&mut sim, Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(10));
    let stats = sim.node(0).map(|n| n.stats().clone()).unwrap_or_default();
    assert_eq!(stats.dropped(DropReason::Impersonation), 2, "{stats:?}");
    assert_eq!(stats.dropped(DropReason::NotAllowed), 1, "{stats:?}");
    assert_eq!(
        lists(&sim, &[0, 1, 2, 3, 4])
            .iter()
            .map(Vec::len)
            .collect::<Vec<_>>(),
        before.iter().map(Vec::len).collect::<Vec<_>>()
    );
    for i in 0..5 {
        assert!(
            !sim.events[i].iter().any(|(_, e)| matches!(
                e,
                ClusterEvent::Down(_) | ClusterEvent::Left(_) | ClusterEvent::Rejoined { .. }
            )),
            "node {i}: {:?}",
            sim.events[i]
        );
        assert!(sim
            .node(i)
            .is_some_and(|n| n.members().iter().all(|m| m.id != stranger)));
    }
}

#[test]
fn garbage_datagrams_are_dropped_and_counted() {
    let mut sim = joined(5, 74);
    let before = lists(&sim, &[0, 1, 2, 3, 4]);
    let sessions = sim.node(0).map(netproto_cluster::Node::sessions);
    let mut rng = StdRng::seed_from_u64(6);
    for round in 0..100 {
        for _ in 0..100 {
            let len = rng.gen_range(0..1300);
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let from = SocketAddr::from(([192, 0, 2, rng.gen()], rng.gen()));
            sim.inject(from, cluster_addr(round % 5), &bytes);
        }
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(5));
    assert_eq!(lists(&sim, &[0, 1, 2, 3, 4]), before);
    assert_eq!(sim.node(0).map(netproto_cluster::Node::sessions), sessions);
    let dropped: u64 = (0..5)
        .filter_map(|i| sim.node(i))
        .map(|n| n.endpoint_stats().dropped.values().sum::<u64>())
        .sum();
    assert!(dropped >= 10_000, "{dropped} of 10,000 counted as dropped");
}
