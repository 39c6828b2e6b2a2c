//! Neighbour table: liveness from hellos, RTT (RFC 6298 smoothing) and loss from their
//! acks, load from the data plane's per-neighbour counters, and the link cost the
//! strategies use.
//!
//! A neighbour is alive once one of our hellos came back (two-way), and dead once
//! nothing (hello or ack) was heard from it for `dead_count` hello intervals plus half
//! an interval of grace, so a hello that is merely late is not counted as missed.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use crate::{
    error::ProcessError, message::Message, node::NodeId, params::Params, types::NeighborInfo,
};

/// Hellos over which loss is measured.
const LOSS_WINDOW: usize = 20;
/// Cost of a link whose RTT is not known yet: pessimistic, so an unmeasured link does not
/// attract traffic from a measured one.
pub(crate) const DEFAULT_LINK_COST_US: u32 = 10_000;
/// Floor of a link cost, so hop count still counts when delays are negligible.
const MIN_LINK_COST_US: u32 = 10;
/// Time constant of the load average.
const LOAD_TAU: Duration = Duration::from_secs(1);
/// Utilisation beyond which the M/M/1 wait is capped (it diverges at 1).
const MAX_UTILISATION: f64 = 0.95;
/// Packet size assumed until packet counters say otherwise.
const DEFAULT_PACKET_BYTES: f64 = 1000.0;
/// Loss beyond which the ETX factor stops growing (cost x10).
const MAX_LOSS: f64 = 0.9;

/// Time a neighbour may stay silent before it is dead.
pub(crate) fn dead_interval(params: &Params) -> Duration {
    params
        .hello_interval
        .saturating_mul(params.dead_count)
        .saturating_add(params.hello_interval / 2)
}

/// Rounds a cost to 3 significant bits (steps of 1/8 to 1/16): costs that differ by a
/// few percent become equal, which gives ECMP a chance and keeps adverts from changing
/// at every RTT sample.
pub(crate) fn quantise_cost(us: f64) -> u32 {
    let us = us.clamp(f64::from(MIN_LINK_COST_US), f64::from(u32::MAX / 64));
    let step = (1u64 << (us.log2().floor() as u32).saturating_sub(3)) as f64;
    ((us / step).round() * step) as u32
}

#[derive(Clone, Debug)]
struct HelloRecord {
    seq: u32,
    sent: Instant,
    acked: bool,
}

#[derive(Clone, Debug, Default)]
struct LoadMeter {
    last: Option<(Instant, u64, u64)>,
    bytes_per_s: f64,
    packets_per_s: f64,
}

impl LoadMeter {
    fn sample(&mut self, now: Instant, bytes: u64, packets: u64) {
        if let Some((at, b0, p0)) = self.last
            && now > at
            && bytes >= b0
            && packets >= p0
        {
            let dt = (now - at).as_secs_f64();
            let alpha = 1.0 - (-dt / LOAD_TAU.as_secs_f64()).exp();
            self.bytes_per_s += alpha * ((bytes - b0) as f64 / dt - self.bytes_per_s);
            self.packets_per_s += alpha * ((packets - p0) as f64 / dt - self.packets_per_s);
        }
        // A counter that went backwards (data plane reloaded) just restarts the meter.
        self.last = Some((now, bytes, packets));
    }

