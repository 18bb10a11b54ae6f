//! `GORT_MAXPROCS` sets the default number of Ps; bad values are errors.
//! One test in its own binary: it changes the process environment.

#![cfg(not(loom))]

use gort_executor::{Builder, Handle, Runtime};

fn set(v: &str) {
    // SAFETY: this binary runs this single test on one thread; no other thread
    // reads the environment while it changes.
    unsafe { std::env::set_var("GORT_MAXPROCS", v) };
}

#[test]
fn gort_maxprocs_env() {
    set("3");
    let rt = Runtime::new().expect("GORT_MAXPROCS=3 builds");
    let dbg = rt.block_on(async { format!("{:?}", Handle::current()) });
    assert!(dbg.contains("gomaxprocs: 3"), "{dbg}");
    drop(rt);
    // An explicit worker_threads wins over the environment.
    let rt = Builder::new().worker_threads(1).build().unwrap();
    assert!(format!("{:?}", rt.handle()).contains("gomaxprocs: 1"));
    drop(rt);
    for bad in ["0", "-1", "many", ""] {
        set(bad);
        let e = Runtime::new().expect_err(bad);
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(e.to_string().contains("GORT_MAXPROCS"), "{e}");
    }
}
