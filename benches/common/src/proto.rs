//! What every store under measurement offers, and the line protocol that lets a store living in
//! another process (SQLCipher, which cannot share a binary with SQLite) take part in the same
//! interleaved rounds as the others.
//!
//! The parent writes one command a line; the child answers `ok <nanoseconds>`, `none` (the store
//! has no such operation) or `err <message>`. Only counts and indices cross the pipe: both sides
//! generate the tokens themselves (see [`crate::data`]).

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command as Process, Stdio};
use std::time::Duration;

use crate::data::Path;

/// The error of any step of a benchmark: they only ever get printed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// A benchmark step's result.
pub type Result<T> = std::result::Result<T, Error>;

/// Which kind of save a write batch makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// A new token: token `n + k` for the `k`-th insert.
    Insert,
    /// A refresh: token `k` gets new access and refresh tokens and a new expiry.
    Update,
}

impl Write {
    fn name(self) -> &'static str {
        match self {
            Write::Insert => "insert",
            Write::Update => "update",
        }
    }
}

/// A store under measurement. Each method does its work untimed first (generating the tokens
/// it needs) and returns only the time of the operations themselves.
pub trait Backend {
    /// Creates the store with buffered writes and saves tokens `0..n`,
    /// [`LOAD_CHUNK`](crate::sql::LOAD_CHUNK) to a commit. The time includes making them
    /// durable at the end where the store offers that.
    fn load(&mut self, n: u64) -> Result<Duration>;

    /// Opens an existing store of `n` tokens with durable writes; returns the open time.
    fn attach(&mut self, n: u64) -> Result<Duration>;

    /// Runs lookups `first..first + count` (see [`crate::data::lookup_index`]) on one path.
    /// Fails if any lookup misses.
    fn lookups(&mut self, path: Path, first: u64, count: u64) -> Result<Duration>;

    /// Reads every token.
    fn scan(&mut self) -> Result<Duration>;

    /// Makes saves `first..first + count` of one kind, durable or not as the store was opened.
    fn writes(&mut self, kind: Write, first: u64, count: u64) -> Result<Duration>;

    /// Closes the store and opens it again; returns the time of the open.
    fn reopen(&mut self, durable: bool) -> Result<Duration>;

    /// Changes the passphrase (to another one and back on the next call); `None` for a store
    /// without one.
    fn rekey(&mut self) -> Result<Option<Duration>>;
}

/// One request of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// [`Backend::load`].
    Load(u64),
    /// [`Backend::attach`].
    Attach(u64),
    /// [`Backend::lookups`].
    Lookups(Path, u64, u64),
    /// [`Backend::scan`].
    Scan,
    /// [`Backend::writes`].
    Writes(Write, u64, u64),
    /// [`Backend::reopen`].
    Reopen(bool),
    /// [`Backend::rekey`].
    Rekey,
}

impl Command {
    /// The command as one line, without the newline.
    pub fn line(self) -> String {
        match self {
            Command::Load(n) => format!("load {n}"),
            Command::Attach(n) => format!("attach {n}"),
            Command::Lookups(path, first, count) => {
                format!("lookups {} {first} {count}", path.name())
            }
            Command::Scan => "scan".into(),
            Command::Writes(kind, first, count) => {
                format!("writes {} {first} {count}", kind.name())
            }
            Command::Reopen(durable) => format!("reopen {}", u8::from(durable)),
            Command::Rekey => "rekey".into(),
        }
    }

    /// Parses a line written by [`Command::line`].
    pub fn parse(line: &str) -> Result<Command> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize| -> Result<u64> {
            let word = words.get(i).ok_or("a number is missing")?;
            Ok(word.parse()?)
        };
        let word = |i: usize| words.get(i).copied().unwrap_or_default();
        Ok(match word(0) {
            "load" => Command::Load(number(1)?),
            "attach" => Command::Attach(number(1)?),
            "lookups" => {
                let path = Path::from_name(word(1)).ok_or("unknown lookup path")?;
                Command::Lookups(path, number(2)?, number(3)?)
            }
            "scan" => Command::Scan,
            "writes" => {
                let kind = [Write::Insert, Write::Update]
                    .into_iter()
                    .find(|k| k.name() == word(1))
                    .ok_or("unknown write kind")?;
                Command::Writes(kind, number(2)?, number(3)?)
            }
            "reopen" => Command::Reopen(number(1)? == 1),
            "rekey" => Command::Rekey,
            other => return Err(format!("unknown command {other:?}").into()),
        })
    }

    /// Runs the command on a local store.
    pub fn run(self, backend: &mut dyn Backend) -> Result<Option<Duration>> {
        match self {
            Command::Load(n) => backend.load(n).map(Some),
            Command::Attach(n) => backend.attach(n).map(Some),
            Command::Lookups(path, first, count) => backend.lookups(path, first, count).map(Some),
            Command::Scan => backend.scan().map(Some),
            Command::Writes(kind, first, count) => backend.writes(kind, first, count).map(Some),
            Command::Reopen(durable) => backend.reopen(durable).map(Some),
            Command::Rekey => backend.rekey(),
        }
    }
}

