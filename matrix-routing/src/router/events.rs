//! One handler per input (holo style): each checks its message, updates the concern it
//! belongs to, and returns `Err` for anything it refuses; the caller counts and logs the
//! error and carries on.

use std::time::Instant;

use crate::{
    antnet::Ctx,
    error::ProcessError,
    lsdb::Verdict,
    message::{Advert, Ant, AntKind, Message, ZoneSummary},
    node::NodeId,
    params::StrategyKind,
    qrouting::Via,
    types::Action,
};

use super::Router;

impl Router {
    pub(crate) fn process_message(&mut self, now: Instant, from: NodeId, msg: Message) {
        if !self.neighbors.contains(from) {
            self.counters.from_strangers += 1;
            tracing::debug!("{}: {}", self.me, ProcessError::Stranger { from });
            return;
        }
        let res = match msg {
            Message::Hello { seq, sent_us } => {
                self.neighbors.on_hello(now, from);
                self.send(from, Message::HelloAck { seq, sent_us });
                Ok(())
            }
            Message::HelloAck { seq, sent_us } => self.process_ack(now, from, seq, sent_us),
            Message::Advert(adv) => self.process_advert(now, from, adv),
            Message::ZoneSummary(s) => self.process_summary(now, from, s),
            Message::Ant(ant) => self.process_ant(now, from, ant),
            Message::QEstimates(batch) => self.process_estimates(now, from, &batch),
        };
        if let Err(e) = res {
            self.counters.rejected += 1;
            tracing::debug!("{}: {e}", self.me);
        }
    }

    fn process_ack(
        &mut self,
        now: Instant,
        from: NodeId,
        seq: u32,
        sent_us: u64,
    ) -> Result<(), ProcessError> {
        if self
            .neighbors
            .on_ack(now, from, seq, sent_us, &self.params)?
        {
            self.neighbor_up(now, from);
        }
        Ok(())
    }

    /// A neighbour answered for the first time (or again after dying): advertise the new
    /// link, hand it our database, and route through it.
    pub(crate) fn neighbor_up(&mut self, now: Instant, n: NodeId) {
        self.actions.push_back(Action::Neighbor {
            neighbor: n,
            alive: true,
        });
        self.originate_advert(now);
        self.originate_summary(now, false);
        self.sync_neighbor(n);
        self.topo_dirty = true;
        self.recompute(now);
    }

    /// A neighbour is dead: every route through it is repointed in this very call, then
    /// the fleet is told.
    pub(crate) fn neighbor_down(&mut self, now: Instant, n: NodeId) {
        self.actions.push_back(Action::Neighbor {
            neighbor: n,
            alive: false,
        });
        self.topo_dirty = true;
        self.recompute(now);
        self.originate_advert(now);
        self.originate_summary(now, false);
    }

    fn process_advert(
        &mut self,
        now: Instant,
        from: NodeId,
        adv: Advert,
    ) -> Result<(), ProcessError> {
        let zone = self.me.zone();
        if adv.origin == self.me {
            // Our own, from before a restart: outbid it. (Our current one coming back
            // around a cycle is just the flood's echo.)
            if adv.seq > self.advert_seq {
                self.advert_seq = adv.seq;
                self.originate_advert(now);
            }
            return Ok(());
        }
        if adv.origin.zone() != zone || from.zone() != zone {
            return Err(ProcessError::AdvertOutOfZone {
                from,
                origin: adv.origin,
                here_zone: zone,
            });
        }
        match self.lsdb.receive_advert(now, adv.clone()) {
            Verdict::New { changed, lost } => {
                self.flood(&Message::Advert(adv), Some(from), true);
                if changed {
                    self.topo_dirty = true;
                    self.topo_lost |= lost;
                    self.schedule_recompute(now);
                }
            }
            Verdict::Duplicate => {}
            Verdict::Stale(ours) => self.send(from, Message::Advert(ours)),
        }
        Ok(())
    }

    fn process_summary(
        &mut self,
        now: Instant,
        from: NodeId,
        s: ZoneSummary,
    ) -> Result<(), ProcessError> {
        if s.origin == self.me {
            if s.seq > self.summary_seq {
                self.summary_seq = s.seq;
                // Re-announce (or withdraw, if we are no border any more) above it.
                self.summary_live = true;
                self.originate_summary(now, true);
            }
            return Ok(());
        }
        match self.lsdb.receive_summary(now, s.clone()) {
            Verdict::New { changed, lost } => {
                self.flood(&Message::ZoneSummary(s), Some(from), false);
                if changed {
                    self.topo_dirty = true;
                    self.topo_lost |= lost;
                    self.schedule_recompute(now);
                }
            }
            Verdict::Duplicate => {}
            Verdict::Stale(ours) => self.send(from, Message::ZoneSummary(ours)),
        }
        Ok(())
    }

    fn process_ant(&mut self, now: Instant, from: NodeId, ant: Ant) -> Result<(), ProcessError> {
        if !self.neighbors.is_alive(from) {
            return Err(ProcessError::NotAlive { from, what: "ant" });
        }
        if self.params.strategy != StrategyKind::Antnet {
            return Ok(()); // in flight across a strategy switch
        }
        let mut ctx = Ctx {
            me: self.me,
            params: &self.params,
            neighbors: &self.neighbors,
            rng: &mut self.rng,
        };
        let next = match ant.kind {
            AntKind::Forward => self.antnet.on_forward(&mut ctx, from, ant).map(Some),
            AntKind::Backward => {
                let r = self.antnet.on_backward(&ctx, from, ant);
                self.schedule_recompute(now);
                r
            }
        };
        match next {
            Ok(Some((to, ant))) if self.neighbors.is_alive(to) => self.send(to, Message::Ant(ant)),
            Ok(Some(_)) => self.counters.ants_dropped += 1,
            Ok(None) => self.counters.ants_returned += 1,
            Err(e) => {
                self.counters.ants_dropped += 1;
                return Err(e);
            }
        }
        Ok(())
    }

    pub(crate) fn launch_ant(&mut self) {
        let mut ctx = Ctx {
            me: self.me,
            params: &self.params,
            neighbors: &self.neighbors,
            rng: &mut self.rng,
        };
        if let Some((to, ant)) = self.antnet.launch(&mut ctx, &self.demand) {
            self.counters.ants_launched += 1;
            self.send(to, Message::Ant(ant));
        }
    }

    fn process_estimates(
        &mut self,
        now: Instant,
        from: NodeId,
        batch: &[(NodeId, u32)],
    ) -> Result<(), ProcessError> {
        if !self.neighbors.is_alive(from) {
            return Err(ProcessError::NotAlive {
                from,
                what: "Q estimates",
            });
        }
        if self.params.strategy != StrategyKind::QRouting {
            return Ok(());
        }
        let via = Via {
            neighbor: from,
            cost_us: self
                .neighbors
                .get(from)
                .map_or(0.0, |n| f64::from(n.cost_us())),
        };
        let lr = self.params.q_learning_rate;
        self.qrouting
            .on_estimates(now, self.me, via, batch, lr, &self.dests);
        self.schedule_recompute(now);
        Ok(())
    }
}
