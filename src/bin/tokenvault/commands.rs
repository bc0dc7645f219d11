//! One function per subcommand: open the store, do the work, print the result.
//!
//! Results go to standard output; warnings, per-row import problems and the progress bar go to
//! standard error, so that `list --json` and `export` output can be piped.

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use tokenvault::{Durability, EncryptedStore, KdfParams, OpenOptions, Token, TokenStore};
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, ExportFormat, ImportArgs, KdfArgs, Source};
use crate::failure::Failure;
use crate::passphrase::{self, Secret};
use crate::{import, load, render};

/// The file whose presence makes a directory a store (the library's layout).
const HEADER_FILE: &str = "tokenvault.header";
/// Pins the clock for `list`, `show` and `purge-expired` (Unix epoch milliseconds), so that
/// their output can be compared exactly in tests.
const NOW_ENV: &str = "TOKENVAULT_NOW_MS";

/// Runs the parsed command line, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<ExitCode, Failure> {
    let file = cli.passphrase_file.as_deref();
    match cli.command {
        Command::Init { path, kdf } => init(&path, &kdf, file, out),
        Command::List { path, json } => list(&path, json, file, out),
        Command::Show { path, id, reveal } => show(&path, &id, reveal, file, out),
        Command::Delete { path, id } => delete(&path, &id, file, out),
        Command::PurgeExpired { path } => purge_expired(&path, file, out),
        Command::Passwd {
            path,
            new_passphrase_file,
        } => passwd(&path, file, new_passphrase_file.as_deref(), out),
        Command::Verify { path } => verify(&path, file, out),
        Command::Repair { path } => repair(&path, file, out),
        Command::Import(args) => import(&args, file, out),
        Command::Export {
            path,
            format: ExportFormat::Json,
            reveal,
        } => export(&path, reveal, file, out),
    }
}

/// The passphrase of an existing store.
fn current_passphrase(file: Option<&Path>) -> Result<Secret, Failure> {
    passphrase::Source {
        file,
        env: passphrase::ENV_CURRENT,
        flag: "--passphrase-file",
        prompt: "Passphrase",
    }
    .existing()
}

/// Opens an existing store; never creates one (that is `init`'s job).
fn open(
    path: &Path,
    file: Option<&Path>,
    options: &OpenOptions,
) -> Result<EncryptedStore, Failure> {
    if !path.join(HEADER_FILE).is_file() {
        return Err(Failure::new(format!(
            "no store at {}; create one with `tokenvault init {}`",
            path.display(),
            path.display()
        )));
    }
    let passphrase = current_passphrase(file)?;
    options
        .open(path, &*passphrase)
        .map_err(|e| Failure::store(e, path))
}

fn open_default(path: &Path, file: Option<&Path>) -> Result<EncryptedStore, Failure> {
    open(path, file, &OpenOptions::new())
}

/// Now in Unix epoch milliseconds, or the time pinned by `TOKENVAULT_NOW_MS`.
fn now_ms() -> Result<i64, Failure> {
    if let Some(pinned) = std::env::var_os(NOW_ENV) {
        return pinned
            .to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::new(format!("{NOW_ENV} must be Unix epoch milliseconds")));
    }
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Failure::new("the system clock is before 1970"))?;
    Ok(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}

/// A line on standard error. A failure to write it has nowhere to be reported.
fn note(message: &str) {
    let _ = writeln!(io::stderr(), "{message}");
}

/// Every token, sorted by id, zeroized when dropped.
fn all_tokens(store: &EncryptedStore) -> Result<Zeroizing<Vec<Token>>, Failure> {
    let mut tokens = Zeroizing::new(
        store
            .get_tokens()
            .map_err(|e| Failure::store(e, store.path()))?,
    );
    render::sort_by_id(&mut tokens);
    Ok(tokens)
}

/// The KDF cost asked for; lanes default to 4, fewer when the memory cannot feed 4.
fn kdf_params(args: &KdfArgs) -> KdfParams {
    let default = KdfParams::default();
    let memory_kib = args.kdf_memory.unwrap_or(default.memory_kib);
    // Argon2 needs at least 8 KiB per lane.
    let parallelism = args
        .kdf_parallelism
        .unwrap_or_else(|| default.parallelism.min(memory_kib / 8).max(1));
    KdfParams {
        memory_kib,
        iterations: args.kdf_iterations.unwrap_or(default.iterations),
        parallelism,
    }
}

