//! A loop-bound MPSC channel: any thread sends, a callback on the loop thread receives.

use std::fmt;
use std::io;
use std::sync::mpsc;

use rouse_core::{Event, Key, Ready};

use crate::api::WithPriority;
use crate::base::{Base, Handle};
use crate::context::Context;

/// The sending half of a [`channel`](Base::channel): `Send + Sync + Clone` (for `T: Send`).
///
/// A send is a push onto a lock-free queue (std's `mpsc`) followed by an activation of the
/// channel's user event. While the event is already queued to run, that activation is one
/// fence and one atomic load: no lock, no syscall. Otherwise it queues the event under the
/// base lock and, only if the loop sleeps in its poller and no notification is pending,
/// writes the notifier: any number of sends between two polls cost at most one write.
///
/// The receiving callback runs after the send and sees the message (the activation's
/// guarantee: the callback observes every write made before `activate`; the queue's push is
/// such a write).
pub struct Sender<T> {
    tx: Tx<T>,
    handle: Handle,
    key: Key,
}

enum Tx<T> {
    Unbounded(mpsc::Sender<T>),
    Bounded(mpsc::SyncSender<T>),
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: match &self.tx {
                Tx::Unbounded(tx) => Tx::Unbounded(tx.clone()),
                Tx::Bounded(tx) => Tx::Bounded(tx.clone()),
            },
            handle: self.handle.clone(),
            key: self.key,
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("key", &self.key)
            .field("bounded", &matches!(self.tx, Tx::Bounded(_)))
            .finish_non_exhaustive()
    }
}

