use std::collections::BTreeSet;
use std::sync::Arc;

/// The TCP ports a swarm steers itself through: this agent's public and service ports, its Consul agent's, and
/// its peers' tarsier ports. A network fault never touches them unless its command says `cut_control_plane`,
/// so `/abort` and `/health` always get through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlPlane {
    /// This agent's public port: what its network faults are named after (ports are unique within a network
    /// namespace, so two agents sharing one never touch each other's faults).
    pub public_port: u16,
    /// Every port above (this agent's two among them), sorted.
    pub ports: BTreeSet<u16>,
    /// An agent of a local swarm (`tarsier swarm`, in one process or in processes of its own): it shares the
    /// machine's own network with the others, so faults on that network are refused there.
    pub local_swarm: bool,
}

/// How a command reads the control plane when it needs it: peers come and go, so it is read at that moment,
/// not copied into every job's context.
#[derive(Clone)]
pub struct ControlPlaneSource(Arc<dyn Fn() -> ControlPlane + Send + Sync>);

impl ControlPlaneSource {
    pub fn new(read: impl Fn() -> ControlPlane + Send + Sync + 'static) -> Self {
        Self(Arc::new(read))
    }

    pub fn read(&self) -> ControlPlane {
        (self.0)()
    }
}

impl Default for ControlPlaneSource {
    fn default() -> Self {
        Self::new(ControlPlane::default)
    }
}