/// Answers commands from `input` until it ends: the child's side of the protocol.
pub fn serve(backend: &mut dyn Backend, input: impl BufRead, mut output: impl std::io::Write) {
    for line in input.lines() {
        let reply = match line.map_err(Error::from).and_then(|l| Command::parse(&l)) {
            Ok(command) => match command.run(backend) {
                Ok(Some(took)) => format!("ok {}", took.as_nanos()),
                Ok(None) => "none".to_string(),
                Err(e) => format!("err {}", one_line(&e.to_string())),
            },
            Err(e) => format!("err {}", one_line(&e.to_string())),
        };
        if writeln!(output, "{reply}")
            .and_then(|()| output.flush())
            .is_err()
        {
            return;
        }
    }
}

fn one_line(message: &str) -> String {
    message.replace('\n', " ")
}

/// A store served by a child process: the parent's side of the protocol.
pub struct Remote {
    child: Child,
    /// `None` only while dropping: closing it tells the child to exit.
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl Remote {
    /// Starts `program serve <dir>`.
    pub fn spawn(program: &std::path::Path, dir: &std::path::Path) -> Result<Remote> {
        let mut child = Process::new(program)
            .arg("serve")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", program.display()))?;
        let input = child.stdin.take().ok_or("the child has no stdin")?;
        let output = BufReader::new(child.stdout.take().ok_or("the child has no stdout")?);
        Ok(Remote {
            child,
            input: Some(input),
            output,
        })
    }

    fn call(&mut self, command: Command) -> Result<Option<Duration>> {
        let input = self
            .input
            .as_mut()
            .ok_or("the pipe to the peer is closed")?;
        writeln!(input, "{}", command.line())?;
        input.flush()?;
        let mut reply = String::new();
        if self.output.read_line(&mut reply)? == 0 {
            return Err("the peer process exited".into());
        }
        let reply = reply.trim_end();
        if reply == "none" {
            return Ok(None);
        }
        if let Some(message) = reply.strip_prefix("err ") {
            return Err(format!("peer: {message}").into());
        }
        let nanos: u64 = reply
            .strip_prefix("ok ")
            .ok_or("a malformed reply")?
            .parse()?;
        Ok(Some(Duration::from_nanos(nanos)))
    }

    fn timed(&mut self, command: Command) -> Result<Duration> {
        self.call(command)?
            .ok_or_else(|| format!("the peer cannot run {:?}", command.line()).into())
    }
}

impl Backend for Remote {
    fn load(&mut self, n: u64) -> Result<Duration> {
        self.timed(Command::Load(n))
    }

    fn attach(&mut self, n: u64) -> Result<Duration> {
        self.timed(Command::Attach(n))
    }

    fn lookups(&mut self, path: Path, first: u64, count: u64) -> Result<Duration> {
        self.timed(Command::Lookups(path, first, count))
    }

    fn scan(&mut self) -> Result<Duration> {
        self.timed(Command::Scan)
    }

    fn writes(&mut self, kind: Write, first: u64, count: u64) -> Result<Duration> {
        self.timed(Command::Writes(kind, first, count))
    }

    fn reopen(&mut self, durable: bool) -> Result<Duration> {
        self.timed(Command::Reopen(durable))
    }

    fn rekey(&mut self) -> Result<Option<Duration>> {
        self.call(Command::Rekey)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Closing stdin ends the child's loop; it closes its store on the way out.
        drop(self.input.take());
        let _ = self.child.wait();
    }
}
