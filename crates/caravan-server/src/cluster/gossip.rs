//! Gossip among servers on the serf port: SWIM membership (foca) with
//! Nomad's member names and tags, `alive`/`failed`/`left` states, join and
//! force-leave.
//!
//! One task owns the SWIM state and the UDP socket; others read the member
//! list through a watch channel and send it commands. A member's tags ride
//! in its identity, so whoever learns of a member learns its tags with it.
//!
//! With a gossip key (`encrypt`) every datagram is sealed with the
//! keyring's primary key and every one received must open with one of its
//! keys ([`crate::cluster::keyring`]); others are dropped before foca sees them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foca::{
    AccumulatingRuntime, Config, Foca, Member, NoCustomBroadcast, OwnedNotification, PostcardCodec,
    State, Timer,
};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};

use crate::cluster::keyring::{Dropped, Keyring, OVERHEAD};
use crate::cluster::membership::{MemberView, SerfStatus};
use crate::raft::types::ServerNode;

/// Serf's default port.
pub const DEFAULT_SERF_PORT: u16 = 4648;

/// A member's identity on the wire. Field order matters: the derived order
/// decides which of two identities for one address wins (newer generation
/// first, then `leaving`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// Milliseconds since the epoch at start (bumped to rejoin).
    pub generation: u64,
    /// Set on the identity a member leaves with (or is force-left with).
    pub leaving: bool,
    /// The advertised gossip address.
    pub addr: SocketAddr,
    /// `<node>.<region>`.
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

impl NodeId {
    /// The destination of a join: only the address matters to the receiver.
    fn seed(addr: SocketAddr) -> Self {
        Self {
            generation: 0,
            leaving: false,
            addr,
            name: String::new(),
            tags: BTreeMap::new(),
        }
    }

    fn bumped(&self) -> Self {
        Self {
            generation: (self.generation + 1).max(now_ms()),
            ..self.clone()
        }
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.generation)?;
        if self.leaving {
            write!(f, "(left)")?;
        }
        Ok(())
    }
}

impl foca::Identity for NodeId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        if self.leaving {
            None
        } else {
            Some(self.bumped())
        }
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self > adversary
    }
}

/// A gossip member as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipMember {
    pub name: String,
    pub addr: SocketAddr,
    pub tags: BTreeMap<String, String>,
    pub status: SerfStatus,
}

impl GossipMember {
    fn of(id: &NodeId, status: SerfStatus) -> Self {
        Self {
            name: id.name.clone(),
            addr: id.addr,
            tags: id.tags.clone(),
            status,
        }
    }

    /// The server this member is, when its tags say it is a Nomad server.
    pub fn server_node(&self) -> Option<ServerNode> {
        if self.tags.get("role").map(String::as_str) != Some("nomad") {
            return None;
        }
        let id = self.tags.get("id")?.clone();
        let port = self.tags.get("port")?;
        let ip = self
            .tags
            .get("rpc_addr")
            .cloned()
            .unwrap_or_else(|| self.addr.ip().to_string());
        let rpc_addr = match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            _ => format!("{ip}:{port}"),
        };
        Some(ServerNode {
            id,
            name: self.name.clone(),
            rpc_addr,
            http_addr: self.tags.get("http_addr").cloned().unwrap_or_default(),
        })
    }
}

/// How to start gossip.
#[derive(Debug, Clone)]
pub struct GossipOptions {
    /// `<node>.<region>`.
    pub name: String,
    pub region: String,
    pub bind: SocketAddr,
    pub advertise: SocketAddr,
    pub tags: BTreeMap<String, String>,
    /// Addresses to keep trying to join while alone (`retry_join`).
    pub seeds: Vec<String>,
    /// How many servers the cluster is expected to have (tunes timings).
    pub expected_servers: u32,
    /// The gossip key (`encrypt`), decoded; `None` gossips in plaintext
    /// unless the keyring file holds keys.
    pub encrypt: Option<Vec<u8>>,
    /// Where the keyring persists (Nomad's `<data_dir>/server/serf/keyring`).
    pub keyring_file: Option<PathBuf>,
}

