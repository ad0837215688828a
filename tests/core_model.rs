//! Model-based fuzzing of the core: random sequences of operations drive a real base on the
//! mocks (manual clock, scripted poller, counting notifier) and a simple reference model of
//! libevent's semantics side by side; every observable is compared after every step: each
//! call's result, the callbacks a run makes (which events, why, in what order by priority and
//! FIFO), the counts, and what the poller has registered.
//!
//! - `cargo test --test core_model` runs a fast seeded slice.
//! - `scripts/fuzz.sh [OPS] [FIRST_SEED]` runs millions of operations (release build).
//!
//! A failure prints its seed and step; add the seed to `REGRESSIONS` to keep it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rouse_core::mock::{self, ManualClock, Notifier};
use rouse_core::{
    Base, CommonTimeout, Config, Error, Event, Fired, Fixed, Interest, Key, Kind, NoLock, Options,
    Readiness, Ready, RunFlags, Source,
};

/// One clock for every harness (they run one after another); the model starts from its
/// reading.
static CLOCK: ManualClock = ManualClock::new();
/// Likewise one notifier (nothing in the model notifies: the loop never blocks).
static NOTIFIER: Notifier = Notifier::new();

struct Cfg;
impl Config for Cfg {
    type Lock = NoLock;
    type Notifier = &'static Notifier;
    type Poller = mock::Poller;
    type Clock = &'static ManualClock;
    type Storage = Fixed<CAP>;
    type Callback = Box<dyn FnMut(&Base<Cfg>, Fired) + Send>;
    fn thread_id() -> usize {
        0
    }
}
const CAP: usize = 64;
const PRIOS: u8 = 3;
const SOURCES: u32 = 6;
const SIGNALS: u32 = 3;
const CTS: [u64; 2] = [3_000_000, 7_000_000];
const NO_TIME: u64 = u64::MAX;

/// (seed, operations) that once found a bug; they run first in every slice.
/// - (1, 21_800): a new event entering a source emptied in the same iteration made the base
///   forget the kernel's registration; when that event left too, the registration stayed in
///   the kernel (a level-triggered fd would have woken the loop forever).
const REGRESSIONS: &[(u64, u64)] = &[(1, 21_800)];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The model of one event.
#[derive(Clone, Debug)]
struct M {
    kind: Kind,
    persist: bool,
    prio: u8,
    pending: bool,
    /// Queued: (FIFO sequence, reasons).
    queued: Option<(u64, Ready)>,
    /// Armed deadline (ns) and how it re-arms.
    deadline: Option<u64>,
    interval: u64,
    ct: Option<usize>,
    finalizing: bool,
    /// Queued during a pass at the running priority or below: waits for the next poll.
    later: bool,
    /// What its callback does when it runs for a reason other than a timeout: activate this
    /// model id (itself, another event, or one that is gone), this many more times.
    action: Option<(u32, u32)>,
}

/// The reference model: plain collections, no cleverness.
struct Model {
    ev: BTreeMap<u32, M>,                  // by model id
    lists: HashMap<(bool, u32), Vec<u32>>, // (is_signal, source) -> ids, most recent first
    seq: u64,
    now: u64,
}

impl Model {
    fn key_of_list(m: &M) -> Option<(bool, u32)> {
        match m.kind {
            Kind::Io(s, _) => Some((false, s.id())),
            Kind::Signal(n) => Some((true, n)),
            _ => None,
        }
    }

    fn enqueue(&mut self, id: u32, r: Ready) -> bool {
        let seq = self.seq;
        let m = self.ev.get_mut(&id).unwrap();
        match &mut m.queued {
            Some((_, bits)) => {
                *bits |= r;
                false
            }
            None => {
                m.queued = Some((seq, r));
                m.later = false;
                self.seq += 1;
                true
            }
        }
    }

    /// An activation made by a callback of a pass at priority `running`: one of higher
    /// priority ends the pass (returns `true`); one at `running` or below waits for the next
    /// poll.
    fn activate_in_pass(&mut self, id: u32, running: u8) -> bool {
        let Some(m) = self.ev.get(&id) else {
            return false;
        };
        if m.finalizing {
            return false; // its key is stale
        }
        let prio = m.prio;
        if !self.enqueue(id, Ready::USER) {
            return false; // already queued: the reasons merge
        }
        if prio < running {
            return true;
        }
        self.ev.get_mut(&id).unwrap().later = true;
        false
    }

