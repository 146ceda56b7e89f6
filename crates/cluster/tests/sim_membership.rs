//! Membership in virtual time (foca's LAN preset, fixed seeds): join,
//! failure detection, restart, loss, partitions, broadcasts, messages,
//! leaving. Figures are printed so `--nocapture` shows what was measured.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unchecked_time_subtraction,
    clippy::duration_suboptimal_units,
    clippy::map_unwrap_or,
    missing_docs
)]

use std::time::Duration;

use bytes::Bytes;
use netproto_cluster::{ClusterEvent, MemberState};
use netproto_testkit::{LinkFaults, SimCluster};

fn lan() -> LinkFaults {
    LinkFaults::with_delay(Duration::from_millis(1)).jitter(Duration::from_millis(1))
}

fn joined(seed: u64, faults: LinkFaults) -> SimCluster {
    let mut sim = SimCluster::new(5, seed, faults);
    sim.start_all();
    let took = sim.run_while_not(Duration::from_secs(30), SimCluster::converged);
    assert!(
        took.is_some(),
        "seed {seed}: 5 nodes did not converge in 30 s"
    );
    sim
}

#[test]
fn five_nodes_joining_through_one_seed_see_each_other_within_5s() {
    for seed in [1, 2, 3] {
        let mut sim = SimCluster::new(5, seed, lan());
        sim.start_all();
        let took = sim.run_while_not(Duration::from_secs(5), SimCluster::converged);
        println!("seed {seed}: 5 nodes converged in {took:?}");
        assert!(took.is_some(), "seed {seed}: not converged within 5 s");
        for i in 0..5 {
            let ups = sim.events[i]
                .iter()
                .filter(|(_, e)| matches!(e, ClusterEvent::Up(_)))
                .count();
            assert_eq!(ups, 4, "node {i} reported {ups} members up");
        }
    }
}

#[test]
fn a_killed_member_is_reported_down_by_every_survivor_then_rejoins_as_a_new_run() {
    let mut medians = Vec::new();
    for seed in [11, 12, 13] {
        let mut sim = joined(seed, lan());
        sim.run_for(Duration::from_secs(5));
        let dead = sim.id(4);
        sim.kill(4);
        let killed_at = sim.elapsed();
        let took = sim.run_while_not(Duration::from_secs(15), |s| {
            (0..4)
                .all(|i| s.view(i)[4].is_some_and(|(id, st)| id == dead && st == MemberState::Down))
        });
        assert!(
            took.is_some(),
            "seed {seed}: not every survivor reported the kill within 15 s"
        );
        let mut detected: Vec<Duration> = (0..4)
            .map(|i| {
                sim.events[i]
                    .iter()
                    .find(|(_, e)| *e == ClusterEvent::Down(dead))
                    .map(|(at, _)| *at - killed_at)
                    .unwrap_or(Duration::MAX)
            })
            .collect();
        detected.sort();
        println!("seed {seed}: down reported after {detected:?}");
        medians.push(detected[1]);

        sim.start(4, &[0]);
        let new = sim.id(4);
        assert!(new.generation() > dead.generation());
        let back = sim.run_while_not(Duration::from_secs(10), SimCluster::converged);
        assert!(
            back.is_some(),
            "seed {seed}: the restarted member was not taken back within 10 s"
        );
        for i in 0..4 {
            assert!(
                sim.events[i].iter().any(|(_, e)| matches!(e, ClusterEvent::Rejoined { previous, id } if *previous == dead && *id == new)),
                "seed {seed}: node {i} did not report the rejoin"
            );
        }
    }
    println!("median detection per seed: {medians:?} (foca LAN preset at n = 5: ≈ 7 s expected, 15 s worst)");
}

#[test]
fn ten_percent_loss_for_600_seconds_raises_no_false_down() {
    let mut sim = joined(21, lan().loss(0.10));
    let start = sim.elapsed();
    sim.run_for(Duration::from_secs(600));
    let mut suspects = 0;
    for i in 0..5 {
        for (at, e) in &sim.events[i] {
            if *at < start {
                continue;
            }
            assert!(
                !matches!(
                    e,
                    ClusterEvent::Down(_)
                        | ClusterEvent::Rejoined { .. }
                        | ClusterEvent::Renewed(_)
                ),
                "node {i} at {at:?}: {e:?}"
            );
            suspects += usize::from(matches!(e, ClusterEvent::Suspect(_)));
        }
    }
    println!("600 s at 10 % loss: 0 false down, {suspects} suspicions raised and refuted");
    assert!(sim.converged());
}

