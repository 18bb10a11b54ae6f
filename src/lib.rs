//! gort: a Rust async runtime scheduled the way Go schedules goroutines.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