    /// The events queued during the last pass join their queues, in the order they came.
    fn promote_later(&mut self) {
        let mut later: Vec<(u64, u32)> = self
            .ev
            .iter()
            .filter(|(_, m)| m.later)
            .map(|(id, m)| (m.queued.unwrap().0, *id))
            .collect();
        later.sort();
        for (_, id) in later {
            let seq = self.seq;
            self.seq += 1;
            let m = self.ev.get_mut(&id).unwrap();
            m.later = false;
            m.queued.as_mut().unwrap().0 = seq;
        }
    }

    fn unschedule(&mut self, id: u32) {
        let m = self.ev.get_mut(&id).unwrap();
        if m.pending {
            m.pending = false;
            m.deadline = None;
            m.ct = None;
            if let Some(k) = Model::key_of_list(m) {
                self.lists.get_mut(&k).unwrap().retain(|x| *x != id);
            }
        }
        let m = self.ev.get_mut(&id).unwrap();
        m.queued = None;
        m.later = false;
    }

    /// Whether a run has anything to do (else it returns `Empty` before polling).
    fn has_events(&self) -> bool {
        self.ev.values().any(|m| m.pending || m.queued.is_some())
    }

    fn want(&self, src: u32) -> Interest {
        let mut w = Interest::NONE;
        for id in self.lists.get(&(false, src)).into_iter().flatten() {
            if let Kind::Io(_, i) = self.ev[id].kind {
                w |= i;
            }
        }
        w
    }

    fn add(&mut self, id: u32, timeout: Option<u64>, ct: Option<usize>) -> Result<(), Error> {
        let m = &self.ev[&id];
        if m.finalizing {
            return Err(Error::Invalid);
        }
        if !m.pending {
            if let Kind::Io(s, i) = m.kind {
                let list = self.lists.get(&(false, s.id()));
                if list.is_some_and(|l| !l.is_empty())
                    && self.want(s.id()).contains(Interest::EDGE) != i.contains(Interest::EDGE)
                {
                    return Err(Error::EdgeConflict);
                }
            }
            if let Some(k) = Model::key_of_list(m) {
                self.lists.entry(k).or_default().insert(0, id);
            }
            self.ev.get_mut(&id).unwrap().pending = true;
        }
        if timeout.is_some() || ct.is_some() {
            let now = self.now;
            let m = self.ev.get_mut(&id).unwrap();
            if m.queued.is_some_and(|(_, r)| r.contains(Ready::TIMEOUT)) {
                m.queued = None;
            }
            match ct {
                Some(q) => {
                    m.ct = Some(q);
                    m.deadline = Some(now.saturating_add(CTS[q]));
                }
                None => {
                    let d = timeout.unwrap();
                    m.ct = None;
                    m.interval = d;
                    m.deadline = Some(now.saturating_add(d));
                }
            }
        }
        Ok(())
    }

