//! Child processes that are killed on drop, and their output lines.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The lines a child has written to one of its output streams so far, filled by
/// a reader thread. Every wait is bounded.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    shared: Arc<LinesShared>,
}

#[derive(Debug, Default)]
struct LinesShared {
    state: Mutex<LinesState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct LinesState {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    fn state(&self) -> MutexGuard<'_, LinesState> {
        // A reader thread that panicked leaves plain data behind; keep using it.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: String) {
        self.state().lines.push(line);
        self.shared.changed.notify_all();
    }

    fn close(&self) {
        self.state().closed = true;
        self.shared.changed.notify_all();
    }

    /// Starts a thread that reads `stream` line by line into a new `Lines`,
    /// echoing each line to stderr prefixed with `label` (cargo test shows it
    /// only when a test fails).
    fn collect(stream: impl Read + Send + 'static, label: String) -> Self {
        let lines = Self::default();
        let sink = lines.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\r', '\n'])
                            .to_owned();
                        eprintln!("[{label}] {line}");
                        sink.push(line);
                    }
                }
            }
            sink.close();
        });
        lines
    }

    /// A copy of every line so far.
    pub fn snapshot(&self) -> Vec<String> {
        self.state().lines.clone()
    }

    /// Whether the stream has ended (the child closed it or exited).
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Waits until some line satisfies `pred` and returns the first such line;
    /// fails once `timeout` has passed or the stream ended without one.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if let Some(line) = state.lines.iter().find(|line| pred(line)) {
                return Ok(line.clone());
            }
            if state.closed {
                bail!(
                    "the stream ended without the awaited line; it had:\n{}",
                    state.lines.join("\n")
                );
            }
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                bail!(
                    "no awaited line within {timeout:?}; lines so far:\n{}",
                    state.lines.join("\n")
                );
            };
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until at least `count` lines satisfy `pred` and returns all lines
    /// that do (possibly more than `count`); fails once `timeout` has passed or
    /// the stream ended with fewer.
    pub fn wait_count(
        &self,
        count: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            let matching: Vec<String> = state
                .lines
                .iter()
                .filter(|line| pred(line))
                .cloned()
                .collect();
            if matching.len() >= count {
                return Ok(matching);
            }
            if state.closed {
                bail!(
                    "the stream ended with {} of {count} awaited lines; it had:\n{}",
                    matching.len(),
                    state.lines.join("\n")
                );
            }
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                bail!(
                    "{} of {count} awaited lines within {timeout:?}; lines so far:\n{}",
                    matching.len(),
                    state.lines.join("\n")
                );
            };
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until the stream ends (bounded by `timeout`) and returns every line.
    pub fn wait_closed(&self, timeout: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if state.closed {
                return Ok(state.lines.clone());
            }
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                bail!(
                    "the stream did not end within {timeout:?}; lines so far:\n{}",
                    state.lines.join("\n")
                );
            };
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A child process with its stdout and stderr collected line by line. Dropping
/// it kills the child (if still running) and reaps it, so no test leaves a peer
/// behind, whether it passes, fails or panics.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

impl Process {
    /// Spawns `cmd` with stdin closed and stdout/stderr piped into [`Lines`].
    /// `name` labels the child in echoed output and errors.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start {name}: {cmd:?}"))?;
        let stdout = match child.stdout.take() {
            Some(out) => Lines::collect(out, format!("{name} stdout")),
            None => Lines::default(),
        };
        let stderr = match child.stderr.take() {
            Some(err) => Lines::collect(err, format!("{name} stderr")),
            None => Lines::default(),
        };
        Ok(Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        })
    }

    /// Runs `cmd` to completion, bounded by `timeout`, and returns its stdout
    /// lines; fails (with both streams) unless it exits successfully.
    pub fn run(name: &str, cmd: &mut Command, timeout: Duration) -> Result<Vec<String>> {
        let mut process = Self::spawn(name, cmd)?;
        let status = process.wait_timeout(timeout)?;
        let lines = process.stdout.wait_closed(Duration::from_secs(5))?;
        if !status.success() {
            bail!("{name} failed ({status})\n{}", process.output_so_far());
        }
        Ok(lines)
    }

    /// The label given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's standard output, line by line.
    pub fn stdout(&self) -> &Lines {
        &self.stdout
    }

    /// The child's standard error, line by line.
    pub fn stderr(&self) -> &Lines {
        &self.stderr
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("could not poll {}", self.name))
    }

    /// Waits at most `timeout` for the child to exit on its own. On timeout the
    /// child is killed and an error carrying its output is returned.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "{} did not exit within {timeout:?} and was killed\nstdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.stdout.snapshot().join("\n"),
                    self.stderr.snapshot().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the child at once (SIGKILL on Unix: it gets no chance to say
    /// goodbye, so its sockets close without a DISCONNECT) and reaps it.
    pub fn kill(&mut self) {
        // Either it is running and this kills it, or it already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Both output streams so far, for error messages.
    pub fn output_so_far(&self) -> String {
        format!(
            "{} stdout:\n{}\n{} stderr:\n{}",
            self.name,
            self.stdout.snapshot().join("\n"),
            self.name,
            self.stderr.snapshot().join("\n")
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