fn init(
    path: &Path,
    args: &KdfArgs,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<ExitCode, Failure> {
    if path.join(HEADER_FILE).exists() {
        return Err(Failure::new(format!(
            "a store already exists at {}; init only creates new stores",
            path.display()
        )));
    }
    let kdf = kdf_params(args);
    let passphrase = passphrase::Source {
        file,
        env: passphrase::ENV_CURRENT,
        flag: "--passphrase-file",
        prompt: "Passphrase for the new store",
    }
    .chosen()?;
    create(path, kdf, &passphrase)?;
    let default = KdfParams::default();
    if kdf.memory_kib < default.memory_kib || kdf.iterations < default.iterations {
        note(
            "warning: the key-derivation cost is below the default, which makes guessing the \
             passphrase from a copy of the store cheaper",
        );
    }
    writeln!(
        out,
        "created the store {} (Argon2id: {} KiB, {} pass(es), {} lane(s))",
        path.display(),
        kdf.memory_kib,
        kdf.iterations,
        kdf.parallelism
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Creates the store, durably.
fn create(path: &Path, kdf: KdfParams, passphrase: &Secret) -> Result<(), Failure> {
    let store = OpenOptions::new()
        .kdf(kdf)
        .open(path, &**passphrase)
        .map_err(|e| match e {
            // Here "damaged" means "this is not an empty directory": no verify hint.
            tokenvault::Error::Corrupt { what } => Failure::new(format!(
                "cannot create a store at {}: {what}",
                path.display()
            )),
            other => Failure::store(other, path),
        })?;
    store.flush().map_err(|e| Failure::store(e, path))
}

fn list(
    path: &Path,
    json: bool,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<ExitCode, Failure> {
    let now = now_ms()?;
    let store = open_default(path, file)?;
    let tokens = all_tokens(&store)?;
    if json {
        render::list_json(out, &tokens, now)?;
    } else if tokens.is_empty() {
        writeln!(out, "no tokens")?;
    } else {
        out.write_all(render::list_table(&tokens, now).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(
    path: &Path,
    id: &str,
    reveal: bool,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<ExitCode, Failure> {
    let now = now_ms()?;
    let store = open_default(path, file)?;
    let token = store
        .find_token_by_id(id)
        .map_err(|e| Failure::store(e, path))?
        .map(Zeroizing::new)
        .ok_or_else(|| Failure::store(not_found(id), path))?;
    let text = Zeroizing::new(render::show(&token, now, reveal));
    out.write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn not_found(id: &str) -> tokenvault::Error {
    tokenvault::Error::NotFound { id: id.into() }
}

fn delete(
    path: &Path,
    id: &str,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<ExitCode, Failure> {
    let store = open_default(path, file)?;
    store
        .delete_token(id)
        .map_err(|e| Failure::store(e, path))?;
    writeln!(out, "deleted the token with id {:?}", render::printable(id))?;
    Ok(ExitCode::SUCCESS)
}

fn purge_expired(
    path: &Path,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<ExitCode, Failure> {
    let now = now_ms()?;
    let store = open_default(path, file)?;
    let purged = store
        .purge_expired(now)
        .map_err(|e| Failure::store(e, path))?;
    writeln!(out, "purged {purged} expired token(s)")?;
    Ok(ExitCode::SUCCESS)
}

fn passwd(
    path: &Path,
    file: Option<&Path>,
    new_file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<ExitCode, Failure> {
    let store = open_default(path, file)?;
    let new = passphrase::Source {
        file: new_file,
        env: passphrase::ENV_NEW,
        flag: "--new-passphrase-file",
        prompt: "New passphrase",
    }
    .chosen()?;
    store
        .change_passphrase(&*new)
        .map_err(|e| Failure::store(e, path))?;
    writeln!(out, "changed the passphrase of {}", path.display())?;
    Ok(ExitCode::SUCCESS)
}

/// Opens for `verify` and `repair`: a store whose commit seal reports lost commits opens too.
fn open_for_recovery(path: &Path, file: Option<&Path>) -> Result<EncryptedStore, Failure> {
    open(path, file, OpenOptions::new().recover(true))
}

fn verify(path: &Path, file: Option<&Path>, out: &mut dyn Write) -> Result<ExitCode, Failure> {
    let store = open_for_recovery(path, file)?;
    let report = store.verify().map_err(|e| Failure::store(e, path))?;
    out.write_all(render::verify_report(&report).as_bytes())?;
    if report.is_clean() {
        writeln!(out, "result: no damage found")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "result: damage found; run `tokenvault repair {}` to salvage what authenticates",
        path.display()
    )?;
    Ok(ExitCode::FAILURE)
}

fn repair(path: &Path, file: Option<&Path>, out: &mut dyn Write) -> Result<ExitCode, Failure> {
    let store = open_for_recovery(path, file)?;
    let report = store.repair().map_err(|e| Failure::store(e, path))?;
    out.write_all(render::repair_report(&report).as_bytes())?;
    writeln!(out, "result: repaired")?;
    Ok(ExitCode::SUCCESS)
}

fn export(
    path: &Path,
    reveal: bool,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<ExitCode, Failure> {
    let store = open_default(path, file)?;
    let tokens = all_tokens(&store)?;
    if reveal {
        note(
            "warning: this export holds every secret in plaintext; keep it out of backups and \
             shared folders, and delete it securely (e.g. `shred -u FILE`) once it is imported",
        );
    }
    render::export_json(out, &tokens, reveal)?;
    Ok(ExitCode::SUCCESS)
}

fn import(
    args: &ImportArgs,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<ExitCode, Failure> {
    let started = Instant::now();
    let rows = read_rows(args)?;
    let total = rows.len();
    // Buffered: one flush at the end instead of a sync per token.
    let mut options = OpenOptions::new();
    options.durability(Durability::Buffered);
    let store = open(&args.path, file, &options)?;
    let plan = {
        let stored = all_tokens(&store)?;
        load::plan(rows, &stored, args.replace)
    };
    report_problems(&plan.problems, total, args.skip_invalid)?;

    let skipped = plan.problems.len();
    let outcome = write_rows(&store, plan.accepted, &args.path)?;
    let replaced = match outcome.replaced {
        0 => String::new(),
        n => format!(", replaced {n} stored"),
    };
    writeln!(
        out,
        "imported {} token(s), skipped {skipped}{replaced}, in {:.2} s",
        outcome.imported,
        started.elapsed().as_secs_f64()
    )?;
    note(&format!(
        "note: {} still holds these secrets in plaintext; once `tokenvault verify {}` passes and \
         your app uses the store, delete it securely (e.g. `shred -u {}`)",
        args.file.display(),
        args.path.display(),
        args.file.display()
    ));
    Ok(ExitCode::SUCCESS)
}

fn read_rows(args: &ImportArgs) -> Result<Vec<import::Row>, Failure> {
    match args.from {
        Source::ZohoCsv => import::zoho_csv(&args.file),
        Source::Sqlite => {
            let table = args.table.as_deref().unwrap_or(import::DEFAULT_TABLE);
            import::sqlite(&args.file, table)
        }
        Source::Json => import::json(&args.file),
    }
}

/// Reports each row that cannot be imported; fails unless they are to be skipped.
fn report_problems(
    problems: &[load::Problem],
    total: usize,
    skip_invalid: bool,
) -> Result<(), Failure> {
    for problem in problems {
        note(&format!("{}: {}", problem.place, problem.reason));
    }
    if problems.is_empty() || skip_invalid {
        return Ok(());
    }
    let replace_hint = if problems.iter().any(|p| p.conflict) {
        ", --replace to overwrite the stored tokens in conflict"
    } else {
        ""
    };
    Err(Failure::new(format!(
        "{} of {total} row(s) cannot be imported, so nothing was imported; fix them, or pass \
         --skip-invalid to import the others{replace_hint}",
        problems.len()
    )))
}

/// Writes the rows and flushes once; what was written before a failure is flushed too.
fn write_rows(
    store: &EncryptedStore,
    accepted: Vec<load::Accepted>,
    path: &Path,
) -> Result<load::Outcome, Failure> {
    let bar = progress_bar(accepted.len());
    let written = load::write(store, accepted, &bar);
    bar.finish_and_clear();
    let flushed = store.flush();
    let (err, imported) = match (written, flushed) {
        (Ok(outcome), Ok(())) => return Ok(outcome),
        (Err((e, outcome)), _) => (e, outcome.imported),
        (Ok(outcome), Err(e)) => (e, outcome.imported),
    };
    Err(Failure::new(format!(
        "{} (the import stopped after {imported} token(s))",
        Failure::store(err, path)
    )))
}

/// A progress bar on standard error when it is a terminal; otherwise one that draws nothing.
fn progress_bar(len: usize) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} tokens, {eta} left") {
        bar.set_style(style);
    }
    bar
}
