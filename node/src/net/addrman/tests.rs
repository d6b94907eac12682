//! Unit tests of `addrman`.
use super::*;
use crate::store::MemKv;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::Ipv4Addr;

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([a, b, c, d], port))
}

fn fresh() -> (Arc<dyn KvStore>, AddrMan) {
    let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
    (kv.clone(), AddrMan::load(kv))
}

fn keys(kv: &Arc<dyn KvStore>) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    kv.scan_prefix(Column::Peers, &[], &mut |k, _| {
        keys.push(k.to_vec());
        true
    })
    .expect("the mem store never fails");
    keys
}

#[test]
fn one_source_flooding_cannot_evict_honest_addresses() {
    // A fixed key makes the run reproducible (honest addresses never share a slot here).
    let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
    kv.write(vec![(Column::Peers, KEY_KEY.to_vec(), Change::Put(vec![7; 32]))]).unwrap();
    let mut man = AddrMan::load(kv);
    let now = wall_ms();
    let outbound = v4(203, 0, 113, 5, 9000);
    man.good(outbound, now);
    let honest: Vec<SocketAddr> = (0..20).map(|i| v4(198, 51, i, 7, 9000)).collect();
    for (i, a) in honest.iter().enumerate() {
        assert_eq!(man.add(&[*a], IpAddr::from([100, i as u8, 0, 1]), now), 1);
    }
    let attacker = IpAddr::from([45, 33, 1, 1]);
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..10 {
        let junk: Vec<SocketAddr> =
            (0..1000).map(|_| SocketAddr::from((Ipv4Addr::from(rng.gen::<u32>()), 1))).collect();
        man.add(&junk, attacker, now);
        let from_attacker =
            man.entries.values().filter(|e| group(e.source) == group(attacker)).count();
        assert!(from_attacker <= 8 * BUCKET_SIZE, "{from_attacker} entries from one group");
        assert!(man.len() <= MAX_ENTRIES);
    }
    assert!(honest.iter().all(|a| man.contains(a)), "every honest address is kept");
    assert_eq!(man.entries[&outbound].pos.table, Table::Tried);
    assert_eq!(man.tried_count(), 1);
}

#[test]
fn reload_rebuilds_the_same_tables_with_the_same_key() {
    // A fixed key: with a random one, the two addresses marked good below shared a tried
    // slot about once in a few hundred runs (the second then moved the first back to new).
    let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
    kv.write(vec![(Column::Peers, KEY_KEY.to_vec(), Change::Put(vec![7; 32]))]).unwrap();
    let mut man = AddrMan::load(kv.clone());
    let now = wall_ms();
    for s in 0..5u8 {
        let addrs: Vec<SocketAddr> = (0..10).map(|i| v4(20 + s, i, 1, 1, 7000)).collect();
        man.add(&addrs, IpAddr::from([60, s, 0, 1]), now);
    }
    man.good(v4(20, 0, 1, 1, 7000), now);
    man.good(v4(99, 9, 9, 9, 7000), now);
    man.failed(&v4(21, 3, 1, 1, 7000));
    let again = AddrMan::load(kv);
    assert_eq!(again.key, man.key, "the secret is reused");
    assert_eq!((again.new.clone(), again.tried.clone()), (man.new.clone(), man.tried.clone()));
    assert_eq!(again.entries, man.entries);
    assert_eq!(again.tried_count(), 2);
    assert!(again.new_count() >= 40, "few of 49 collide");
}

#[test]
fn bans_in_the_same_column_are_left_alone() {
    let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
    kv.write(vec![(Column::Peers, b"ban/127.0.0.1:9".to_vec(), Change::Put(vec![0; 12]))]).unwrap();
    let _ = AddrMan::load(kv.clone());
    assert_eq!(kv.get(Column::Peers, b"ban/127.0.0.1:9").unwrap(), Some(vec![0; 12]));
}

#[test]
fn legacy_entries_are_imported_and_junk_deleted() {
    let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
    let old = v4(127, 0, 0, 1, 8);
    let mut legacy = 5u64.to_be_bytes().to_vec();
    legacy.extend_from_slice(&2u32.to_be_bytes());
    kv.write(vec![
        (Column::Peers, old.to_string().into_bytes(), Change::Put(legacy)),
        (Column::Peers, b"not an address".to_vec(), Change::Put(vec![0; 12])),
        (Column::Peers, b"127.0.0.1:9".to_vec(), Change::Put(vec![1, 2, 3])),
        (Column::Peers, b"addr/127.0.0.1:10".to_vec(), Change::Put(vec![0; 7])),
        (Column::Peers, b"addr/nonsense".to_vec(), Change::Put(vec![0; ENTRY_LEN])),
    ])
    .unwrap();
    let man = AddrMan::load(kv.clone());
    assert_eq!(man.addresses(), vec![old]);
    assert_eq!((man.new_count(), man.tried_count()), (1, 0));
    let e = man.entries[&old];
    assert_eq!((e.source, e.last_seen_ms, e.failures), (old.ip(), 5, 2));
    assert_eq!(keys(&kv), vec![b"addr/127.0.0.1:8".to_vec(), KEY_KEY.to_vec()]);
}