    /// M/M/1 waiting time at the measured load on a link of `capacity_bps` bytes/s.
    fn queue_us(&self, capacity_bytes_per_s: f64) -> f64 {
        if self.bytes_per_s <= 0.0 || capacity_bytes_per_s <= 0.0 {
            return 0.0;
        }
        let rho = (self.bytes_per_s / capacity_bytes_per_s).min(MAX_UTILISATION);
        let size = if self.packets_per_s > 0.0 {
            self.bytes_per_s / self.packets_per_s
        } else {
            DEFAULT_PACKET_BYTES
        };
        let service_us = size / capacity_bytes_per_s * 1e6;
        rho / (1.0 - rho) * service_us
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Neighbor {
    pub(crate) id: NodeId,
    pub(crate) alive: bool,
    last_heard: Option<Instant>,
    srtt_us: Option<f64>,
    rttvar_us: f64,
    /// The next RTT sample starts the estimate afresh (after a death: the path may differ).
    restart_rtt: bool,
    next_seq: u32,
    hellos: VecDeque<HelloRecord>,
    loss: f64,
    load: LoadMeter,
    /// The link's capacity in Mbit/s, when the host knows it (the interface's speed);
    /// otherwise the `link_capacity_mbps` parameter prices its queueing.
    capacity_mbps: Option<f64>,
    delay_us: f64,
    cost_us: u32,
}

impl Neighbor {
    fn new(id: NodeId) -> Self {
        Self {
            id,
            alive: false,
            last_heard: None,
            srtt_us: None,
            rttvar_us: 0.0,
            restart_rtt: false,
            next_seq: 1,
            hellos: VecDeque::with_capacity(LOSS_WINDOW),
            loss: 0.0,
            load: LoadMeter::default(),
            capacity_mbps: None,
            delay_us: f64::from(DEFAULT_LINK_COST_US),
            cost_us: DEFAULT_LINK_COST_US,
        }
    }

    /// Estimated one-way delay to this neighbour: srtt/2 plus the queueing term.
    pub(crate) fn delay_us(&self) -> f64 {
        self.delay_us
    }

    /// Link cost: the delay scaled by ETX = 1/(1 - loss), quantised.
    pub(crate) fn cost_us(&self) -> u32 {
        self.cost_us
    }

    pub(crate) fn load_bps(&self) -> f64 {
        self.load.bytes_per_s
    }

    fn refresh_cost(&mut self, params: &Params) {
        let capacity = self.capacity_mbps.unwrap_or(params.link_capacity_mbps) * 1e6 / 8.0;
        self.delay_us = match self.srtt_us {
            Some(srtt) => srtt / 2.0 + self.load.queue_us(capacity),
            None => f64::from(DEFAULT_LINK_COST_US),
        };
        self.cost_us = quantise_cost(self.delay_us / (1.0 - self.loss.min(MAX_LOSS)));
    }

    fn rtt_sample(&mut self, r: f64) {
        match self.srtt_us {
            Some(srtt) if !self.restart_rtt => {
                self.rttvar_us = 0.75 * self.rttvar_us + 0.25 * (srtt - r).abs();
                self.srtt_us = Some(0.875 * srtt + 0.125 * r);
            }
            _ => {
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2.0;
                self.restart_rtt = false;
            }
        }
    }

    /// Fraction of resolved hellos (acked, or older than an RTO) that were not acked.
    fn measure_loss(&mut self, now: Instant, params: &Params) {
        let rto = self.srtt_us.map_or(Duration::ZERO, |s| {
            Duration::from_micros((s + 4.0 * self.rttvar_us) as u64)
        });
        let timeout = rto.max(params.hello_interval);
        let (mut resolved, mut lost) = (0u32, 0u32);
        for h in &self.hellos {
            if h.acked {
                resolved += 1;
            } else if h.sent + timeout <= now {
                resolved += 1;
                lost += 1;
            }
        }
        self.loss = if resolved == 0 {
            0.0
        } else {
            f64::from(lost) / f64::from(resolved)
        };
    }

    fn info(&self) -> NeighborInfo {
        NeighborInfo {
            node: self.id,
            alive: self.alive,
            srtt_us: self.srtt_us.map(|s| s.round() as u32),
            rttvar_us: self.srtt_us.map(|_| self.rttvar_us.round() as u32),
            loss: self.loss,
            load_bps: self.load.bytes_per_s,
            capacity_mbps: self.capacity_mbps,
            cost_us: self.cost_us,
        }
    }
}

/// The configured neighbours; nobody else is ever talked to.
#[derive(Clone, Debug)]
pub(crate) struct NeighborTable {
    map: BTreeMap<NodeId, Neighbor>,
    /// Our clock's origin for hello timestamps (only we read them back).
    epoch: Instant,
}

impl NeighborTable {
    pub(crate) fn new(ids: &[NodeId], me: NodeId, epoch: Instant) -> Self {
        let map = ids
            .iter()
            .filter(|id| **id != me)
            .map(|id| (*id, Neighbor::new(*id)))
            .collect();
        Self { map, epoch }
    }

    pub(crate) fn contains(&self, id: NodeId) -> bool {
        self.map.contains_key(&id)
    }

    pub(crate) fn get(&self, id: NodeId) -> Option<&Neighbor> {
        self.map.get(&id)
    }

    pub(crate) fn is_alive(&self, id: NodeId) -> bool {
        self.map.get(&id).is_some_and(|n| n.alive)
    }

    pub(crate) fn alive_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.map.values().filter(|n| n.alive).map(|n| n.id)
    }

    fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// One hello per configured neighbour, dead or alive (that is how the dead come back).
    pub(crate) fn hellos(&mut self, now: Instant, params: &Params) -> Vec<(NodeId, Message)> {
        let ids: Vec<NodeId> = self.map.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| Some((id, self.hello_to(now, id, params)?)))
            .collect()
    }

    /// A hello to one neighbour, recorded for RTT and loss.
    pub(crate) fn hello_to(
        &mut self,
        now: Instant,
        id: NodeId,
        params: &Params,
    ) -> Option<Message> {
        let sent_us = self.micros(now);
        let n = self.map.get_mut(&id)?;
        let seq = n.next_seq;
        n.next_seq = n.next_seq.wrapping_add(1);
        if n.hellos.len() == LOSS_WINDOW {
            n.hellos.pop_front();
        }
        n.hellos.push_back(HelloRecord {
            seq,
            sent: now,
            acked: false,
        });
        n.measure_loss(now, params);
        n.refresh_cost(params);
        Some(Message::Hello { seq, sent_us })
    }

