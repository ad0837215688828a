//! The everyday API: `with_priority` on every holder and every convenience constructor, and
//! the core types re-exported by rouse-std (a std user needs no second dependency).

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rouse_std::{Base, BaseRef, Flavor, Interest, Ready, Signal};

/// The re-exports are the core's types, not copies.
#[test]
fn core_types_are_reexported() {
    fn same<T: 'static, U: 'static>() {
        assert_eq!(std::any::TypeId::of::<T>(), std::any::TypeId::of::<U>());
    }
    same::<rouse_std::Interest, rouse_std::rouse_core::Interest>();
    same::<rouse_std::Ready, rouse_std::rouse_core::Ready>();
    same::<rouse_std::Key, rouse_std::rouse_core::Key>();
    same::<rouse_std::Event, rouse_std::rouse_core::Event>();
    same::<rouse_std::Exit, rouse_std::rouse_core::Exit>();
    same::<rouse_std::RunFlags, rouse_std::rouse_core::RunFlags>();
    same::<rouse_std::Fired, rouse_std::rouse_core::Fired>();
    same::<rouse_std::Kind, rouse_std::rouse_core::Kind>();
    same::<rouse_std::Source, rouse_std::rouse_core::Source>();
    same::<rouse_std::Counts, rouse_std::rouse_core::Counts>();
    same::<rouse_std::WakeStats, rouse_std::rouse_core::WakeStats>();
    same::<rouse_std::EventInfo, rouse_std::rouse_core::EventInfo>();
    same::<rouse_std::Instant, rouse_std::rouse_core::Instant>();
    same::<rouse_std::CommonTimeout, rouse_std::rouse_core::CommonTimeout>();
    same::<rouse_std::Error, rouse_std::rouse_core::Error>();
    assert_eq!(rouse_std::MAX_SOURCE, rouse_std::rouse_core::MAX_SOURCE);
    assert_eq!(rouse_std::MAX_SIGNAL, rouse_std::rouse_core::MAX_SIGNAL);
}

/// Every constructor through `with_priority` gives its event that priority; without it, the
/// default (half the number of priorities).
fn every_constructor<F: Flavor>(events: BaseRef<'_, F>, fd: &UnixStream) -> io::Result<()> {
    let before = events.counts().events;
    let p = events.with_priority(1);
    assert_eq!(p.priority(), 1);
    let keys = [
        p.add_fd(fd, Interest::READ, |_, _| {})?,
        p.add_owned(fd.try_clone()?, Interest::READ, |_, _, _| {})?,
        p.add_timer(Duration::from_secs(60), |_, _| {})?,
        p.add_interval(Duration::from_secs(60), |_, _| {})?,
        p.add_signal(Signal::USR2, |_, _| {})?,
        p.add_user(|_, _| {})?,
    ];
    for key in keys {
        assert_eq!(events.info(key)?.priority, 1);
        events.free(key)?;
    }
    let default = events.add_user(|_, _| {})?;
    assert_eq!(events.info(default)?.priority, 2, "half of 4 priorities");
    events.free(default)?;
    let err = events
        .with_priority(4)
        .add_timer(Duration::from_secs(1), |_, _| {})
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(events.counts().events, before, "nothing left behind");
    Ok(())
}

#[test]
fn with_priority_on_every_holder() -> io::Result<()> {
    let (fd, _peer) = UnixStream::pair()?;
    let base = Base::builder().priorities(4).build()?;
    every_constructor(base.base_ref(), &fd)?;

    // Base, Handle and Context have it as inherent methods too.
    let k = base.with_priority(0).add_user(|_, _| {})?;
    assert_eq!(base.info(k)?.priority, 0);
    let handle = base.handle();
    let h = std::thread::spawn(move || handle.with_priority(3).add_user(|_, _| {}))
        .join()
        .unwrap()?;
    assert_eq!(base.info(h)?.priority, 3);
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let fd2 = fd.try_clone()?;
    base.add_timer(Duration::ZERO, move |cx, _| {
        let key = cx.with_priority(1).add_user(|_, _| {}).unwrap();
        every_constructor(cx.base_ref(), &fd2).unwrap();
        *s.lock().unwrap() = Some(cx.info(key).unwrap().priority);
        cx.loop_exit(None).unwrap();
    })?;
    base.run()?;
    assert_eq!(*seen.lock().unwrap(), Some(1));

    let local = rouse_std::Builder::new().priorities(4).build_local()?;
    every_constructor(local.base_ref(), &fd)?;
    let rc = std::rc::Rc::new(()); // not Send: the local API takes it
    let l = local.local().with_priority(0).add_user(move |_, _| {
        let _ = &rc;
    })?;
    assert_eq!(local.info(l)?.priority, 0);
    Ok(())
}

/// Priorities order the callbacks: activated low first, they run high first.
#[test]
fn priorities_order_the_convenience_constructors() -> io::Result<()> {
    let base = Base::builder().priorities(3).build()?;
    let order = Arc::new(Mutex::new(Vec::new()));
    let push = |name: &'static str| {
        let order = order.clone();
        move |_: &rouse_std::Context<'_>, _: rouse_std::Fired| order.lock().unwrap().push(name)
    };
    let low = base.with_priority(2).add_user(push("low"))?;
    let mid = base.with_priority(1).add_user(push("mid"))?;
    let (tx, chan) = base.with_priority(0).channel({
        let order = order.clone();
        move |_, msg: &'static str| order.lock().unwrap().push(msg)
    })?;
    assert_eq!(base.info(chan)?.priority, 0);
    base.activate(low, Ready::USER)?;
    base.activate(mid, Ready::USER)?;
    tx.send("channel").unwrap();
    base.run_once()?;
    assert_eq!(*order.lock().unwrap(), ["channel", "mid", "low"]);

    let (_, bounded) = base.with_priority(2).bounded_channel(4, |_, _: u8| {})?;
    assert_eq!(base.info(bounded)?.priority, 2);
    let err = base.with_priority(3).channel(|_, _: u8| {}).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    Ok(())
}

/// What the crate docs say about an I/O event with a timeout: input that is there when the
/// timeout expires arrives in one run, `READ | TIMEOUT`.
#[test]
fn an_io_timeout_and_input_together_fire_once_with_both() -> io::Result<()> {
    use std::io::Write;
    let base = Base::new()?;
    let (rx, mut tx) = UnixStream::pair()?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let ev = rouse_std::Event::io(rouse_std::source(&rx), Interest::READ).persist();
    let key = base.add_event(ev, Some(Duration::from_millis(5)), move |_, fired| {
        s.lock().unwrap().push(fired.ready)
    })?;
    tx.write_all(b"x")?;
    std::thread::sleep(Duration::from_millis(20)); // both due before the loop looks
    base.run_once()?;
    assert_eq!(*seen.lock().unwrap(), [Ready::READ | Ready::TIMEOUT]);
    base.free(key)?;
    Ok(())
}