    /// One `run_with(ONCE_NONBLOCK)`: returns the expected callbacks as groups that must run
    /// in order (each group as a set: timers with equal deadlines may fire in either order).
    fn run(&mut self, sleep: u64, found: &[Readiness]) -> Vec<Vec<(u32, Ready)>> {
        let mut out: Vec<Vec<(u32, Ready)>> = Vec::new();
        let mut first = true;
        loop {
            if first {
                self.now += sleep;
                for r in found {
                    match *r {
                        Readiness::Io(s, ready) => {
                            let ids = self
                                .lists
                                .get(&(false, s.id()))
                                .cloned()
                                .unwrap_or_default();
                            for id in ids {
                                let Kind::Io(_, i) = self.ev[&id].kind else {
                                    unreachable!()
                                };
                                let r = ready & i.as_ready();
                                if !r.is_empty() {
                                    self.enqueue(id, r);
                                }
                            }
                        }
                        Readiness::Signal(n) => {
                            let ids = self.lists.get(&(true, n)).cloned().unwrap_or_default();
                            for id in ids {
                                self.enqueue(id, Ready::SIGNAL);
                            }
                        }
                        _ => {}
                    }
                }
                first = false;
            }
            // Due timers, in deadline order; equal deadlines share one FIFO "sequence".
            let now = self.now;
            let mut due: Vec<(u64, u32)> = self
                .ev
                .iter()
                .filter_map(|(id, m)| m.deadline.filter(|d| *d <= now).map(|d| (d, *id)))
                .collect();
            due.sort();
            let mut last_at = None;
            for (at, id) in due {
                if last_at != Some(at) {
                    last_at = Some(at);
                    self.seq += 1;
                }
                let seq = self.seq;
                let m = self.ev.get_mut(&id).unwrap();
                m.deadline = None;
                if m.persist {
                    let interval = m.ct.map_or(m.interval, |q| CTS[q]);
                    if interval != NO_TIME {
                        let mut next = at.saturating_add(interval);
                        if next <= now {
                            next = now.saturating_add(interval).max(now + 1);
                        }
                        m.deadline = Some(next);
                    }
                } else {
                    m.ct = None;
                }
                match &mut m.queued {
                    Some((_, r)) => *r |= Ready::TIMEOUT,
                    None => m.queued = Some((seq, Ready::TIMEOUT)),
                }
            }
            self.seq += 1;
            self.promote_later();
            // The highest level with queued events runs, in FIFO order.
            let Some(prio) = self
                .ev
                .values()
                .filter(|m| m.queued.is_some())
                .map(|m| m.prio)
                .min()
            else {
                return out; // nothing active: a non-blocking run is done
            };
            let mut level: Vec<(u64, u32)> = self
                .ev
                .iter()
                .filter(|(_, m)| m.prio == prio)
                .filter_map(|(id, m)| m.queued.map(|(s, _)| (s, *id)))
                .collect();
            level.sort();
            let mut group: Vec<(u32, Ready)> = Vec::new();
            let mut group_seq = None;
            for (seq, id) in level {
                if group_seq != Some(seq) && !group.is_empty() {
                    out.push(std::mem::take(&mut group));
                }
                group_seq = Some(seq);
                let m = self.ev.get_mut(&id).unwrap();
                let Some((_, r)) = m.queued.filter(|_| !m.later) else {
                    continue; // re-queued for later by an earlier callback
                };
                m.queued = None;
                if m.finalizing {
                    group.push((id, Ready::FINALIZE));
                    self.ev.remove(&id);
                    continue;
                }
                if !m.persist {
                    self.unschedule(id);
                } else if m.pending && !r.contains(Ready::TIMEOUT) && m.deadline.is_some() {
                    let interval = m.ct.map_or(m.interval, |q| CTS[q]);
                    m.deadline = Some(self.now.saturating_add(interval));
                }
                group.push((id, r));
                let m = self.ev.get_mut(&id).unwrap();
                let mut preempted = false;
                if let Some((target, left)) = m.action.as_mut() {
                    if *left > 0 && !r.contains(Ready::TIMEOUT) {
                        *left -= 1;
                        let target = *target;
                        preempted = self.activate_in_pass(target, prio);
                    }
                }
                if preempted {
                    break; // a higher priority was activated: the pass ends here
                }
            }
            if !group.is_empty() {
                out.push(group);
            }
            if self.ev.values().all(|m| m.queued.is_none()) {
                return out; // ONCE: ran something and nothing is left
            }
        }
    }
}

struct Harness {
    base: Base<Cfg>,
    foreign: Key,
    model: Model,
    keys: BTreeMap<u32, Key>,
    dead: Vec<Key>,
    cts: Vec<CommonTimeout>,
    log: Arc<Mutex<Vec<(u32, Ready)>>>,
    /// The live keys by model id, for callbacks that activate other events.
    live: Arc<Mutex<HashMap<u32, Key>>>,
    next_id: u32,
}

impl Harness {
    fn new() -> Harness {
        let base = Base::new_mock(&NOTIFIER, &CLOCK, Options::new().priorities(PRIOS)).unwrap();
        let other: Base<Cfg> = Base::new_mock(&NOTIFIER, &CLOCK, Options::new()).unwrap();
        let foreign = other.new_event(Event::user(), Box::new(|_, _| {})).unwrap();
        let cts = CTS
            .iter()
            .map(|d| base.common_timeout(Duration::from_nanos(*d)).unwrap())
            .collect();
        Harness {
            base,
            foreign,
            model: Model {
                ev: BTreeMap::new(),
                lists: HashMap::new(),
                seq: 0,
                now: CLOCK.now_nanos(),
            },
            keys: BTreeMap::new(),
            dead: Vec::new(),
            cts,
            log: Arc::default(),
            live: Arc::default(),
            next_id: 0,
        }
    }