enum Command {
    Announce(Vec<SocketAddr>),
    ForceLeave {
        name: String,
        prune: bool,
        reply: oneshot::Sender<Option<GossipMember>>,
    },
    Leave(oneshot::Sender<()>),
}

/// Handle to the gossip task.
pub struct Gossip {
    commands: mpsc::Sender<Command>,
    view: watch::Receiver<Vec<GossipMember>>,
    region: String,
    local_addr: SocketAddr,
    keyring: Arc<RwLock<Keyring>>,
}

/// Resolves `host[:port]`, defaulting to the serf port.
pub async fn resolve_gossip_address(address: &str) -> Result<SocketAddr, String> {
    caravan_rpc::address::resolve(address, DEFAULT_SERF_PORT)
        .await
        .map_err(|error| error.to_string())
}

impl Gossip {
    /// Binds the serf port and starts gossiping.
    pub async fn start(options: GossipOptions) -> std::io::Result<Arc<Self>> {
        let keyring = Keyring::load(options.encrypt.as_deref(), options.keyring_file.as_deref())
            .map_err(std::io::Error::other)?;
        let keyring = Arc::new(RwLock::new(keyring));
        let socket = UdpSocket::bind(options.bind).await?;
        let me = NodeId {
            generation: now_ms(),
            leaving: false,
            addr: options.advertise,
            name: options.name.clone(),
            tags: options.tags.clone(),
        };
        // Join addresses may be names that do not resolve yet (peers still
        // starting): they are resolved again on every attempt.
        let seeds = options.seeds.clone();
        let (view_sender, view) = watch::channel(vec![GossipMember::of(&me, SerfStatus::Alive)]);
        let (commands, receiver) = mpsc::channel(64);
        let cluster_size =
            NonZeroU32::new(options.expected_servers.max(3)).unwrap_or(NonZeroU32::MIN);
        let mut config = Config::new_lan(cluster_size);
        // Room for the sealing overhead within the same datagram size.
        config.max_packet_size =
            NonZeroUsize::new(config.max_packet_size.get() - OVERHEAD).unwrap_or(NonZeroUsize::MIN);
        let shared = Arc::clone(&keyring);
        tokio::spawn(run(
            socket,
            me,
            seeds,
            config,
            receiver,
            view_sender,
            shared,
        ));
        Ok(Arc::new(Self {
            commands,
            view,
            region: options.region,
            local_addr: options.advertise,
            keyring,
        }))
    }

    /// Every member this server knows, itself included.
    pub fn members(&self) -> Vec<GossipMember> {
        self.view.borrow().clone()
    }

    /// This server's own member entry.
    pub fn local_member(&self) -> GossipMember {
        self.members()
            .into_iter()
            .find(|member| member.addr == self.local_addr)
            .unwrap_or_else(|| GossipMember {
                name: String::new(),
                addr: self.local_addr,
                tags: BTreeMap::new(),
                status: SerfStatus::Alive,
            })
    }

