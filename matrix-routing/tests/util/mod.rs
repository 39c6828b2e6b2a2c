//! A virtual network of routers for tests: per-link delay and loss, a clock that jumps
//! to the next deadline (a message arrival or a router timer), every `Send` delivered as
//! `Received` after its link's delay, and each router's data-plane tables (routes,
//! overlay prefixes) kept from its `Install`/`Withdraw`/`Overlay` actions.
//!
//! Invariants checked on every step: messages travel only over configured links and fit
//! a datagram (they go through the real codec); within one router call, route installs
//! come before withdrawals between neighbour events (make before break); no installed
//! route keeps a next hop its router considers dead.

#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use matrix_routing::{
    Action, Codec, Envelope, Event, Message, NodeId, NodePrefix, Params, Router, RouterConfig,
};

pub fn n(zone: u32, host: u32) -> NodeId {
    NodeId::new(zone, host)
}

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[derive(Clone, Debug)]
pub struct Link {
    pub delay: Duration,
    pub up: bool,
    pub loss: f64,
}

/// What one router call produced.
#[derive(Clone, Debug)]
pub struct Batch {
    pub at: Duration,
    pub node: NodeId,
    pub actions: Vec<Action>,
}

pub struct Net {
    pub t0: Instant,
    pub now: Instant,
    pub routers: BTreeMap<NodeId, Router>,
    configs: BTreeMap<NodeId, RouterConfig>,
    links: BTreeMap<(NodeId, NodeId), Link>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    in_flight: BTreeMap<u64, (NodeId, NodeId, Message)>,
    next_msg: u64,
    codec: Codec,
    rng: u64,
    /// Each router's installed routes, as its data plane would hold them.
    pub fib: BTreeMap<NodeId, BTreeMap<NodePrefix, Vec<(NodeId, u32)>>>,
    pub overlay: BTreeMap<NodeId, BTreeMap<IpNet, NodeId>>,
    /// Every call's actions other than `Send`, in order (kept only when `record`).
    pub batches: Vec<Batch>,
    pub record: bool,
    pub messages: u64,
    /// Messages sent, by kind.
    pub kinds: BTreeMap<&'static str, u64>,
}

