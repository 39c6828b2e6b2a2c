//! One node's agent ended and started again while the rest of the testbed runs: killed
//! as a crash would end it (SIGKILL: whatever it pinned stays), or stopped cleanly
//! (SIGTERM: it detaches and unpins), then restarted with the same config and binary.
//! The new pid and the restart count go into `state.json`, so `testbed status` shows
//! them from any process.

use super::{KILL_WAIT, STOP_GRACE, Testbed, TestbedError, agent_running, agents, state::Node};
use crate::cargo;

impl Testbed {
    /// SIGKILLs the agent of node `name` and waits until it is gone. Returns its pid.
    pub fn kill_agent(&self, name: &str) -> Result<u32, TestbedError> {
        let (node, pid) = self.running_agent(name)?;
        if agents::kill(pid, KILL_WAIT) {
            Ok(pid)
        } else {
            Err(TestbedError::AgentNotKilled {
                node: node.name.clone(),
                pid,
                waited: KILL_WAIT,
            })
        }
    }

    /// Stops the agent of node `name` cleanly (SIGTERM; SIGKILL if it has not ended
    /// 5 s later). Returns its pid.
    pub fn stop_agent(&self, name: &str) -> Result<u32, TestbedError> {
        let (node, pid) = self.running_agent(name)?;
        if !agents::stop(&[pid], STOP_GRACE).is_empty() {
            eprintln!(
                "testbed {}: SIGKILLed the agent of {} (pid {pid}), which ignored SIGTERM for {STOP_GRACE:?}",
                self.state.prefix, node.name
            );
        }
        Ok(pid)
    }

    /// Starts the agent of node `name` again, with its config and the binary the
    /// testbed was brought up with, after the previous one ended (killed, stopped or
    /// crashed), and waits until it answers on its control socket with every neighbour
    /// resolved. Records the new pid and counts the restart in `state.json`. Returns the
    /// new pid.
    pub fn restart_agent(&mut self, name: &str) -> Result<u32, TestbedError> {
        let i = self.node_index(name)?;
        let node = &self.state.nodes[i];
        if let Some(pid) = node.pid.filter(|_| agent_running(node)) {
            return Err(TestbedError::AgentRunning {
                node: node.name.clone(),
                pid,
            });
        }
        if let Some(old) = node.pid {
            agents::reap(old);
        }
        let bin = self
            .state
            .matrix_bin
            .clone()
            .unwrap_or_else(cargo::matrix_bin);
        if !bin.is_file() {
            return Err(TestbedError::MissingBinary { path: bin });
        }
        let node = &mut self.state.nodes[i];
        node.restarts += 1;
        let started = agents::start(&bin, node);
        node.pid = started.as_ref().ok().copied();
        self.save()?;
        let pid = started?;
        let node = &self.state.nodes[i];
        agents::wait_answering(&bin, node, node.underlay.len(), self.ready_timeout)?;
        Ok(pid)
    }

    /// What the current agent of node `name` has logged (since its restart, for a
    /// restarted one).
    pub fn agent_log(&self, name: &str) -> Result<String, TestbedError> {
        let i = self.node_index(name)?;
        agents::current_log(&self.state.nodes[i].log)
    }

    fn node_index(&self, name: &str) -> Result<usize, TestbedError> {
        self.state
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| TestbedError::UnknownTarget {
                prefix: self.state.prefix.clone(),
                target: name.to_string(),
                known: format!("nodes: {}", super::node_names(&self.state)),
            })
    }

    fn running_agent(&self, name: &str) -> Result<(&Node, u32), TestbedError> {
        let node = &self.state.nodes[self.node_index(name)?];
        match node.pid {
            Some(pid) if agent_running(node) => Ok((node, pid)),
            pid => Err(TestbedError::AgentNotRunning {
                node: node.name.clone(),
                pid,
            }),
        }
    }
}
