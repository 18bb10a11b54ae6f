//! gort's memory layer: a span-based arena in the shape of Go's allocator and
//! a tracing garbage collector for `Gc<T>` handles.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