    fn callback(&self, id: u32) -> <Cfg as Config>::Callback {
        self.acting_callback(id, None)
    }

    /// A callback that logs and, run for a reason other than a timeout, activates `target`
    /// (up to `times` times in all).
    fn acting_callback(&self, id: u32, action: Option<(u32, u32)>) -> <Cfg as Config>::Callback {
        let log = self.log.clone();
        let live = self.live.clone();
        let (target, mut left) = action.unwrap_or((0, 0));
        Box::new(move |b, f| {
            log.lock().unwrap().push((id, f.ready));
            if left > 0 && !f.ready.contains(Ready::TIMEOUT) {
                left -= 1;
                let key = live.lock().unwrap().get(&target).copied();
                if let Some(k) = key {
                    b.activate(k, Ready::USER).unwrap();
                }
            }
        })
    }

    fn forget(&mut self, id: u32) {
        self.keys.remove(&id);
        self.live.lock().unwrap().remove(&id);
    }

    /// A key to operate on: mostly live ones, sometimes stale or foreign.
    fn pick(&mut self, rng: &mut Rng) -> (Option<u32>, Key) {
        if rng.chance(8) && !self.dead.is_empty() {
            let k = self.dead[rng.below(self.dead.len() as u64) as usize];
            return (None, k);
        }
        if rng.chance(3) || self.keys.is_empty() {
            return (None, self.foreign);
        }
        let i = rng.below(self.keys.len() as u64) as usize;
        let (id, k) = self.keys.iter().nth(i).map(|(a, b)| (*a, *b)).unwrap();
        (Some(id), k)
    }

    fn expect_bad(&self, k: Key) -> Error {
        if k == self.foreign {
            Error::Foreign
        } else {
            Error::Stale
        }
    }

