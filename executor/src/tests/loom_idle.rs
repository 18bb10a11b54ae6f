//! Loom model of the idle protocol (idle.rs): an M going idle while work is
//! submitted must not sleep with the work unrun.
//!
//! The M runs the production `Idle::park_m` (release the P, stop spinning,
//! fence, re-check the queue, park); the submitter runs the production
//! `Idle::wakep` after pushing to the global queue. If the two StoreLoad
//! fences did not pair, loom finds the schedule where the submitter sees a
//! spinner and the M sees no work: the M then parks forever and loom reports
//! a deadlock. Each model also asserts the item is run exactly once.

use gort_netpoll::loom::sync::Arc;
use gort_netpoll::loom::thread;

use super::{Item, assert_exactly_once, drop_log};
use crate::idle::{Idle, MNote, NextP};
use crate::inject::Inject;
use crate::park::Parker;

/// The P is a plain number here: the protocol never looks inside it.
type Pid = usize;

fn run_model(m_was_spinning: bool) {
    loom::model(move || {
        let log = drop_log();
        let inject = Arc::new(Inject::<Item>::new());
        let (mut parker, unparker) = Parker::new();
        let note = MNote::<Pid>::new(unparker);
        // One P, held by the M: nothing idle.
        let idle = Arc::new(Idle::<Pid>::new(1, Vec::new(), Vec::new()));
        if m_was_spinning {
            idle.start_spinning();
        }

        let submitter = {
            let (idle, inject, log) = (idle.clone(), inject.clone(), log.clone());
            thread::spawn(move || {
                inject.push(Item::new(0, &log)).ok().expect("queue open");
                idle.wakep();
            })
        };

        // The M: its last look found nothing; now the delicate dance.
        let q = inject.clone();
        let got = idle.park_m(
            0,
            &note,
            m_was_spinning,
            move || !q.is_empty(),
            || idle.wait_for_p(&note, &mut parker),
        );
        let (p, _spinning) = got.expect("no shutdown in this model");
        assert_eq!(p, 0);
        let item = inject
            .pop()
            .expect("the M holding a P again finds the submitted work");
        drop(item); // "run" it

        submitter.join().unwrap();
        assert!(inject.pop().is_none());
        assert_exactly_once(log.lock().unwrap().clone(), 1, "submitted work");
    });
}

#[test]
fn loom_idle_last_spinning_m_parks_while_work_arrives() {
    run_model(true);
}

#[test]
fn loom_idle_non_spinning_m_parks_while_work_arrives() {
    run_model(false);
}

/// The M runs `stopm`'s netpoller path (take_nextp, begin_netpoll, sleep
/// in the poller, end_netpoll) while a submitter `wakep`s and `startm`
/// hands it the idle P. The poller is a second parker whose unpark is the
/// idle list's netpoll break. If `wake_m` could read `in_netpoll` as false
/// after the M's last look at its note, the M would sleep in the poller
/// forever (loom reports the deadlock); the P must reach it exactly once.
#[test]
fn loom_idle_startm_breaks_the_netpoller() {
    loom::model(|| {
        let (_parker, unparker) = Parker::new();
        let note = MNote::<Pid>::new(unparker);
        let (mut poller, poller_unparker) = Parker::new();
        // One P, idle; the M idle in midle.
        let idle = Arc::new(
            Idle::<Pid>::new(1, vec![0], vec![note.clone()])
                .with_netpoll_break(Box::new(move || poller_unparker.unpark())),
        );

        let submitter = {
            let idle = idle.clone();
            thread::spawn(move || idle.wakep())
        };

        let got = loop {
            match idle.take_nextp(&note) {
                NextP::Got(got) => break got,
                NextP::Shutdown => panic!("no shutdown in this model"),
                NextP::Empty => {}
            }
            match idle.begin_netpoll(&note) {
                NextP::Got(got) => break got,
                NextP::Shutdown => panic!("no shutdown in this model"),
                NextP::Empty => {}
            }
            poller.park();
            idle.end_netpoll(&note);
        };
        assert_eq!(got, (0, true), "startm hands over the one P, spinning");
        submitter.join().unwrap();
        assert!(
            matches!(idle.take_nextp(&note), NextP::Empty),
            "the P was handed over exactly once"
        );
    });
}

/// Two Ms, two Ps: M-a holds P0 and goes idle as the last spinner while M-b
/// is parked with P1 idle, and work arrives. Whichever M is handed (or takes)
/// a P runs the item, exactly once; then shutdown wakes and ends both Ms.
#[test]
fn loom_idle_two_ms_hand_off() {
    use gort_netpoll::loom::sync::Notify;
    use gort_netpoll::loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    loom::model(|| {
        let log = drop_log();
        let inject = Arc::new(Inject::<Item>::new());
        let (parker_a, unparker_a) = Parker::new();
        let (parker_b, unparker_b) = Parker::new();
        let note_a = MNote::<Pid>::new(unparker_a);
        let note_b = MNote::<Pid>::new(unparker_b);
        // P0 held by M-a (spinning); P1 idle; M-b parked.
        let idle = Arc::new(Idle::<Pid>::new(2, vec![1], vec![note_b.clone()]));
        idle.start_spinning();
        let ran = Arc::new(Notify::new());
        let runs = Arc::new(AtomicUsize::new(0));

        // An M: run the item if there is one, then go idle; exit at shutdown.
        let m = |note: Arc<MNote<Pid>>, mut parker: Parker, holding: Option<Pid>| {
            let (idle, inject, ran, runs) =
                (idle.clone(), inject.clone(), ran.clone(), runs.clone());
            thread::spawn(move || {
                let mut held = holding.map(|p| (p, true));
                loop {
                    let (p, spinning) = match held.take() {
                        Some(got) => got,
                        None => match idle.wait_for_p(&note, &mut parker) {
                            Some(got) => got,
                            None => return,
                        },
                    };
                    // As m.rs: a spinner that finds work stops spinning and
                    // wakes a replacement; one that finds none parks as a
                    // spinner (park_m drops the count).
                    let mut spinning = spinning;
                    if let Some(item) = inject.pop() {
                        if spinning && idle.stop_spinning() {
                            idle.wakep();
                        }
                        spinning = false;
                        drop(item);
                        runs.fetch_add(1, SeqCst);
                        ran.notify();
                    }
                    let q = inject.clone();
                    match idle.park_m(
                        p,
                        &note,
                        spinning,
                        move || !q.is_empty(),
                        || idle.wait_for_p(&note, &mut parker),
                    ) {
                        Some(got) => held = Some(got),
                        None => return,
                    }
                }
            })
        };
        let a = m(note_a, parker_a, Some(0));
        let b = m(note_b, parker_b, None);

        inject.push(Item::new(0, &log)).ok().expect("queue open");
        idle.wakep();

        // Notify may wake spuriously under loom: wait for the count.
        while runs.load(SeqCst) == 0 {
            ran.wait();
        }
        idle.shutdown();
        a.join().unwrap();
        b.join().unwrap();
        assert!(inject.pop().is_none());
        assert_exactly_once(log.lock().unwrap().clone(), 1, "submitted work");
    });
}