fn key(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl Net {
    /// Routers for every node named in `links` (`a`, `b`, one-way delay in ms).
    pub fn new(links: &[(NodeId, NodeId, u64)], params: Params) -> Self {
        Self::with_prefixes(links, params, &[])
    }

    pub fn with_prefixes(
        links: &[(NodeId, NodeId, u64)],
        params: Params,
        prefixes: &[(NodeId, &str)],
    ) -> Self {
        let t0 = Instant::now();
        let mut adj: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
        let mut table = BTreeMap::new();
        for (a, b, d) in links {
            adj.entry(*a).or_default().push(*b);
            adj.entry(*b).or_default().push(*a);
            table.insert(
                key(*a, *b),
                Link {
                    delay: ms(*d),
                    up: true,
                    loss: 0.0,
                },
            );
        }
        let configs: BTreeMap<NodeId, RouterConfig> = adj
            .iter()
            .map(|(node, nbrs)| {
                let config = RouterConfig {
                    node: *node,
                    neighbors: nbrs.clone(),
                    prefixes: prefixes
                        .iter()
                        .filter(|(o, _)| o == node)
                        .map(|(_, p)| p.parse().unwrap())
                        .collect(),
                    params: params.clone(),
                    seed: 42,
                };
                (*node, config)
            })
            .collect();
        let routers = configs
            .iter()
            .map(|(id, c)| (*id, Router::new(c.clone(), t0)))
            .collect();
        Self {
            t0,
            now: t0,
            routers,
            configs,
            links: table,
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            next_msg: 0,
            codec: Codec::new(b"test cluster key"),
            rng: 0x1234_5678,
            fib: BTreeMap::new(),
            overlay: BTreeMap::new(),
            batches: Vec::new(),
            record: false,
            messages: 0,
            kinds: BTreeMap::new(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Replaces a router by a fresh one (an agent restart), owning `prefixes` now. Its
    /// data-plane routes are kept, as pinned maps would be.
    pub fn restart(&mut self, id: NodeId, prefixes: &[&str]) {
        let config = self.configs.get_mut(&id).expect("known node");
        config.prefixes = prefixes.iter().map(|p| p.parse().unwrap()).collect();
        let fresh = Router::new(config.clone(), self.now);
        self.routers.insert(id, fresh);
        self.fib.remove(&id);
        self.drain(id);
    }

    pub fn router(&mut self, id: NodeId) -> &mut Router {
        self.routers.get_mut(&id).expect("known node")
    }

    pub fn link(&mut self, a: NodeId, b: NodeId) -> &mut Link {
        self.links.get_mut(&key(a, b)).expect("known link")
    }

    fn unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Feeds one event to a router (at the current time) and applies what it produced.
    pub fn handle(&mut self, node: NodeId, event: Event) {
        let now = self.now;
        self.router(node).handle(now, event);
        self.drain(node);
    }

    pub fn set_param(&mut self, node: NodeId, name: &str, value: &str) {
        let now = self.now;
        self.router(node).set_param(now, name, value).unwrap();
        self.drain(node);
    }

    pub fn set_param_all(&mut self, name: &str, value: &str) {
        let ids: Vec<NodeId> = self.routers.keys().copied().collect();
        for id in ids {
            self.set_param(id, name, value);
        }
    }

    /// Applies a router's pending actions and checks the invariants.
    pub fn drain(&mut self, node: NodeId) {
        let mut actions = Vec::new();
        while let Some(a) = self.router(node).poll_action() {
            actions.push(a);
        }
        // Make before break, between neighbour events.
        let mut withdrew = false;
        for a in &actions {
            match a {
                Action::Neighbor { .. } => withdrew = false,
                Action::Withdraw { .. } => withdrew = true,
                Action::Install { dst, .. } => {
                    assert!(
                        !withdrew,
                        "{node}: install of {dst} after a withdraw: {actions:?}"
                    )
                }
                _ => {}
            }
        }
        let mut kept = Vec::new();
        for a in actions {
            match a {
                Action::Send { to, msg } => self.transmit(node, to, msg),
                other => {
                    match &other {
                        Action::Install { dst, next_hops, .. } => {
                            assert!(!next_hops.is_empty() && next_hops.len() <= 4);
                            self.fib
                                .entry(node)
                                .or_default()
                                .insert(*dst, next_hops.clone());
                        }
                        Action::Withdraw { dst } => {
                            let had = self.fib.entry(node).or_default().remove(dst);
                            assert!(had.is_some(), "{node}: withdraw of {dst}, never installed");
                        }
                        Action::Overlay { prefix, owner } => {
                            self.overlay
                                .entry(node)
                                .or_default()
                                .insert(*prefix, *owner);
                        }
                        Action::OverlayWithdraw { prefix } => {
                            self.overlay.entry(node).or_default().remove(prefix);
                        }
                        _ => {}
                    }
                    kept.push(other);
                }
            }
        }
        // No route written through a neighbour this router holds dead, and none mixes
        // live and dead next hops. A route entirely through dead neighbours is one held
        // stale (its destination has no other way; the neighbour's data plane may be
        // forwarding on while its agent restarts): it was written while they lived.
        let alive: Vec<NodeId> = self.routers[&node]
            .neighbors()
            .into_iter()
            .filter(|i| i.alive)
            .map(|i| i.node)
            .collect();
        for a in &kept {
            if let Action::Install { dst, next_hops, .. } = a {
                for (h, _) in next_hops {
                    assert!(
                        alive.contains(h),
                        "{node}: route {dst} written via dead {h}"
                    );
                }
            }
        }
        for (dst, hops) in self.fib.get(&node).into_iter().flatten() {
            let live = hops.iter().filter(|(h, _)| alive.contains(h)).count();
            assert!(
                live == hops.len() || live == 0,
                "{node}: route {dst} mixes live and dead next hops: {hops:?}"
            );
        }
        if self.record && !kept.is_empty() {
            self.batches.push(Batch {
                at: self.elapsed(),
                node,
                actions: kept,
            });
        }
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, msg: Message) {
        self.messages += 1;
        *self.kinds.entry(msg.kind()).or_default() += 1;
        let link = self
            .links
            .get(&key(from, to))
            .unwrap_or_else(|| panic!("{from} sent to {to}, not a neighbour"))
            .clone();
        let bytes = self
            .codec
            .encode(&Envelope {
                from,
                epoch: 1,
                seq: self.next_msg,
                link_mac: [2, 0, 0, 0, 0, 0],
                msg,
            })
            .expect("fits a datagram");
        let Envelope { msg, .. } = self.codec.decode(&bytes).expect("decodes");
        if !link.up || self.unit() < link.loss {
            return;
        }
        let id = self.next_msg;
        self.next_msg += 1;
        self.queue.push(Reverse((self.now + link.delay, id)));
        self.in_flight.insert(id, (from, to, msg));
    }

    /// Advances to the next event (not past `limit`); `false` when there is none.
    pub fn step(&mut self, limit: Instant) -> bool {
        let next_msg = self.queue.peek().map(|Reverse((t, _))| *t);
        let next_timer = self.routers.values().filter_map(Router::poll_timeout).min();
        let Some(t) = [next_msg, next_timer].into_iter().flatten().min() else {
            return false;
        };
        if t > limit {
            return false;
        }
        self.now = self.now.max(t);
        while let Some(Reverse((at, id))) = self.queue.peek().copied() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            let (from, to, msg) = self.in_flight.remove(&id).expect("queued");
            // A link that went down meanwhile loses what was on it.
            if self.links[&key(from, to)].up {
                self.handle(to, Event::Received { from, msg });
            }
        }
        let due: Vec<NodeId> = self
            .routers
            .iter()
            .filter(|(_, r)| r.poll_timeout().is_some_and(|t| t <= self.now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let now = self.now;
            self.router(id).handle_timeout(now);
            self.drain(id);
        }
        true
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.step(end) {}
        self.now = end;
    }

    /// Longest-prefix match in `node`'s installed routes.
    pub fn lookup(&self, node: NodeId, dst: NodeId) -> Option<&Vec<(NodeId, u32)>> {
        self.fib
            .get(&node)?
            .iter()
            .filter(|(p, _)| p.contains(dst))
            .max_by_key(|(p, _)| p.len)
            .map(|(_, h)| h)
    }

    /// Follows every next hop from `src` towards `dst`: `Ok(longest path in hops)` if
    /// all branches arrive without revisiting a node, `Err` naming a loop or black hole.
    pub fn walk(&self, src: NodeId, dst: NodeId) -> Result<usize, String> {
        let mut longest = 0;
        let mut stack = vec![vec![src]];
        while let Some(path) = stack.pop() {
            let at = *path.last().unwrap();
            if at == dst {
                longest = longest.max(path.len() - 1);
                continue;
            }
            let hops = self
                .lookup(at, dst)
                .ok_or_else(|| format!("{at} has no route to {dst} (path {path:?})"))?;
            for (h, _) in hops {
                if path.contains(h) {
                    return Err(format!("loop towards {dst}: {path:?} -> {h}"));
                }
                let mut p = path.clone();
                p.push(*h);
                stack.push(p);
            }
        }
        Ok(longest)
    }

    pub fn routes_of(&self, node: NodeId) -> BTreeMap<NodePrefix, Vec<(NodeId, u32)>> {
        self.fib.get(&node).cloned().unwrap_or_default()
    }
}
