//! What a batch of frames must have counted: the COUNTERS growth the frames' results call
//! for, checked once per batch (reading the per-CPU counters after every frame would be
//! slow).

use matrix_common::{
    COUNTER_SLOTS, DROP_NAMES, PATH_DECAP, PATH_ENCAP, PATH_PASSTHROUGH, PATH_TRANSIT,
    VERDICT_ABORTED, VERDICT_DROP, VERDICT_PASS, VERDICT_REDIRECT, VERDICT_TX,
};

use super::oracle::Faults;
use crate::fixtures::{Action, Prog};

/// What a batch of frames must have added to COUNTERS, from what the oracle saw them get:
/// the verdict slots one per frame by action, the path slots by what happened, and the
/// drop reasons, together, one per drop. Never an aborted verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub frames: u64,
    /// Frames by XDP action code.
    pub actions: [u64; 5],
    /// Frames by path slot (transit, encap, decap, passthrough).
    pub paths: [u64; 4],
}

const PATHS: [u32; 4] = [PATH_TRANSIT, PATH_ENCAP, PATH_DECAP, PATH_PASSTHROUGH];

impl Tally {
    /// Adds a frame that `prog` ended with `action`, `output` left of `input`, whatever
    /// the oracle said of it.
    pub fn add(&mut self, prog: Prog, input: &[u8], action: u32, output: &[u8]) {
        self.frames += 1;
        let Some(a) = Action::from_code(action) else {
            return;
        };
        self.actions[a as usize] += 1;
        let path = match (a, prog) {
            (Action::Pass, _) if output == input => PATH_PASSTHROUGH,
            (Action::Pass, _) => PATH_DECAP,
            (Action::Tx | Action::Redirect, Prog::Underlay) => PATH_TRANSIT,
            (Action::Tx | Action::Redirect, _) => PATH_ENCAP,
            _ => return,
        };
        let i = PATHS.iter().position(|p| *p == path).expect("a path slot");
        self.paths[i] += 1;
    }

    /// Compares `delta`, COUNTERS' growth over the frames of this tally, with what those
    /// frames must have counted.
    pub fn check(&self, delta: &[u64]) -> Faults {
        let mut f = Vec::new();
        if delta.len() != COUNTER_SLOTS as usize {
            return vec![format!(
                "{} counter slots, not {COUNTER_SLOTS}",
                delta.len()
            )];
        }
        let verdicts = [
            (VERDICT_ABORTED, "aborted", 0),
            (VERDICT_DROP, "drop", self.actions[Action::Drop as usize]),
            (VERDICT_PASS, "pass", self.actions[Action::Pass as usize]),
            (VERDICT_TX, "tx", self.actions[Action::Tx as usize]),
            (
                VERDICT_REDIRECT,
                "redirect",
                self.actions[Action::Redirect as usize],
            ),
        ];
        let names = ["transit", "encap", "decap", "passthrough"];
        let paths = PATHS.iter().zip(names).zip(self.paths);
        let paths = paths.map(|((slot, name), n)| (*slot, name, n));
        for (slot, name, want) in verdicts.into_iter().chain(paths) {
            let got = delta[slot as usize];
            if got != want {
                f.push(format!(
                    "COUNTERS[{name}] +{got}, the frames ended {name} {want} times"
                ));
            }
        }
        let reasons: u64 = DROP_NAMES.iter().map(|(s, _)| delta[*s as usize]).sum();
        let drops = self.actions[Action::Drop as usize];
        if reasons != drops {
            f.push(format!(
                "drop reasons counted +{reasons}, the frames were dropped {drops} times"
            ));
        }
        f
    }
}