    fn step(&mut self, rng: &mut Rng, ctx: &str) {
        match rng.below(100) {
            0..=14 => {
                // new event
                let kind = match rng.below(4) {
                    0 => {
                        let mut i = Interest::from_bits_truncate(rng.below(8) as u8);
                        if rng.chance(15) {
                            i |= Interest::EDGE;
                        }
                        Kind::Io(Source::new(rng.below(SOURCES as u64) as u32), i)
                    }
                    1 => Kind::Signal(1 + rng.below(SIGNALS as u64) as u32),
                    2 => Kind::Timer,
                    _ => Kind::User,
                };
                let mut ev = match kind {
                    Kind::Io(s, i) => Event::io(s, i),
                    Kind::Signal(n) => Event::signal(n),
                    Kind::Timer => Event::timer(),
                    _ => Event::user(),
                };
                let persist = rng.chance(50);
                if persist {
                    ev = ev.persist();
                }
                let prio = rng.below(PRIOS as u64 + 1) as u8;
                ev = ev.priority(prio);
                let id = self.next_id;
                // Some callbacks activate themselves or another event (rules 1 and 4: a
                // higher priority preempts the pass, the rest waits for the next poll).
                let action = rng.chance(30).then(|| {
                    let target = if rng.chance(50) {
                        id
                    } else {
                        rng.below(u64::from(id) + 2) as u32
                    };
                    (target, 1 + rng.below(3) as u32)
                });
                let r = self.base.new_event(ev, self.acting_callback(id, action));
                let want = if prio >= PRIOS {
                    Err(Error::Priority)
                } else if matches!(kind, Kind::Io(_, i) if i.kinds().is_empty()) {
                    Err(Error::EmptyInterest)
                } else if self.model.ev.len() >= CAP {
                    Err(Error::Full)
                } else {
                    Ok(())
                };
                assert_eq!(r.map(|_| ()), want, "{ctx}: new_event {ev:?}");
                if let Ok(k) = r {
                    self.next_id += 1;
                    self.keys.insert(id, k);
                    self.live.lock().unwrap().insert(id, k);
                    self.model.ev.insert(
                        id,
                        M {
                            kind,
                            persist,
                            prio,
                            pending: false,
                            queued: None,
                            deadline: None,
                            interval: NO_TIME,
                            ct: None,
                            finalizing: false,
                            later: false,
                            action,
                        },
                    );
                }
            }
            15..=39 => {
                // add, with no timeout, a timeout, a huge one, or a common timeout
                let (id, k) = self.pick(rng);
                let (timeout, ct) = match rng.below(10) {
                    0..=2 => (None, None),
                    3..=6 => (Some(rng.below(20) * 1_000_000 + rng.below(3)), None),
                    7 => (Some(NO_TIME), None),
                    _ => (None, Some(rng.below(2) as usize)),
                };
                let r = match ct {
                    Some(q) => self.base.add_common(k, self.cts[q]),
                    None => self.base.add(k, timeout.map(Duration::from_nanos)),
                };
                let want = match id {
                    None => Err(self.expect_bad(k)),
                    Some(id) => self.model.add(id, timeout, ct),
                };
                assert_eq!(r, want, "{ctx}: add {timeout:?} {ct:?}");
            }
            40..=51 => {
                let (id, k) = self.pick(rng);
                let r = self.base.delete(k);
                let want = match id {
                    None => Err(self.expect_bad(k)),
                    Some(id) => {
                        // libevent's event_del: a live event that is neither pending nor
                        // queued stays so, and the call succeeds.
                        self.model.unschedule(id);
                        Ok(())
                    }
                };
                assert_eq!(r, want, "{ctx}: delete");
            }
            52..=66 => {
                let (id, k) = self.pick(rng);
                let ready = Ready::from_bits_truncate(rng.below(64) as u8);
                let r = self.base.activate(k, ready);
                let want = match id {
                    None => Err(self.expect_bad(k)),
                    Some(id) => {
                        let r = if ready.is_empty() { Ready::USER } else { ready };
                        self.model.enqueue(id, r);
                        Ok(())
                    }
                };
                assert_eq!(r, want, "{ctx}: activate {ready:?}");
            }
            67..=72 => {
                let (id, k) = self.pick(rng);
                let r = self.base.free(k);
                let want = match id {
                    None => Err(self.expect_bad(k)),
                    Some(id) => {
                        self.model.unschedule(id);
                        self.model.ev.remove(&id);
                        self.forget(id);
                        self.dead.push(k);
                        Ok(())
                    }
                };
                assert_eq!(r, want, "{ctx}: free");
            }
            73..=75 => {
                let (id, k) = self.pick(rng);
                let Some(id) = id else {
                    let r = self.base.finalize(k, Box::new(|_, _| {}));
                    assert_eq!(r, Err(self.expect_bad(k)), "{ctx}: finalize");
                    return;
                };
                self.base.finalize(k, self.callback(id)).unwrap();
                self.model.unschedule(id);
                self.model.enqueue(id, Ready::FINALIZE);
                self.model.ev.get_mut(&id).unwrap().finalizing = true;
                self.forget(id);
                self.dead.push(k);
            }
            _ => self.run(rng, ctx),
        }
    }