    /// Regions with at least one alive server.
    pub fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = self
            .members()
            .iter()
            .filter(|member| member.status == SerfStatus::Alive)
            .filter_map(|member| member.tags.get("region").cloned())
            .collect();
        regions.sort();
        regions.dedup();
        regions
    }

    /// Joins the members at `addresses`; answers how many were reached and
    /// what failed. Gossip is UDP, so a join counts once the peer shows up
    /// alive in the member list.
    pub async fn join(&self, addresses: &[String]) -> (usize, Vec<String>) {
        let mut errors = Vec::new();
        let mut targets = Vec::new();
        for address in addresses {
            match resolve_gossip_address(address).await {
                Ok(addr) if addr == self.local_addr => targets.push(addr),
                Ok(addr) => targets.push(addr),
                Err(error) => errors.push(error),
            }
        }
        let mut view = self.view.clone();
        if self
            .commands
            .send(Command::Announce(targets.clone()))
            .await
            .is_err()
        {
            errors.push("gossip is not running".to_string());
            return (0, errors);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let joined: HashSet<SocketAddr> = view
                .borrow()
                .iter()
                .filter(|member| member.status == SerfStatus::Alive)
                .map(|member| member.addr)
                .collect();
            let reached = targets
                .iter()
                .filter(|target| joined.contains(target))
                .count();
            if reached == targets.len() || Instant::now() >= deadline {
                for target in targets.iter().filter(|target| !joined.contains(target)) {
                    errors.push(format!("failed to join {target}: no answer"));
                }
                return (reached, errors);
            }
            tokio::select! {
                _ = view.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Marks a failed member as left (Nomad's force-leave); with `prune` it
    /// is dropped from the member list at once. Answers the member, if known.
    /// A member gossip sees alive is left alone, as Serf's member refutes
    /// the leave: it is answered with its `alive` status.
    pub async fn force_leave(&self, name: &str, prune: bool) -> Option<GossipMember> {
        let (reply, answer) = oneshot::channel();
        let command = Command::ForceLeave {
            name: name.to_string(),
            prune,
            reply,
        };
        self.commands.send(command).await.ok()?;
        answer.await.ok().flatten()
    }

    /// The installed gossip keys, primary first; `None` when gossip is not
    /// encrypted.
    pub fn keyring_list(&self) -> Option<Vec<String>> {
        let keyring = self.keyring.read().unwrap_or_else(|e| e.into_inner());
        keyring.enabled().then(|| keyring.list())
    }

    /// Installs a gossip key for decryption (this agent only).
    pub fn keyring_install(&self, key: &str) -> Result<(), String> {
        self.keyring_write().install(key)
    }

    /// Makes an installed key the one gossip encrypts with.
    pub fn keyring_use(&self, key: &str) -> Result<(), String> {
        self.keyring_write().use_key(key)
    }

    /// Removes an installed key other than the primary one.
    pub fn keyring_remove(&self, key: &str) -> Result<(), String> {
        self.keyring_write().remove(key)
    }

    fn keyring_write(&self) -> std::sync::RwLockWriteGuard<'_, Keyring> {
        self.keyring.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves the cluster gracefully (peers see this server as `left`).
    pub async fn leave(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Leave(reply)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), done).await;
        }
    }
}

impl MemberView for Gossip {
    fn serf_status(&self, node_id: &str) -> SerfStatus {
        self.members()
            .iter()
            .find(|member| member.tags.get("id").map(String::as_str) == Some(node_id))
            .map_or(SerfStatus::None, |member| member.status)
    }

    fn alive_servers(&self) -> Vec<ServerNode> {
        self.members()
            .iter()
            .filter(|member| member.status == SerfStatus::Alive)
            .filter(|member| member.tags.get("region") == Some(&self.region))
            .filter_map(GossipMember::server_node)
            .collect()
    }

    fn version_of(&self, node_id: &str) -> String {
        self.members()
            .iter()
            .find(|member| member.tags.get("id").map(String::as_str) == Some(node_id))
            .and_then(|member| member.tags.get("build").cloned())
            .unwrap_or_default()
    }
}

type Swim = Foca<NodeId, PostcardCodec, rand010::rngs::StdRng, NoCustomBroadcast>;
type Runtime = AccumulatingRuntime<NodeId>;
type Timers = BinaryHeap<Reverse<(Instant, Timer<NodeId>)>>;

struct Actor {
    foca: Swim,
    runtime: Runtime,
    timers: Timers,
    socket: UdpSocket,
    view: watch::Sender<Vec<GossipMember>>,
    /// Addresses pruned by force-leave, with the generation pruned: every
    /// identity of that address up to it stays hidden; a newer one (the
    /// server restarted) shows again.
    pruned: BTreeMap<SocketAddr, u64>,
    keyring: Arc<RwLock<Keyring>>,
    /// Datagrams dropped since the last report, and when that was.
    dropped: u64,
    dropped_reported: Option<Instant>,
}

