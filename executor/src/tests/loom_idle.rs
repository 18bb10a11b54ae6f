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
use crate::idle::{Idle, MNote};
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
            &mut parker,
            m_was_spinning,
            move || !q.is_empty(),
            || None,
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