    fn run(&mut self, rng: &mut Rng, ctx: &str) {
        let sleep = if rng.chance(30) {
            0
        } else {
            rng.below(12_000_000)
        };
        let mut found = Vec::new();
        for _ in 0..rng.below(4) {
            found.push(if rng.chance(75) {
                Readiness::Io(
                    Source::new(rng.below(SOURCES as u64) as u32),
                    Ready::from_bits_truncate(1 + rng.below(7) as u8),
                )
            } else {
                Readiness::Signal(1 + rng.below(SIGNALS as u64) as u32)
            });
        }
        if !self.model.has_events() {
            let r = self.base.run_with(RunFlags::ONCE_NONBLOCK);
            assert_eq!(
                r,
                Ok(rouse_core::Exit::Empty),
                "{ctx}: run of an empty base"
            );
            return;
        }
        // Time passes, then a non-blocking run finds `found` (a non-blocking poll never sleeps).
        CLOCK.advance(Duration::from_nanos(sleep));
        self.base
            .with_poller(|p| {
                p.script(Duration::ZERO, &found);
            })
            .unwrap();
        let want = self.model.run(sleep, &found);
        let r = self.base.run_with(RunFlags::ONCE_NONBLOCK);
        assert_eq!(r, Ok(rouse_core::Exit::Done), "{ctx}: run");
        let got = std::mem::take(&mut *self.log.lock().unwrap());
        let mut at = 0;
        for (g, group) in want.iter().enumerate() {
            let end = (at + group.len()).min(got.len());
            let mut a = got[at..end].to_vec();
            let mut b = group.clone();
            a.sort_by_key(|x| (x.0, x.1.bits()));
            b.sort_by_key(|x| (x.0, x.1.bits()));
            assert_eq!(a, b, "{ctx}: run group {g}: got {got:?}\nwant {want:?}");
            at = end;
        }
        assert_eq!(
            at,
            got.len(),
            "{ctx}: extra callbacks {got:?}, want {want:?}"
        );
        for (id, k) in &self.keys {
            if let Some(m) = self.model.ev.get(id) {
                let info = self.base.info(*k).unwrap();
                assert_eq!(info.pending, m.pending, "{ctx}: pending of {id}");
                assert_eq!(
                    info.deadline.map(|d| d.as_nanos()),
                    m.deadline,
                    "{ctx}: deadline of {id}"
                );
            }
        }
        // The kernel view: once the change list is applied, what the poller has is the union
        // of the pending interests (the mock refuses an update whose `old` is not what it has).
        self.base.apply_changes();
        assert_eq!(
            self.base.poll_errors(),
            0,
            "{ctx}: the base and poller disagreed"
        );
        for src in 0..SOURCES {
            assert_eq!(
                self.base
                    .with_poller(|p| p.registered(Source::new(src)))
                    .unwrap(),
                self.model.want(src),
                "{ctx}: registration of source {src}"
            );
        }
        for n in 1..=SIGNALS {
            let watched = self
                .model
                .lists
                .get(&(true, n))
                .is_some_and(|l| !l.is_empty());
            assert_eq!(
                self.base.with_poller(|p| p.watches_signal(n)).unwrap(),
                watched,
                "{ctx}: signal {n}"
            );
        }
    }

    fn check_counts(&self, ctx: &str) {
        let c = self.base.counts();
        let m = &self.model;
        let count = |f: fn(&M) -> bool| m.ev.values().filter(|m| f(m)).count() as u32;
        assert_eq!(c.events, m.ev.len() as u32, "{ctx}: events");
        assert_eq!(c.pending, count(|m| m.pending), "{ctx}: pending");
        assert_eq!(c.active, count(|m| m.queued.is_some()), "{ctx}: active");
        assert_eq!(c.timers, count(|m| m.deadline.is_some()), "{ctx}: timers");
    }
}

/// Runs `ops` random operations from `seed`; panics with the seed and step on a mismatch.
pub fn fuzz(seed: u64, ops: u64) {
    let mut rng = Rng(seed);
    let mut h = Harness::new();
    for step in 0..ops {
        let ctx = format!("seed {seed} step {step}");
        h.step(&mut rng, &ctx);
        h.check_counts(&ctx);
        // The clock moves only when the mock poller "sleeps", as the model says.
        assert_eq!(CLOCK.now_nanos(), h.model.now, "{ctx}: clock");
    }
}

#[test]
fn seeded_slice_matches_the_model() {
    let (seeds, ops) = if cfg!(miri) { (2, 150) } else { (24, 3000) };
    if !cfg!(miri) {
        for &(s, n) in REGRESSIONS {
            fuzz(s, n);
        }
    }
    for s in 0..seeds {
        fuzz(0xC0FFEE + s, ops);
    }
}

/// The long run behind `scripts/fuzz.sh`: `ROUSE_FUZZ_OPS` operations in all (default ten
/// million), from seed `ROUSE_FUZZ_SEED` on, 100 000 per seed.
#[test]
#[ignore = "long: run through scripts/fuzz.sh"]
fn long_run() {
    let total: u64 = std::env::var("ROUSE_FUZZ_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let first: u64 = std::env::var("ROUSE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let per = 100_000u64.min(total);
    let mut done = 0;
    let mut seed = first;
    while done < total {
        fuzz(seed, per);
        done += per;
        seed += 1;
    }
    eprintln!("model fuzzing: {done} operations over seeds {first}..{seed}, no mismatch");
}