async fn run(
    socket: UdpSocket,
    me: NodeId,
    seeds: Vec<String>,
    config: Config,
    mut commands: mpsc::Receiver<Command>,
    view: watch::Sender<Vec<GossipMember>>,
    keyring: Arc<RwLock<Keyring>>,
) {
    // Peers may use foca's full packet size plus the sealing.
    let mut buffer = vec![0u8; config.max_packet_size.get() + 2 * OVERHEAD + 64];
    let rng: rand010::rngs::StdRng = rand010::make_rng();
    let mut actor = Actor {
        foca: Foca::new(me, config, rng, PostcardCodec),
        runtime: AccumulatingRuntime::new(),
        timers: BinaryHeap::new(),
        socket,
        view,
        pruned: BTreeMap::new(),
        keyring,
        dropped: 0,
        dropped_reported: None,
    };
    let mut seeds = seeds;
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let next = actor.timers.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            received = actor.socket.recv_from(&mut buffer) => {
                if let Ok((length, from)) = received {
                    let opened = actor
                        .keyring
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .open(&buffer[..length]);
                    match opened {
                        Ok(data) => {
                            if let Err(error) = actor.foca.handle_data(&data, &mut actor.runtime) {
                                tracing::trace!(?error, "gossip packet ignored");
                            }
                        }
                        Err(reason) => actor.count_dropped(from, reason),
                    }
                }
            }
            _ = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                while actor.timers.peek().is_some_and(|Reverse((at, _))| *at <= now) {
                    if let Some(Reverse((_, timer))) = actor.timers.pop() {
                        let _ = actor.foca.handle_timer(timer, &mut actor.runtime);
                    }
                }
            }
            _ = tick.tick() => {
                // Alone: keep announcing to the join addresses and to members
                // we lost, which also heals after a partition.
                if actor.foca.num_members() == 0 {
                    // Resolved without blocking the runtime: a seed may be a
                    // name whose lookup takes seconds.
                    let mut resolved: Vec<SocketAddr> = Vec::new();
                    for seed in &seeds {
                        if let Ok(address) = resolve_gossip_address(seed).await {
                            resolved.push(address);
                        }
                    }
                    actor.announce_to(&resolved);
                    let lost: Vec<NodeId> = actor
                        .foca
                        .iter_membership_state()
                        .filter(|member| member.state() == State::Down && !member.id().leaving)
                        .filter(|member| member.id().addr != actor.foca.identity().addr)
                        .map(|member| member.id().clone())
                        .collect();
                    for id in lost {
                        let _ = actor.foca.announce(id, &mut actor.runtime);
                    }
                }
                actor.publish();
            }
            command = commands.recv() => match command {
                None => return,
                Some(Command::Announce(targets)) => {
                    for target in &targets {
                        let target = target.to_string();
                        if !seeds.contains(&target) {
                            seeds.push(target);
                        }
                    }
                    actor.announce_to(&targets);
                }
                Some(Command::ForceLeave { name, prune, reply }) => {
                    let _ = reply.send(actor.force_leave(&name, prune));
                }
                Some(Command::Leave(done)) => {
                    let mut leaving = actor.foca.identity().clone();
                    leaving.leaving = true;
                    let _ = actor.foca.change_identity(leaving, &mut actor.runtime);
                    let _ = actor.foca.leave_cluster(&mut actor.runtime);
                    let _ = actor.foca.gossip(&mut actor.runtime);
                    actor.flush().await;
                    let _ = done.send(());
                    return;
                }
            },
        }
        actor.flush().await;
    }
}