    pub(crate) fn on_hello(&mut self, now: Instant, from: NodeId) {
        if let Some(n) = self.map.get_mut(&from) {
            n.last_heard = Some(now);
        }
    }

    /// Records an ack; `Ok(true)` when it brought the neighbour to life.
    pub(crate) fn on_ack(
        &mut self,
        now: Instant,
        from: NodeId,
        seq: u32,
        sent_us: u64,
        params: &Params,
    ) -> Result<bool, ProcessError> {
        let now_us = self.micros(now);
        let epoch = self.epoch;
        let n = self
            .map
            .get_mut(&from)
            .ok_or(ProcessError::Stranger { from })?;
        let rec = n
            .hellos
            .iter_mut()
            .find(|h| {
                h.seq == seq
                    && h.sent.saturating_duration_since(epoch).as_micros() as u64 == sent_us
            })
            .ok_or(ProcessError::UnknownAck { from, seq })?;
        n.last_heard = Some(now);
        if rec.acked {
            return Ok(false); // duplicate
        }
        rec.acked = true;
        n.rtt_sample(now_us.saturating_sub(sent_us) as f64);
        n.measure_loss(now, params);
        n.refresh_cost(params);
        let born = !n.alive;
        n.alive = true;
        Ok(born)
    }

    /// Declares dead every alive neighbour silent for `dead_interval`; returns them.
    pub(crate) fn expire(&mut self, now: Instant, params: &Params) -> Vec<NodeId> {
        let limit = dead_interval(params);
        let mut dead = Vec::new();
        for n in self.map.values_mut() {
            if n.alive && n.last_heard.is_none_or(|t| t + limit <= now) {
                n.alive = false;
                n.restart_rtt = true;
                dead.push(n.id);
            }
        }
        dead
    }

    /// Carrier loss: dead now, without waiting for hellos. `true` if it was alive.
    pub(crate) fn set_down(&mut self, id: NodeId) -> bool {
        match self.map.get_mut(&id) {
            Some(n) if n.alive => {
                n.alive = false;
                n.restart_rtt = true;
                n.last_heard = None;
                true
            }
            _ => false,
        }
    }

    /// When the next neighbour would be declared dead.
    pub(crate) fn next_deadline(&self, params: &Params) -> Option<Instant> {
        let limit = dead_interval(params);
        self.map
            .values()
            .filter(|n| n.alive)
            .filter_map(|n| n.last_heard.map(|t| t + limit))
            .min()
    }

    pub(crate) fn on_load(
        &mut self,
        now: Instant,
        id: NodeId,
        bytes: u64,
        packets: u64,
        params: &Params,
    ) {
        if let Some(n) = self.map.get_mut(&id) {
            n.load.sample(now, bytes, packets);
            n.refresh_cost(params);
        }
    }

    /// The link to `id` runs at `mbps` (`None`: unknown, the parameter applies).
    pub(crate) fn set_capacity(&mut self, id: NodeId, mbps: Option<f64>, params: &Params) {
        if let Some(n) = self.map.get_mut(&id) {
            n.capacity_mbps = mbps.filter(|m| *m > 0.0 && m.is_finite());
            n.refresh_cost(params);
        }
    }

    /// Re-derives every cost (after a parameter change).
    pub(crate) fn refresh(&mut self, params: &Params) {
        for n in self.map.values_mut() {
            n.refresh_cost(params);
        }
    }