#[test]
fn failures_remove_new_entries_but_never_tried_ones() {
    let (kv, mut man) = fresh();
    let now = wall_ms();
    let (n, t) = (v4(1, 1, 1, 1, 80), v4(2, 2, 2, 2, 80));
    man.add(&[n], IpAddr::from([3, 3, 3, 3]), now);
    man.good(t, now);
    for _ in 0..NEW_MAX_FAILURES - 1 {
        man.failed(&n);
    }
    assert!(man.contains(&n));
    man.failed(&n);
    assert!(!man.contains(&n), "five failures forget a new entry");
    for _ in 0..50 {
        man.attempt(t, now);
        man.failed(&t);
    }
    let again = AddrMan::load(kv);
    assert_eq!(again.addresses(), vec![t]);
    assert_eq!((again.tried_count(), again.entries[&t].failures), (1, 50));
}

#[test]
fn select_honours_ok_and_both_tables() {
    let (_kv, mut man) = fresh();
    let mut rng = StdRng::seed_from_u64(2);
    assert_eq!(man.select(|_| true, &mut rng), None);
    let now = wall_ms();
    let news: Vec<SocketAddr> = (0..10).map(|i| v4(5, i, 0, 1, 80)).collect();
    man.add(&news, IpAddr::from([6, 6, 6, 6]), now);
    let tried = v4(7, 7, 7, 7, 80);
    man.good(tried, now);
    assert_eq!(man.select(|_| false, &mut rng), None);
    let one_new = man.addresses()[1]; // tried first, so this one is in new
    assert_eq!(man.select(|a| *a == one_new, &mut rng), Some(one_new));
    assert_eq!(man.select(|a| *a == tried, &mut rng), Some(tried));
    let picks: Vec<SocketAddr> =
        (0..200).map(|_| man.select(|_| true, &mut rng).unwrap()).collect();
    let from_tried = picks.iter().filter(|a| **a == tried).count();
    assert!((60..=140).contains(&from_tried), "about half from tried: {from_tried}");
}

#[test]
fn sample_is_bounded_and_skips_terrible_entries() {
    let (_kv, mut man) = fresh();
    let mut rng = StdRng::seed_from_u64(3);
    assert!(man.sample(10, &mut rng).is_empty());
    let now = wall_ms();
    man.add(&[v4(8, 8, 8, 8, 80)], IpAddr::from([9, 9, 9, 9]), now);
    assert_eq!(man.sample(10, &mut rng).len(), 1, "a small book is answered whole");
    for s in 0..60u8 {
        let addrs: Vec<SocketAddr> = (0..10).map(|i| v4(30 + s, i, 0, 1, 80)).collect();
        man.add(&addrs, IpAddr::from([70, s, 0, 1]), now);
    }
    let bad = man.addresses()[0];
    for _ in 0..3 {
        man.failed(&bad); // three failures, never a success: terrible
    }
    let known = man.len();
    assert!(known > 500, "{known}");
    let cap = (known * 23).div_ceil(100);
    assert!(cap > GETADDR_MIN);
    for _ in 0..50 {
        let s = man.sample(1000, &mut rng);
        assert_eq!(s.len(), cap, "23% of a large book");
        assert!(!s.contains(&bad));
        assert_eq!(man.sample(5, &mut rng).len(), 5);
    }
}

#[test]
fn good_demotes_the_tried_occupant_to_new() {
    let (kv, mut man) = fresh();
    let now = wall_ms();
    let first = v4(40, 40, 0, 1, 80);
    let pos = man.tried_pos(&first);
    // Same /16, so one in 8 * 32 candidates shares the slot.
    let rival = (0..=u16::MAX)
        .map(|i| v4(40, 40, (i >> 8) as u8, i as u8, 81))
        .find(|a| man.tried_pos(a) == pos)
        .expect("a colliding address among 65,536");
    man.good(first, now);
    man.good(rival, now);
    assert_eq!(man.occupant(pos), Some(rival));
    assert_eq!(man.entries[&first].pos, man.new_pos(&first, first.ip()));
    assert_eq!((man.tried_count(), man.new_count()), (1, 1));
    assert_eq!(AddrMan::load(kv).entries, man.entries);
}