/// A message that was not sent, handed back.
#[derive(PartialEq, Eq)]
pub enum SendError<T> {
    /// The channel is closed: its event was freed (or the base dropped).
    Closed(T),
    /// A bounded channel is full ([`Sender::try_send`] only).
    Full(T),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(m) | SendError::Full(m) => m,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Full(_) => f.write_str("Full(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("the channel is closed"),
            SendError::Full(_) => f.write_str("the channel is full"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T: Send> Sender<T> {
    /// Sends `msg` to the channel's callback and wakes the loop if it sleeps.
    ///
    /// An unbounded channel never blocks. A bounded one blocks while it is full: never call
    /// it from a callback of the same base (the loop would wait for itself); use
    /// [`try_send`](Sender::try_send) there.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] with the message if the channel's event was freed. A message
    /// sent while the event is being freed may be dropped with the channel (as with any
    /// channel whose receiver goes away during the send).
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        let pushed = match &self.tx {
            Tx::Unbounded(tx) => tx.send(msg).map_err(|e| SendError::Closed(e.0)),
            Tx::Bounded(tx) => tx.send(msg).map_err(|e| SendError::Closed(e.0)),
        };
        pushed?;
        self.wake();
        Ok(())
    }

    /// Sends `msg` if there is room, without blocking.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] (bounded channels) or [`SendError::Closed`], with the message.
    pub fn try_send(&self, msg: T) -> Result<(), SendError<T>> {
        let pushed = match &self.tx {
            Tx::Unbounded(tx) => tx.send(msg).map_err(|e| SendError::Closed(e.0)),
            Tx::Bounded(tx) => tx.try_send(msg).map_err(|e| match e {
                mpsc::TrySendError::Full(m) => SendError::Full(m),
                mpsc::TrySendError::Disconnected(m) => SendError::Closed(m),
            }),
        };
        pushed?;
        self.wake();
        Ok(())
    }

    /// The key of the channel's event (free it to close the channel).
    pub fn key(&self) -> Key {
        self.key
    }

    /// Activates the channel's event. A failure here means the event is gone (the receiver
    /// went with it: the message is dropped, as a concurrent close would) or the notification
    /// write failed, which the base retries at the next activation (see
    /// `rouse_core::Base::activate`).
    #[inline]
    fn wake(&self) {
        let _ = self.handle.activate(self.key, Ready::USER);
    }
}

/// Creates the event and the channel behind [`Base::channel`].
fn make<T, F>(
    base: &Base,
    bound: Option<usize>,
    priority: Option<u8>,
    mut callback: F,
) -> io::Result<(Sender<T>, Key)>
where
    T: Send + 'static,
    F: FnMut(&Context<'_>, T) + Send + 'static,
{
    let handle = base.handle();
    let (tx, rx) = match bound {
        None => {
            let (tx, rx) = mpsc::channel();
            (Tx::Unbounded(tx), rx)
        }
        Some(n) => {
            let (tx, rx) = mpsc::sync_channel(n);
            (Tx::Bounded(tx), rx)
        }
    };
    // Persistent and pending: a channel keeps `run` going, like a user event.
    let mut event = Event::user().persist();
    if let Some(p) = priority {
        event = event.priority(p);
    }
    let key = base.add_event(event, None, move |cx, _| {
        // Everything sent before this run started is here (and what arrives meanwhile).
        while let Ok(msg) = rx.try_recv() {
            callback(cx, msg);
        }
    })?;
    Ok((Sender { tx, handle, key }, key))
}

impl Base {
    /// A channel into the loop (calloop's `channel`, tokio's `mpsc`): `tx.send(msg)` from
    /// any thread; `callback` runs on the loop thread with every message, in the order each
    /// sender sent them. The channel is a persistent user event: free its key to close it
    /// (later sends return [`SendError::Closed`]); it keeps `run` going while it exists.
    ///
    /// ```
    /// use rouse_std::Base;
    ///
    /// let base = Base::new()?;
    /// let mut sum = 0;
    /// let (tx, key) = base.channel(move |cx, n: u64| {
    ///     sum += n;
    ///     if sum == (0..9).sum::<u64>() {
    ///         cx.loop_break().unwrap(); // every message arrived
    ///     }
    /// })?;
    /// let workers: Vec<_> = (0..3u64)
    ///     .map(|w| {
    ///         let tx = tx.clone();
    ///         std::thread::spawn(move || {
    ///             for i in 0..3 {
    ///                 tx.send(w * 3 + i).unwrap();
    ///             }
    ///         })
    ///     })
    ///     .collect();
    /// for w in workers {
    ///     w.join().unwrap();
    /// }
    /// base.run()?; // until the callback has all nine messages
    /// base.free(key)?;
    /// assert!(tx.send(1).is_err(), "closed");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// What creating the event returns.
    pub fn channel<T, F>(&self, callback: F) -> io::Result<(Sender<T>, Key)>
    where
        T: Send + 'static,
        F: FnMut(&Context<'_>, T) + Send + 'static,
    {
        make(self, None, None, callback)
    }

    /// As [`channel`](Base::channel), holding at most `bound` unreceived messages:
    /// [`Sender::send`] blocks and [`Sender::try_send`] returns [`SendError::Full`] while it
    /// is full.
    ///
    /// # Errors
    ///
    /// What creating the event returns.
    pub fn bounded_channel<T, F>(&self, bound: usize, callback: F) -> io::Result<(Sender<T>, Key)>
    where
        T: Send + 'static,
        F: FnMut(&Context<'_>, T) + Send + 'static,
    {
        make(self, Some(bound), None, callback)
    }
}

impl WithPriority<'_, Base> {
    /// As [`Base::channel`], its callback at this priority: a channel whose messages go
    /// before (0) or after the base's other events.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a priority out of range; what creating the event returns.
    pub fn channel<T, F>(&self, callback: F) -> io::Result<(Sender<T>, Key)>
    where
        T: Send + 'static,
        F: FnMut(&Context<'_>, T) + Send + 'static,
    {
        make(self.target, None, Some(self.priority), callback)
    }

    /// As [`Base::bounded_channel`], its callback at this priority.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a priority out of range; what creating the event returns.
    pub fn bounded_channel<T, F>(&self, bound: usize, callback: F) -> io::Result<(Sender<T>, Key)>
    where
        T: Send + 'static,
        F: FnMut(&Context<'_>, T) + Send + 'static,
    {
        make(self.target, Some(bound), Some(self.priority), callback)
    }
}