    pub(crate) fn info(&self) -> Vec<NeighborInfo> {
        self.map.values().map(Neighbor::info).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (NeighborTable, Instant, NodeId) {
        let t0 = Instant::now();
        let b = NodeId::new(1, 2);
        (NeighborTable::new(&[b], NodeId::new(1, 1), t0), t0, b)
    }

    fn ack(t: &mut NeighborTable, now: Instant, b: NodeId, hello: &Message, p: &Params) -> bool {
        let Message::Hello { seq, sent_us } = hello else {
            panic!()
        };
        t.on_ack(now, b, *seq, *sent_us, p).unwrap()
    }

    #[test]
    fn rtt_is_smoothed_with_variance() {
        let (mut t, t0, b) = table();
        let p = Params::default();
        let ms = Duration::from_millis;
        let h = t.hellos(t0, &p).remove(0).1;
        assert!(
            ack(&mut t, t0 + ms(10), b, &h, &p),
            "first ack brings it alive"
        );
        let i = &t.info()[0];
        assert_eq!((i.srtt_us, i.rttvar_us), (Some(10_000), Some(5_000)));
        let h = t.hellos(t0 + ms(100), &p).remove(0).1;
        assert!(!ack(&mut t, t0 + ms(118), b, &h, &p));
        let i = &t.info()[0];
        // srtt = 7/8 * 10 + 1/8 * 18 = 11 ms; rttvar = 3/4 * 5 + 1/4 * 8 = 5.75 ms.
        assert_eq!((i.srtt_us, i.rttvar_us), (Some(11_000), Some(5_750)));
        assert_eq!(i.cost_us, quantise_cost(5_500.0));
        // A second ack of the same hello is ignored; an ack of nothing is an error.
        assert!(!ack(&mut t, t0 + ms(130), b, &h, &p));
        assert_eq!(t.info()[0].srtt_us, Some(11_000));
        assert_eq!(
            t.on_ack(t0 + ms(130), b, 99, 0, &p),
            Err(ProcessError::UnknownAck { from: b, seq: 99 })
        );
    }

    #[test]
    fn loss_counts_only_resolved_hellos() {
        let (mut t, t0, b) = table();
        let p = Params::default();
        let ms = Duration::from_millis;
        // 10 hellos, every other one answered after 2 ms.
        for i in 0..10u64 {
            let now = t0 + ms(100 * i);
            let h = t.hellos(now, &p).remove(0).1;
            if i % 2 == 0 {
                ack(&mut t, now + ms(2), b, &h, &p);
            }
        }
        // The last hello (unanswered, sent at 900 ms) is not resolved yet at 902 ms.
        assert!(
            (t.info()[0].loss - 4.0 / 9.0).abs() < 1e-9,
            "{}",
            t.info()[0].loss
        );
        let _ = t.hellos(t0 + ms(1000), &p);
        assert!(
            (t.info()[0].loss - 0.5).abs() < 1e-9,
            "{}",
            t.info()[0].loss
        );
        // Lossy link costs more (ETX): delay 1 ms / (1 - 0.5).
        assert_eq!(t.info()[0].cost_us, quantise_cost(2_000.0));
    }

    #[test]
    fn dead_after_dead_count_silent_intervals() {
        let (mut t, t0, b) = table();
        let p = Params::default();
        let ms = Duration::from_millis;
        let h = t.hellos(t0, &p).remove(0).1;
        ack(&mut t, t0 + ms(1), b, &h, &p);
        assert_eq!(t.next_deadline(&p), Some(t0 + ms(351)));
        assert!(t.expire(t0 + ms(350), &p).is_empty());
        assert_eq!(t.expire(t0 + ms(351), &p), vec![b]);
        assert!(!t.is_alive(b));
        assert_eq!(t.next_deadline(&p), None);
    }

    #[test]
    fn queueing_term_grows_with_load() {
        let (mut t, t0, b) = table();
        let p = Params::default();
        let h = t.hellos(t0, &p).remove(0).1;
        ack(&mut t, t0 + Duration::from_millis(2), b, &h, &p);
        let idle = t.get(b).unwrap().delay_us();
        // 100 MB/s of 1000-byte packets on a 125 MB/s link: rho = 0.8 -> 4 x 8 us.
        let mut now = t0;
        let (mut bytes, mut pkts) = (0u64, 0u64);
        for _ in 0..100 {
            t.on_load(now, b, bytes, pkts, &p);
            now += Duration::from_millis(100);
            bytes += 10_000_000;
            pkts += 10_000;
        }
        let busy = t.get(b).unwrap().delay_us();
        assert!((busy - idle - 32.0).abs() < 1.0, "{idle} {busy}");
        assert!((t.get(b).unwrap().load_bps() - 1e8).abs() < 1e6);
        // The interface says 10 Gbit/s: rho = 0.08 -> 0.087 x 0.8 us, the link is idle.
        t.set_capacity(b, Some(10_000.0), &p);
        let fast = t.get(b).unwrap().delay_us();
        assert!((fast - idle - 0.0696).abs() < 0.001, "{idle} {fast}");
        assert_eq!(t.info()[0].capacity_mbps, Some(10_000.0));
        // A speed of 0 is no speed: the parameter applies again.
        t.set_capacity(b, Some(0.0), &p);
        assert_eq!(t.get(b).unwrap().delay_us(), busy);
        assert_eq!(t.info()[0].capacity_mbps, None);
    }

    #[test]
    fn cost_quantisation() {
        assert_eq!(quantise_cost(1.0), 10);
        assert_eq!(quantise_cost(1000.0), 1024);
        assert_eq!(quantise_cost(1040.0), 1024);
        assert_eq!(quantise_cost(5000.0), 5120);
        assert_eq!(quantise_cost(15.0), 15);
    }
}
