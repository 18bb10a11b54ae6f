//! Helpers of the diagnostics tests: a small JSON parser (no serde_json
//! dependency; enough of RFC 8259 to check that the trace is JSON and read
//! its events), busy work that holds an M, and a `tracing` field visitor.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Busy work the thieves can take over (no sleeping: the poll holds the M).
pub fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    pub fn get(&self, k: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.get(k),
            _ => None,
        }
    }
    pub fn str(&self, k: &str) -> Option<&str> {
        match self.get(k) {
            Some(Json::Str(s)) => Some(s),
            _ => None,
        }
    }
    pub fn num(&self, k: &str) -> Option<f64> {
        match self.get(k) {
            Some(Json::Num(n)) => Some(*n),
            _ => None,
        }
    }
}

/// Parses a whole document; the error names the byte offset.
pub fn parse(s: &str) -> Result<Json, String> {
    let mut p = Parser {
        b: s.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!("trailing data at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && b" \t\r\n".contains(&self.b[self.i]) {
            self.i += 1;
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }
    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("expected '{}'", c as char))
        }
    }
    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let Json::Str(k) = self.value()? else {
                        return self.err("object key is not a string");
                    };
                    self.eat(b':')?;
                    let v = self.value()?;
                    if m.insert(k.clone(), v).is_some() {
                        return self.err(&format!("duplicate key {k}"));
                    }
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(a));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => {
                self.i += 1;
                let mut s = String::new();
                loop {
                    match self.b.get(self.i) {
                        None => return self.err("unterminated string"),
                        Some(b'"') => {
                            self.i += 1;
                            return Ok(Json::Str(s));
                        }
                        Some(b'\\') => {
                            let c = *self.b.get(self.i + 1).ok_or("bad escape")?;
                            self.i += 2;
                            match c {
                                b'"' => s.push('"'),
                                b'\\' => s.push('\\'),
                                b'/' => s.push('/'),
                                b'n' => s.push('\n'),
                                b'r' => s.push('\r'),
                                b't' => s.push('\t'),
                                b'b' => s.push('\u{8}'),
                                b'f' => s.push('\u{c}'),
                                b'u' => {
                                    let hex = std::str::from_utf8(&self.b[self.i..self.i + 4])
                                        .map_err(|e| e.to_string())?;
                                    let n =
                                        u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                    s.push(char::from_u32(n).unwrap_or('\u{fffd}'));
                                    self.i += 4;
                                }
                                _ => return self.err("bad escape"),
                            }
                        }
                        Some(&c) if c < 0x20 => return self.err("control character in string"),
                        Some(_) => {
                            let start = self.i;
                            while self.i < self.b.len()
                                && !b"\"\\".contains(&self.b[self.i])
                                && self.b[self.i] >= 0x20
                            {
                                self.i += 1;
                            }
                            s.push_str(
                                std::str::from_utf8(&self.b[start..self.i])
                                    .map_err(|e| e.to_string())?,
                            );
                        }
                    }
                }
            }
            Some(b't') if self.b[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Json::Bool(true))
            }
            Some(b'f') if self.b[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Json::Bool(false))
            }
            Some(b'n') if self.b[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Json::Null)
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.b.len() && b"+-.eE0123456789".contains(&self.b[self.i]) {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.b[start..self.i]).map_err(|e| e.to_string())?;
                t.parse()
                    .map(Json::Num)
                    .map_err(|_| format!("bad number {t} at byte {start}"))
            }
            _ => self.err("unexpected character"),
        }
    }
}

/// Checks `events` against the Trace Event Format's documented fields
/// (the "JSON Array Format" of Google's "Trace Event Format" document, which
/// Perfetto and chrome://tracing read): every event has a string `name` and
/// `ph`, numeric `pid` and `tid`, a non-negative numeric `ts` (microseconds);
/// `cat` is a string and `args` an object when present; complete events
/// (`X`) have a non-negative `dur`; instant events (`i`) a scope `s` of
/// `g`, `p` or `t`; metadata events (`M`) are `process_name` or
/// `thread_name` with a string `args.name`; flow events (`s`, `f`) an `id`,
/// and a flow end binds to its enclosing slice (`bp` `e`). Per track, B/E
/// pairs nest: an `E` closes the innermost open `B` of the same name (an
/// `E` with nothing open is a slice begun before the trace started, which
/// the format allows).
pub fn validate_trace_events(events: &[Json]) -> Result<(), String> {
    let mut open: std::collections::HashMap<(u64, u64), Vec<String>> = Default::default();
    for e in events {
        let name = e
            .str("name")
            .ok_or_else(|| format!("no string name: {e:?}"))?;
        let ph = e.str("ph").ok_or_else(|| format!("no string ph: {e:?}"))?;
        let pid = e.num("pid").ok_or_else(|| format!("no pid: {e:?}"))?;
        let tid = e.num("tid").ok_or_else(|| format!("no tid: {e:?}"))?;
        if pid.fract() != 0.0 || tid.fract() != 0.0 || pid < 0.0 || tid < 0.0 {
            return Err(format!("pid/tid not integers: {e:?}"));
        }
        if !e.num("ts").is_some_and(|t| t >= 0.0) {
            return Err(format!("no non-negative ts: {e:?}"));
        }
        if e.get("cat").is_some() && e.str("cat").is_none() {
            return Err(format!("cat is not a string: {e:?}"));
        }
        if e.get("args").is_some_and(|a| !matches!(a, Json::Obj(_))) {
            return Err(format!("args is not an object: {e:?}"));
        }
        let track = (pid as u64, tid as u64);
        match ph {
            "X" => {
                if !e.num("dur").is_some_and(|d| d >= 0.0) {
                    return Err(format!("X without a non-negative dur: {e:?}"));
                }
            }
            "B" => open.entry(track).or_default().push(name.to_string()),
            "E" => {
                let stack = open.entry(track).or_default();
                if let Some(top) = stack.pop()
                    && top != name
                {
                    return Err(format!("E {name} closes B {top} on {track:?}"));
                }
            }
            "i" => {
                if !matches!(e.str("s"), Some("g" | "p" | "t")) {
                    return Err(format!("instant without scope g/p/t: {e:?}"));
                }
            }
            "M" => {
                if !matches!(name, "process_name" | "thread_name" | "trace_end") {
                    return Err(format!("unknown metadata event: {e:?}"));
                }
                if name != "trace_end" && e.get("args").and_then(|a| a.str("name")).is_none() {
                    return Err(format!("metadata without args.name: {e:?}"));
                }
            }
            "s" | "f" => {
                if e.num("id").is_none() {
                    return Err(format!("flow event without id: {e:?}"));
                }
                if ph == "f" && e.str("bp") != Some("e") {
                    return Err(format!("flow end not bound to its slice: {e:?}"));
                }
            }
            other => return Err(format!("phase {other:?} not used by gort: {e:?}")),
        }
    }
    Ok(())
}

/// A `tracing` visitor that renders a span's or event's fields as
/// `name=value ` pairs, for the tests that install a capturing subscriber.
pub struct Fields(pub String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}