#[test]
fn a_partition_of_2_and_3_heals_into_one_member_list() {
    for seed in [31, 32] {
        let mut sim = joined(seed, lan());
        sim.partition(&[0, 1], Duration::from_secs(30));
        sim.run_for(Duration::from_secs(30));
        // Each side declared the other down.
        assert!(
            sim.view(0)[3].is_some_and(|(_, st)| st == MemberState::Down),
            "seed {seed}: {:?}",
            sim.view(0)
        );
        assert!(
            sim.view(3)[0].is_some_and(|(_, st)| st == MemberState::Down),
            "seed {seed}: {:?}",
            sim.view(3)
        );
        let took = sim.run_while_not(Duration::from_secs(90), SimCluster::converged);
        println!("seed {seed}: one member list {took:?} after the partition healed");
        assert!(
            took.is_some(),
            "seed {seed}: no single member list 90 s after the partition healed"
        );
    }
}

#[test]
fn broadcasts_reach_every_member_within_2s() {
    let mut sim = joined(41, lan());
    for (size, tag) in [(100, b'g'), (1024, b'd')] {
        let payload = vec![tag; size];
        let now = sim.now;
        let from = sim.id(2);
        sim.node_mut(2)
            .map(|n| n.broadcast(now, &payload))
            .transpose()
            .ok();
        let got = |s: &SimCluster, i: usize| {
            s.events[i].iter().any(|(_, e)| matches!(e, ClusterEvent::Broadcast { origin, payload: p, .. } if *origin == from.key() && p[..] == payload[..]))
        };
        let took = sim.run_while_not(Duration::from_secs(2), |s| {
            (0..5).filter(|&i| i != 2).all(|i| got(s, i))
        });
        println!("{size}-byte broadcast reached all 4 others in {took:?}");
        assert!(
            took.is_some(),
            "{size}-byte broadcast did not reach everyone within 2 s"
        );
        sim.run_for(Duration::from_secs(3));
        for i in 0..5 {
            let copies = sim.events[i]
                .iter()
                .filter(|(_, e)| matches!(e, ClusterEvent::Broadcast { payload: p, .. } if p[..] == payload[..]))
                .count();
            assert_eq!(
                copies,
                usize::from(i != 2),
                "node {i} got {copies} copies of the {size}-byte broadcast"
            );
        }
    }
}

#[test]
fn a_message_reaches_its_member_and_names_the_sender() {
    let mut sim = joined(51, lan().loss(0.05));
    let (from, to) = (sim.id(1), sim.id(3));
    let now = sim.now;
    let payload = Bytes::from(vec![7u8; 50_000]);
    let sent = sim
        .node_mut(1)
        .map(|n| n.send_to(now, &to, payload.clone()));
    assert!(matches!(sent, Some(Ok(()))), "{sent:?}");
    let took = sim.run_while_not(Duration::from_secs(5), |s| {
        s.events[3].iter().any(|(_, e)| {
            *e == ClusterEvent::Message {
                from,
                payload: payload.clone(),
            }
        })
    });
    assert!(took.is_some(), "the message did not arrive");
}

#[test]
fn a_member_that_leaves_is_reported_as_left_not_failed() {
    let mut sim = joined(61, lan());
    let gone = sim.id(2);
    let now = sim.now;
    if let Some(n) = sim.node_mut(2) {
        n.leave(now);
        // Nothing has been acknowledged yet.
        assert!(!n.leave_settled());
    }
    // A driver stops the leaver once all four acknowledged its LEAVE.
    let settled = sim.run_while_not(Duration::from_secs(3), |s| {
        s.node(2).is_some_and(netproto_cluster::Node::leave_settled)
    });
    assert!(settled.is_some(), "the LEAVE was not acknowledged");
    sim.kill(2);
    let took = sim.run_while_not(Duration::from_secs(5), |s| {
        [0, 1, 3, 4]
            .iter()
            .all(|&i| s.view(i)[2].is_some_and(|(_, st)| st == MemberState::Left))
    });
    assert!(took.is_some(), "members did not all report the leave");
    for i in [0, 1, 3, 4] {
        assert!(sim.events[i]
            .iter()
            .any(|(_, e)| *e == ClusterEvent::Left(gone)));
        assert!(!sim.events[i]
            .iter()
            .any(|(_, e)| *e == ClusterEvent::Down(gone)));
    }
}