impl Actor {
    /// Counts a datagram that did not open; reports at most every 10 s.
    fn count_dropped(&mut self, from: SocketAddr, reason: Dropped) {
        self.dropped += 1;
        let due = self
            .dropped_reported
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10));
        if due {
            tracing::debug!(
                %from,
                ?reason,
                dropped = self.dropped,
                "gossip datagrams dropped: not sealed with an installed key"
            );
            self.dropped = 0;
            self.dropped_reported = Some(Instant::now());
        }
    }

    fn announce_to(&mut self, targets: &[SocketAddr]) {
        let own = self.foca.identity().addr;
        for target in targets.iter().filter(|target| **target != own) {
            let _ = self.foca.announce(NodeId::seed(*target), &mut self.runtime);
        }
    }

    fn force_leave(&mut self, name: &str, prune: bool) -> Option<GossipMember> {
        let own = self.foca.identity().addr;
        let current = self
            .foca
            .iter_membership_state()
            .filter(|member| member.id().name == name && member.id().addr != own)
            .max_by(|a, b| a.id().cmp(b.id()))
            .map(|member| (member.id().clone(), member.state()))?;
        let (id, state) = current;
        if !id.leaving && matches!(state, State::Alive | State::Suspect) {
            tracing::info!(member = ?id, "force-leave ignored: the member is alive");
            return Some(GossipMember::of(&id, SerfStatus::Alive));
        }
        let mut gone = id.clone();
        if !gone.leaving {
            gone.leaving = true;
            let _ = self.foca.apply_many(
                std::iter::once(Member::down(gone.clone())),
                true,
                &mut self.runtime,
            );
            let _ = self.foca.gossip(&mut self.runtime);
        }
        if prune {
            self.pruned.insert(gone.addr, gone.generation);
        }
        self.publish();
        Some(GossipMember::of(&gone, SerfStatus::Left))
    }

    async fn flush(&mut self) {
        let now = Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timers.push(Reverse((now + after, timer)));
        }
        while let Some((to, data)) = self.runtime.to_send() {
            let data = self
                .keyring
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .seal(&data);
            if let Err(error) = self.socket.send_to(&data, to.addr).await {
                tracing::trace!(%error, "gossip send failed");
            }
        }
        let mut changed = false;
        while let Some(notification) = self.runtime.to_notify() {
            changed = true;
            match notification {
                OwnedNotification::MemberUp(id) => tracing::info!(member = ?id, "gossip member up"),
                OwnedNotification::MemberDown(id) => {
                    tracing::info!(member = ?id, left = id.leaving, "gossip member down")
                }
                OwnedNotification::Idle => tracing::debug!("gossip: no live peers"),
                _ => {}
            }
        }
        if changed {
            self.publish();
        }
    }

    fn publish(&self) {
        let me = self.foca.identity();
        // One entry per address: the newest identity foca knows for it.
        let mut newest: BTreeMap<SocketAddr, (NodeId, State)> = BTreeMap::new();
        for member in self.foca.iter_membership_state() {
            let id = member.id();
            let pruned = self
                .pruned
                .get(&id.addr)
                .is_some_and(|generation| id.generation <= *generation);
            if id.addr == me.addr || pruned {
                continue;
            }
            let replace = newest.get(&id.addr).is_none_or(|(known, _)| id > known);
            if replace {
                newest.insert(id.addr, (id.clone(), member.state()));
            }
        }
        let mut members: Vec<GossipMember> = newest
            .values()
            .map(|(id, state)| {
                let status = match state {
                    State::Alive | State::Suspect => SerfStatus::Alive,
                    State::Down if id.leaving => SerfStatus::Left,
                    State::Down => SerfStatus::Failed,
                };
                GossipMember::of(id, status)
            })
            .collect();
        members.push(GossipMember::of(me, SerfStatus::Alive));
        members.sort_by(|a, b| a.name.cmp(&b.name));
        self.view.send_replace(members);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_generations_and_leaving_win() {
        let addr: SocketAddr = "127.0.0.1:4648".parse().unwrap();
        let old = NodeId {
            generation: 1,
            leaving: false,
            addr,
            name: "a.global".into(),
            tags: BTreeMap::new(),
        };
        let left = NodeId {
            leaving: true,
            ..old.clone()
        };
        let restarted = NodeId {
            generation: 2,
            ..old.clone()
        };
        use foca::Identity;
        assert!(left.win_addr_conflict(&old));
        assert!(restarted.win_addr_conflict(&left));
        assert!(left.renew().is_none());
        assert!(old.renew().unwrap().generation > old.generation);
    }

    #[test]
    fn identities_fit_a_packet() {
        use foca::Codec;
        let id = NodeId {
            generation: now_ms(),
            leaving: false,
            addr: "10.0.0.1:4648".parse().unwrap(),
            name: "server-with-a-long-name.global".into(),
            tags: [
                ("role", "nomad"),
                ("region", "global"),
                ("dc", "dc1"),
                ("build", "1.10.0+caravan.0.1.0"),
                ("vsn", "1"),
                ("raft_vsn", "3"),
                ("id", "7da9bb17-1272-460f-8ffc-3229aead8ff5"),
                ("rpc_addr", "10.0.0.1"),
                ("port", "4647"),
                ("expect", "3"),
                ("http_addr", "10.0.0.1:4646"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        };
        let mut buffer = Vec::new();
        PostcardCodec
            .encode_member(&Member::alive(id), &mut buffer)
            .unwrap();
        assert!(buffer.len() < 300, "{} bytes", buffer.len());
    }

    async fn start(name: &str, seeds: Vec<String>) -> Arc<Gossip> {
        start_keyed(name, seeds, None).await
    }

    async fn start_keyed(name: &str, seeds: Vec<String>, key: Option<Vec<u8>>) -> Arc<Gossip> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        drop(socket);
        let tags = BTreeMap::from([
            ("role".to_string(), "nomad".to_string()),
            ("region".to_string(), "global".to_string()),
            ("id".to_string(), format!("{name}-id")),
            ("port".to_string(), "4647".to_string()),
        ]);
        Gossip::start(GossipOptions {
            name: format!("{name}.global"),
            region: "global".into(),
            bind: addr,
            advertise: addr,
            tags,
            seeds,
            expected_servers: 3,
            encrypt: key,
            keyring_file: None,
        })
        .await
        .unwrap()
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn status_of(gossip: &Gossip, name: &str) -> Option<SerfStatus> {
        gossip
            .members()
            .into_iter()
            .find(|member| member.name == name)
            .map(|member| member.status)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_join_leave_and_get_forced_out() {
        let a = start("a", vec![]).await;
        let seed = a.local_member().addr.to_string();
        let b = start("b", vec![seed.clone()]).await;
        let c = start("c", vec![]).await;
        let (joined, errors) = c.join(&[seed]).await;
        assert_eq!((joined, errors.len()), (1, 0), "{errors:?}");
        for gossip in [&a, &b, &c] {
            eventually("three alive members", || {
                gossip
                    .members()
                    .iter()
                    .filter(|m| m.status == SerfStatus::Alive)
                    .count()
                    == 3
            })
            .await;
        }
        assert_eq!(a.alive_servers().len(), 3);
        assert_eq!(a.serf_status("b-id"), SerfStatus::Alive);
        assert_eq!(a.regions(), ["global"]);

        b.leave().await;
        eventually("b seen as left", || {
            status_of(&a, "b.global") == Some(SerfStatus::Left)
        })
        .await;
        eventually("c sees b left", || {
            status_of(&c, "b.global") == Some(SerfStatus::Left)
        })
        .await;

        let pruned = a.force_leave("b.global", true).await;
        assert!(pruned.is_some());
        assert_eq!(status_of(&a, "b.global"), None);
        assert!(a.force_leave("nobody.global", false).await.is_none());

        let (joined, errors) = a.join(&["127.0.0.1:1".to_string()]).await;
        assert_eq!(joined, 0);
        assert_eq!(errors.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_members_with_the_key_join() {
        let key = vec![9u8; 32];
        let a = start_keyed("a", vec![], Some(key.clone())).await;
        let seed = a.local_member().addr.to_string();
        let b = start_keyed("b", vec![seed.clone()], Some(key)).await;
        let wrong = start_keyed("w", vec![seed.clone()], Some(vec![8u8; 16])).await;
        let plain = start("p", vec![seed.clone()]).await;
        eventually("a and b alive", || {
            status_of(&a, "b.global") == Some(SerfStatus::Alive)
                && status_of(&b, "a.global") == Some(SerfStatus::Alive)
        })
        .await;
        let (joined, _) = plain.join(&[seed]).await;
        assert_eq!(joined, 0);
        for outsider in ["w.global", "p.global"] {
            assert_eq!(status_of(&a, outsider), None);
            assert_eq!(status_of(&b, outsider), None);
        }
        assert_eq!(wrong.members().len(), 1);
        assert_eq!(plain.members().len(), 1);
        // A live member is not forced out.
        let answer = a.force_leave("b.global", true).await.unwrap();
        assert_eq!(answer.status, SerfStatus::Alive);
        assert_eq!(status_of(&a, "b.global"), Some(SerfStatus::Alive));
    }

    #[tokio::test]
    async fn gossip_addresses_default_the_serf_port() {
        assert_eq!(
            resolve_gossip_address("10.1.1.1")
                .await
                .unwrap()
                .to_string(),
            "10.1.1.1:4648"
        );
        assert_eq!(
            resolve_gossip_address("10.1.1.1:99")
                .await
                .unwrap()
                .to_string(),
            "10.1.1.1:99"
        );
    }
}
