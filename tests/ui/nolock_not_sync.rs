use rouse_core::{mock, Base, Options};

static CLOCK: mock::ManualClock = mock::ManualClock::new();
static NOTIFIER: mock::Notifier = mock::Notifier::new();

fn main() {
    let base: Base<mock::Mock> = Base::new_mock(&NOTIFIER, &CLOCK, Options::new()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| base.counts());
    });
}
