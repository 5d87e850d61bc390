//! The load bars of issue 12 item 4, on loopback: 200 students upload 2 MB camera originals at the same instant.
//! Two cores cannot check 200 photos in 1.5 s (each takes ~50 ms of CPU), so the service answers each upload with
//! the file rules and its place in the check queue, and the full report follows on the same page. Measured, each
//! as a ratio to its bar:
//! (a) the file rules' answer within 300 ms of the upload's last byte — read by the server (its `Server-Timing`)
//!     and as the client sees it (from its body's last byte handed to the socket);
//! (b) checks started in arrival order (each claim's time from its lease, against the photos' ids);
//! (c) the burst's last full report within 1.15 × (200 × CPU per check ÷ cores) of the first byte, the CPU per
//!     check measured serially in this process beforehand;
//! (d) status pages (GET /me as a phone opens it) p95 under 50 ms meanwhile;
//! (e) no errors.
//! A second scenario spreads the same number of uploads over ~10 s, as a class arriving at the photo booth would:
//! there each full report should follow its upload within 1.5 s (p95).
//!
//! The service runs in this process on a runtime of its own, built as `gradphoto serve` builds it (one worker per
//! core). Uploaders and status pollers have runtimes of their own too, so that the clients' work does not stop a
//! poll's clock inside the server's threads.
//!
//! Run: `cargo bench -p gradphoto-web --bench load`; `UPLOAD_CPU=1` stops after one upload's CPU by stage (issue 13
//! item 4), the serial measure before the burst.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// The allocator `gradphoto serve` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use common::{Client, TestServer, id_number, roster_csv, school};
use futures::StreamExt;
use gradphoto_core::annotate::{annotate, annotated_jpeg};
use gradphoto_core::{CheckOptions, normalise};
use gradphoto_store::blob::sha256_hex;
use gradphoto_store::db::Role;
use gradphoto_testkit::exif::ExifSpec;
use gradphoto_testkit::{JpegSpec, add_noise, encode};

/// Students uploading in each scenario.
const UPLOADERS: usize = 200;
/// Other signed-in students polling their status page meanwhile.
const POLLERS: usize = 10;
/// A phone refreshing, not a tight loop: each poller waits this long between its requests.
const POLL_PAUSE: Duration = Duration::from_millis(100);
/// The second scenario's uploads start at random moments within this window.
const SPREAD: Duration = Duration::from_secs(10);
/// (a): the file rules' answer after the upload's last byte.
const ANSWER_BAR: Duration = Duration::from_millis(300);
/// The spread-out scenario: each full report after its upload started.
const REPORT_BAR: Duration = Duration::from_millis(1500);
const PAGE_BAR: Duration = Duration::from_millis(50);
/// (c): the burst's last report within this many times the cores' floor.
const FLOOR_FACTOR: f64 = 1.15;
/// The originals' target size: what the issue calls a 2 MB original.
const TARGET_BYTES: usize = 2_000_000;
/// How many different originals the uploaders share (each built from another portrait).
const ORIGINALS: usize = 4;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb(n: usize) -> f64 {
    n as f64 / 1e6
}

/// Nearest-rank percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (busy, total) jiffies of all CPUs, from /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU time (user + system) in clock ticks of this process's threads, by thread name (the main thread, which only
/// waits for the clients' tasks, is `main`).
fn ticks_by_thread() -> std::collections::BTreeMap<String, u64> {
    let mut by = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return by };
    let me = std::process::id().to_string();
    for t in dir.flatten() {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let name = if t.file_name().to_string_lossy() == me {
            "main".to_string()
        } else {
            // Numbered threads (check-0, sqlx-sqlite-worker-3) are one group.
            head.split_once('(').map_or("", |(_, n)| n).trim_end_matches(|c: char| c.is_ascii_digit()).to_string()
        };
        *by.entry(name).or_insert(0) += stat_ticks(rest);
    }
    by
}

/// User + system ticks from what follows the command's closing parenthesis in a `stat` file: state, ppid, …
/// utime is the 12th field there, stime the 13th.
fn stat_ticks(after_command: &str) -> u64 {
    let f: Vec<&str> = after_command.split_whitespace().collect();
    let at = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    at(11) + at(12)
}

/// CPU ticks by side: check threads, the clients (their runtimes and the main thread), everything else (the
/// service's runtime and blocking pool, SQLite's threads).
fn own_ticks() -> [u64; 3] {
    let mut by = [0u64; 3];
    for (name, ticks) in ticks_by_thread() {
        let which = if name.starts_with("check-") {
            0
        } else if name.starts_with("client-") || name == "main" {
            1
        } else {
            2
        };
        by[which] += ticks;
    }
    by
}

/// This process's CPU time (user + system, all threads) in clock ticks.
fn process_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    stat_ticks(stat.rsplit_once(')').map_or("", |(_, r)| r))
}

/// The CPU that taking in `n` originals needs besides their checks, with nothing else running: hashing each and
/// writing it durably as the service does (stage: write, fsync, rename; publish: rename). The part of the service's
/// own work that no design can skip (it must keep what it acknowledged, and know its hash); receiving the bytes from
/// the socket comes on top.
fn storing_cpu(rt: &tokio::runtime::Runtime, originals: &[(String, Vec<u8>)], n: usize) -> Duration {
    use gradphoto_store::{BlobKey, BlobStore, LocalStore};
    let dir = tempfile::tempdir().expect("temp dir");
    let store = rt.block_on(LocalStore::open(dir.path())).expect("store");
    let before = process_ticks();
    rt.block_on(async {
        for i in 0..n {
            let bytes = &originals[i % originals.len()].1;
            let key = BlobKey::new("original");
            std::hint::black_box(sha256_hex(bytes));
            store.stage(&key, bytes).await.expect("stage");
            store.publish(&key).await.expect("publish");
        }
    });
    Duration::from_millis((process_ticks() - before) * 10)
}

/// The same checks as the service runs (check, annotate, encode, hashes), `n` of them on `threads` threads at once
/// with no HTTP, no database and no store: what the cores can do at best, in parallel.
fn parallel_floor(
    state: &gradphoto_web::state::AppState,
    profile: &gradphoto_core::Profile,
    originals: &[(String, Vec<u8>)],
    n: usize,
    threads: usize,
) -> Duration {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let with = CheckOptions { models: Some(state.models.clone()), ..CheckOptions::default() };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let bytes = &originals[i % originals.len()].1;
                    let checked = gradphoto_core::check("a.jpg", bytes, profile, &with);
                    if let Some(a) = annotated_jpeg(&checked) {
                        std::hint::black_box((sha256_hex(bytes), sha256_hex(&a)));
                    }
                }
            });
        }
    });
    t.elapsed()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The JPEG of `img` whose size is nearest `target`: a bisection over the quality, as size grows with it.
fn near_size(img: &image::RgbImage, target: usize) -> (u8, Vec<u8>) {
    let at = |q: u8| {
        let spec = JpegSpec { quality: q, exif: Some(ExifSpec::camera().build()), ..Default::default() };
        encode(img, &spec)
    };
    let (mut lo, mut hi) = (50u8, 98u8);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if at(mid).len() < target { lo = mid + 1 } else { hi = mid }
    }
    let above = at(lo);
    if lo > 50 {
        let below = at(lo - 1);
        if below.len().abs_diff(target) < above.len().abs_diff(target) {
            return (lo - 1, below);
        }
    }
    (lo, above)
}

/// 12-megapixel studio originals of different portraits (those a reviewer would approve first), the face 1000 px
/// wide, with a camera's grain and EXIF, each at the quality that lands nearest 2 MB.
fn originals() -> Vec<(String, Vec<u8>)> {
    let models = gradphoto_eval::face_models(&gradphoto_testkit::models_data_dir()).expect("face models");
    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    let sources = gradphoto_eval::sources(&models, &portraits);
    // Portraits a reviewer would approve first, then others: a class's uploads are not all good.
    let mut sources: Vec<&gradphoto_eval::Source> = sources.iter().collect();
    sources.sort_by_key(|src| src.mouth_closed != Some(true) || src.head_tilted);
    sources
        .into_iter()
        .take(ORIGINALS)
        .enumerate()
        .map(|(i, src)| {
            let mut img = gradphoto_eval::to_image(&gradphoto_eval::studio_original(src, 3000, 4000, 1000.0));
            // The sources are enlarged about four times: without a sensor's grain they compress far below a
            // camera file's size at any quality a camera uses.
            add_noise(&mut img, 3, 0x5eed + i as u64);
            let (q, bytes) = near_size(&img, TARGET_BYTES);
            println!("original {}: 3000 × 4000, quality {q}, {:.2} MB", src.name, mb(bytes.len()));
            // DUMP=DIR writes the originals there and stops, for `examples/stages` to say where their checks' time goes.
            if let Some(dir) = std::env::var_os("DUMP") {
                let path = std::path::Path::new(&dir).join(format!("original-{i}.jpg"));
                std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            (src.name.clone(), bytes)
        })
        .collect()
}

/// What one upload measured.
struct UploadTimes {
    /// Request start to the immediate answer read.
    answer: Duration,
    /// The body's last byte handed to the socket to the answer read (the client's view of (a)).
    after_last_byte: Duration,
    /// The server's own (a): last byte read to answer (`Server-Timing: answer;dur=`).
    server_answer: Duration,
    /// Request start to the full report known (the long poll answered).
    report: Duration,
    /// When the full report was known.
    report_at: Instant,
    photo: i64,
    /// The place in the queue the answer gave.
    place: i64,
    /// The server's answer by step (its `Server-Timing`).
    steps: Vec<(String, Duration)>,
}

/// What one scenario measured.
#[derive(Default)]
struct Outcome {
    uploads: Vec<UploadTimes>,
    upload_errors: Vec<String>,
    polls: Vec<Duration>,
    /// The slowest status pages: when they started (from the first upload's start) and how long they took.
    slowest_polls: Vec<(f64, Duration)>,
    poll_errors: Vec<String>,
    /// First byte to the last full report.
    wall: Duration,
    /// Claims out of arrival order: pairs of consecutive photos (by id) whose checks started in the other order.
    claim_inversions: usize,
    /// Places in the queue the answers gave.
    max_place: i64,
    load_before: String,
    load_after: String,
}

impl Outcome {
    fn sorted(&self, f: impl Fn(&UploadTimes) -> Duration) -> Vec<Duration> {
        let mut v: Vec<Duration> = self.uploads.iter().map(f).collect();
        v.sort();
        v
    }
}

/// The body in 256 KiB chunks, noting when the last one is handed over.
fn timed_body(bytes: &bytes::Bytes, last_byte: Arc<std::sync::Mutex<Option<Instant>>>) -> reqwest::Body {
    // Slices of one shared buffer: the clients copy nothing (their CPU is the service's loss on one machine).
    let chunk = 256 * 1024;
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        (0..bytes.len()).step_by(chunk).map(|i| Ok(bytes.slice(i..(i + chunk).min(bytes.len())))).collect();
    let stream = futures::stream::iter(chunks).chain(futures::stream::poll_fn(move |_| {
        *last_byte.lock().unwrap() = Some(Instant::now());
        std::task::Poll::Ready(None)
    }));
    reqwest::Body::wrap_stream(stream)
}

/// One upload: the immediate answer, then the long poll until the full report is there.
async fn upload_once(c: Arc<Client>, type_id: i64, name: String, bytes: bytes::Bytes) -> Result<UploadTimes, String> {
    let last_byte = Arc::new(std::sync::Mutex::new(None));
    let part = reqwest::multipart::Part::stream_with_length(timed_body(&bytes, last_byte.clone()), bytes.len() as u64)
        .file_name(format!("{name}.JPG"));
    let t = Instant::now();
    let r = c
        .http
        .post(format!("{}/me/photos/{type_id}", c.base))
        .header("accept", "application/json")
        .header("x-csrf-token", &c.csrf)
        .multipart(reqwest::multipart::Form::new().part("photo", part))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .map_err(|e| format!("upload: {e}"))?;
    let status = r.status();
    // `answer;dur=…, file;dur=…, stage;dur=…, …`
    let timing: Vec<(String, f64)> = r
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .filter_map(|m| {
                    let (name, dur) = m.trim().split_once(";dur=")?;
                    Some((name.to_string(), dur.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let server_answer = timing.iter().find(|(n, _)| n == "answer").map(|(_, ms)| Duration::from_secs_f64(ms / 1e3));
    let steps = timing
        .iter()
        .filter(|(n, _)| n != "answer")
        .map(|(n, ms)| (n.clone(), Duration::from_secs_f64(ms / 1e3)))
        .collect();
    let body = r.bytes().await.map_err(|e| format!("upload body: {e}"))?;
    let answered = Instant::now();
    if status != 200 {
        return Err(format!("upload: HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("upload: not JSON: {e}"))?;
    let Some(photo) = v["photo"].as_i64() else { return Err(format!("upload: no photo in {v}")) };
    if !v["report"]["verdict"].is_string() || !v["place"].is_i64() {
        return Err(format!(
            "upload: no file report or place in {}",
            v.to_string().chars().take(300).collect::<String>()
        ));
    }
    let place = v["place"].as_i64().unwrap_or(0);
    let mut checking = v["checking"].as_bool().unwrap_or(false);
    while checking {
        let r = c
            .http
            .get(format!("{}/me/photos/{type_id}/check?wait=25", c.base))
            .header("accept", "application/json")
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| format!("check poll: {e}"))?;
        if r.status() != 200 {
            return Err(format!("check poll: HTTP {}", r.status()));
        }
        let v: serde_json::Value = r.json().await.map_err(|e| format!("check poll: {e}"))?;
        checking = v["checking"].as_bool().unwrap_or(false);
    }
    let report_at = Instant::now();
    let last = last_byte.lock().unwrap().unwrap_or(t);
    Ok(UploadTimes {
        answer: answered - t,
        after_last_byte: answered.saturating_duration_since(last),
        server_answer: server_answer.ok_or("upload: no Server-Timing")?,
        report: report_at - t,
        report_at,
        photo,
        place,
        steps,
    })
}

/// GETs the status page as a phone's browser does, until told to stop.
async fn poll(client: Arc<Client>, stop: Arc<AtomicBool>) -> (Vec<(Instant, Duration)>, Vec<String>) {
    let (mut times, mut errors) = (Vec::new(), Vec::new());
    let url = format!("{}/me", client.base);
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let sent = client.http.get(&url).header("accept", "text/html").timeout(Duration::from_secs(30)).send().await;
        match sent {
            Ok(r) if r.status() == 200 => match r.text().await {
                Ok(page) if page.contains("</html>") => times.push((t, t.elapsed())),
                Ok(_) => errors.push("status page: not a whole page".into()),
                Err(e) => errors.push(format!("status page body: {e}")),
            },
            Ok(r) => errors.push(format!("status page: HTTP {}", r.status())),
            Err(e) => errors.push(format!("status page: {e}")),
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    (times, errors)
}

/// Deterministic arrival offsets: all zero, or uniform over `spread` (xorshift, so every run is the same burst).
fn offsets(n: usize, spread: Duration) -> Vec<Duration> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            spread.mul_f64((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

struct Scenario<'a> {
    uploaders: &'a [Arc<Client>],
    pollers: &'a [Arc<Client>],
    type_id: i64,
    originals: &'a [(String, Vec<u8>)],
    offsets: Vec<Duration>,
}

fn run(
    s: Scenario<'_>,
    upload_rt: &tokio::runtime::Runtime,
    poll_rt: &tokio::runtime::Runtime,
    state: &gradphoto_web::state::AppState,
) -> Outcome {
    let mut out = Outcome { load_before: load_average(), ..Default::default() };
    let stop = Arc::new(AtomicBool::new(false));
    let polls: Vec<_> = s.pollers.iter().map(|c| poll_rt.spawn(poll(c.clone(), stop.clone()))).collect();
    let originals: Vec<(String, bytes::Bytes)> =
        s.originals.iter().map(|(n, b)| (n.clone(), bytes::Bytes::from(b.clone()))).collect();
    let (start, results) = upload_rt.block_on(async {
        // Let the pollers take a few turns before the uploads start: their first request opens the connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(s.uploaders.len() + 1));
        let mut tasks = Vec::new();
        for (i, (c, offset)) in s.uploaders.iter().zip(&s.offsets).enumerate() {
            let (name, bytes) = originals[i % originals.len()].clone();
            let (barrier, offset, c, type_id) = (barrier.clone(), *offset, c.clone(), s.type_id);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                tokio::time::sleep(offset).await;
                upload_once(c, type_id, name, bytes).await
            }));
        }
        barrier.wait().await;
        let start = Instant::now();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap_or_else(|e| Err(format!("uploader task: {e}"))));
        }
        (start, results)
    });
    out.load_after = load_average();
    stop.store(true, Ordering::Relaxed);
    for p in polls {
        match upload_rt.block_on(p) {
            Ok((times, errors)) => {
                for (at, took) in times {
                    out.polls.push(took);
                    let since = at
                        .checked_duration_since(start)
                        .map_or_else(|| -start.duration_since(at).as_secs_f64(), |d| d.as_secs_f64());
                    out.slowest_polls.push((since, took));
                }
                out.poll_errors.extend(errors);
            }
            Err(e) => out.poll_errors.push(format!("poller task: {e}")),
        }
    }
    for r in results {
        match r {
            Ok(u) => out.uploads.push(u),
            Err(e) => out.upload_errors.push(e),
        }
    }
    out.wall = out.uploads.iter().map(|u| u.report_at - start).max().unwrap_or_default();
    out.max_place = out.uploads.iter().map(|u| u.place).max().unwrap_or(0);
    // (b): each check's claim time (its lease's end less a lease) in the order of the photos' ids.
    let mut claims: Vec<(i64, i64)> = upload_rt.block_on(async {
        let mut v = Vec::new();
        for u in &out.uploads {
            if let Ok(p) = state.db.photo(gradphoto_store::PhotoId(u.photo)).await {
                v.push((p.id.0, p.check_lease_until - gradphoto_web::checks::LEASE_MS));
            }
        }
        v
    });
    claims.sort();
    out.claim_inversions = claims.windows(2).filter(|w| w[1].1 < w[0].1).count();
    out.polls.sort();
    out.slowest_polls.sort_by_key(|p| std::cmp::Reverse(p.1));
    out.slowest_polls.truncate(5);
    out
}

fn ratio(x: Duration, bar: Duration) -> String {
    let r = x.as_secs_f64() / bar.as_secs_f64();
    format!("{r:.2} × {}", if r <= 1.0 { "ok" } else { "MISSED" })
}

fn row(name: &str, what: &str, v: &[Duration], bar: Option<(Duration, &str)>) {
    println!(
        "| {name} | {what} | {} | {:.0} | {:.0} | {:.0} | {} |",
        v.len(),
        ms(pct(v, 50.0)),
        ms(pct(v, 95.0)),
        ms(pct(v, 100.0)),
        bar.map_or(String::new(), |(b, which)| format!(
            "{} ({which} of {:.0} ms)",
            ratio(pct(v, if which == "max" { 100.0 } else { 95.0 }), b),
            ms(b)
        )),
    );
}

/// Prints the scenario's rows; `floor` is 200 × CPU per check ÷ cores.
fn print_table(rows: &[(&str, &Outcome, bool)], floor: Duration) {
    println!("\n| scenario | measured | n | p50 ms | p95 ms | max ms | against the bar |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for (name, o, burst) in rows {
        row(
            name,
            "(a) last byte read → file rules + place (server)",
            &o.sorted(|u| u.server_answer),
            Some((ANSWER_BAR, "max")),
        );
        row(
            name,
            "(a) last byte sent → answer (client)",
            &o.sorted(|u| u.after_last_byte),
            Some((ANSWER_BAR, if *burst { "max" } else { "p95" })),
        );
        row(name, "request start → answer (client)", &o.sorted(|u| u.answer), None);
        for step in ["file", "stage", "commit", "publish", "place"] {
            let v = o.sorted(|u| u.steps.iter().find(|(n, _)| n == step).map_or(Duration::ZERO, |s| s.1));
            row(name, &format!("… of which {step} (server)"), &v, None);
        }
        row(name, "request start → full report", &o.sorted(|u| u.report), (!burst).then_some((REPORT_BAR, "p95")));
        row(name, "(d) status page GET /me", &o.polls, Some((PAGE_BAR, "p95")));
    }
    for (name, o, burst) in rows {
        println!(
            "{name}: (b) claims out of arrival order {} of {}; deepest place given {}; (e) errors {} uploads + {} pages; \
             load avg {} → {}",
            o.claim_inversions,
            o.uploads.len(),
            o.max_place,
            o.upload_errors.len(),
            o.poll_errors.len(),
            o.load_before,
            o.load_after
        );
        if *burst {
            let bar = floor.mul_f64(FLOOR_FACTOR);
            println!(
                "{name}: (c) first byte → last full report {:.2} s; floor (200 × CPU per check ÷ cores) {:.2} s; \
                 {:.3} × the floor; {} against the bar of {FLOOR_FACTOR} × the floor",
                o.wall.as_secs_f64(),
                floor.as_secs_f64(),
                o.wall.as_secs_f64() / floor.as_secs_f64(),
                ratio(o.wall, bar)
            );
        }
    }
}

/// Signs in `n` students numbered from `first` (8 at a time), optionally giving each a password of their own so
/// that `/me` shows the status page instead of sending them to change it.
async fn sign_in(base: &str, code: &str, first: u32, n: u32, own_password: bool) -> Vec<Arc<Client>> {
    let login = |i: u32| async move {
        let mut c = Client::new(base);
        let id = id_number(i);
        let (status, body) = c.login(&format!("/s/{code}/login"), &format!("S{i:05}"), &id[id.len() - 6..]).await;
        assert_eq!(status, 200, "student {i} signs in: {body}");
        if own_password {
            let r = c.post("/me/password", &[("current", &id[id.len() - 6..]), ("new", "load-bench-password")]).await;
            assert_eq!(r.status(), 200, "student {i} sets a password");
        }
        Arc::new(c)
    };
    futures::stream::iter(first..first + n).map(login).buffered(8).collect().await
}

/// The CPU this thread has used: a stage's CPU, not the time it waited for a core that other threads held.
fn thread_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

/// One original's service CPU by stage, serially on this thread (the upload profile, models loaded).
fn stage_profile(state: &gradphoto_web::state::AppState, profile: &gradphoto_core::Profile, bytes: &[u8]) -> Duration {
    let with = CheckOptions { models: Some(state.models.clone()), ..CheckOptions::default() };
    let without = CheckOptions::default();
    let runs = |f: &dyn Fn()| {
        let mut v: Vec<Duration> = (0..7)
            .map(|_| {
                let t = thread_cpu();
                f();
                thread_cpu().saturating_sub(t)
            })
            .collect();
        v.sort();
        v
    };
    let median = |f: &dyn Fn()| runs(f)[3];
    let checked = gradphoto_core::check("a.jpg", bytes, profile, &with);
    let img = checked.image.clone().expect("the original decodes");
    let picture = annotate(&img, checked.person.as_ref(), checked.mask.as_ref(), &checked.report);
    let annotated = normalise::encode_view(&picture, 85.0).expect("encode");
    let file_only = median(&|| {
        std::hint::black_box(gradphoto_core::check("a.jpg", bytes, profile, &without));
    });
    let full = median(&|| {
        std::hint::black_box(gradphoto_core::check("a.jpg", bytes, profile, &with));
    });
    let draw = median(&|| {
        std::hint::black_box(annotate(&img, checked.person.as_ref(), checked.mask.as_ref(), &checked.report));
    });
    let enc = median(&|| {
        std::hint::black_box(normalise::encode_view(&picture, 85.0).ok());
    });
    let sha = median(&|| {
        std::hint::black_box((sha256_hex(bytes), sha256_hex(&annotated)));
    });
    println!(
        "one upload's CPU, serially (median of 7, this thread's CPU time): inspect + decode at 1/{} ({}) + file rules {:.1} ms; models + \
         person measures {:.1} ms; annotate {:.1} ms; encode annotated {:.1} ms; sha256 of both {:.1} ms; total \
         {:.1} ms",
        checked.report.measurements.get("analysis_scale").and_then(|v| v.as_u64()).unwrap_or(0),
        checked.report.measurements.get("analysis_size").map_or("?".into(), |v| v.to_string()),
        ms(file_only),
        ms(full.saturating_sub(file_only)),
        ms(draw),
        ms(enc),
        ms(sha),
        ms(full + draw + enc + sha),
    );
    // The upload as the check thread runs it, in one piece; on a shared host the fastest of the runs is the one
    // least slowed by neighbours.
    let whole = runs(&|| {
        let checked = gradphoto_core::check("a.jpg", bytes, profile, &with);
        let a = annotated_jpeg(&checked).unwrap_or_default();
        std::hint::black_box((sha256_hex(bytes), sha256_hex(&a)));
    });
    println!(
        "  the same in one piece (check, annotated picture, both hashes): median {:.1} ms, fastest {:.1} ms",
        ms(whole[3]),
        ms(whole[0])
    );
    let cores = state.config.check_workers();
    let per = (full + draw + enc + sha).as_secs_f64();
    println!(
        "→ capacity about {:.1} checks/s on {cores} check workers; {UPLOADERS} at once need at least {:.2} s for the \
         last report (the floor of (c))",
        cores as f64 / per,
        UPLOADERS as f64 * per / cores as f64,
    );
    full + draw + enc + sha
}

fn main() -> ExitCode {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("load bench: {cores} CPUs, load average {} at start", load_average());
    let originals = originals();
    if std::env::var_os("DUMP").is_some() {
        return ExitCode::SUCCESS;
    }

    // As `gradphoto serve` builds its runtime: a worker per core, blocking pool default.
    // Named, so that the CPU each side used can be told apart (/proc/self/task/*/stat).
    let server_rt =
        tokio::runtime::Builder::new_multi_thread().thread_name("server").enable_all().build().expect("server runtime");
    let upload_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client-up")
        .enable_all()
        .build()
        .expect("client runtime");
    let poll_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("client-poll")
        .enable_all()
        .build()
        .expect("poller runtime");

    let config = gradphoto_web::Config {
        // Every simulated student signs in from 127.0.0.1: the per-address login limit would refuse most of them.
        login_rate_per_minute: 1_000_000,
        ..common::config()
    };
    let server = server_rt.block_on(async {
        let server = TestServer::start_with(config).await;
        server.staff("root", Role::SuperAdmin, None).await;
        server
    });
    let base = server.base.clone();
    let code = "load";
    let total = (2 * UPLOADERS + POLLERS) as u32;
    let school_id = upload_rt.block_on(async {
        let mut root = Client::new(&base);
        assert_eq!(root.login("/staff/login", "root", "root-password").await.0, 200);
        let id = school(&server, &root, code, "0").await;
        let mut admin = Client::new(&base);
        assert_eq!(
            admin.login("/staff/login", &format!("{code}-admin"), &format!("{code}-admin-password")).await.0,
            200
        );
        let csv = roster_csv(1, total).into_bytes();
        let r = admin.upload(&format!("/admin/schools/{id}/roster"), "roster", "roster.csv", csv).await;
        assert_eq!(r.status(), 200, "roster import");
        let v: serde_json::Value = r.json().await.expect("import JSON");
        assert_eq!(v["import"]["created"].as_u64(), Some(u64::from(total)), "{v}");
        id
    });
    let t = Instant::now();
    let burst_students = upload_rt.block_on(sign_in(&base, code, 1, UPLOADERS as u32, false));
    let spread_students = upload_rt.block_on(sign_in(&base, code, UPLOADERS as u32 + 1, UPLOADERS as u32, false));
    // The pollers' connections belong to the runtime that opened them: sign them in on theirs.
    let pollers = poll_rt.block_on(sign_in(&base, code, 2 * UPLOADERS as u32 + 1, POLLERS as u32, true));
    println!("{} students signed in ({:.1} s, not timed)", 2 * UPLOADERS + POLLERS, t.elapsed().as_secs_f64());
    let type_id = upload_rt.block_on(burst_students[0].json("/me"))["types"][0]["id"].as_i64().expect("a photo type");

    // Warm-up, unloaded: each poller uploads once (so its status page has a photo to show).
    let mut warm = Vec::new();
    for (i, c) in pollers.iter().enumerate() {
        let (name, bytes) = &originals[i % originals.len()];
        let t = Instant::now();
        let r = poll_rt.block_on(c.upload(
            &format!("/me/photos/{type_id}"),
            "photo",
            &format!("{name}.JPG"),
            bytes.clone(),
        ));
        let status = r.status();
        let v: serde_json::Value = poll_rt.block_on(r.json()).unwrap_or_default();
        warm.push(t.elapsed());
        assert_eq!(status, 200, "warm-up upload: {v}");
        if i < originals.len() {
            let person = v["report"]["measurements"]["person"].is_object();
            println!("warm-up upload of {name}: verdict {}, person measured: {person}", v["report"]["verdict"]);
        }
    }
    warm.sort();
    println!(
        "single upload → report, unloaded: median {:.0} ms, max {:.0} ms",
        ms(pct(&warm, 50.0)),
        ms(pct(&warm, 100.0))
    );
    let school_row = server_rt.block_on(server.state.db.school(school_id)).expect("school");
    // The CPU per check: the median over the originals (they differ in what the models find).
    let mut per: Vec<Duration> = originals
        .iter()
        .map(|(_, b)| stage_profile(&server.state, &gradphoto_web::photos::upload_profile(&school_row), b))
        .collect();
    per.sort();
    let per = per[per.len() / 2];
    println!("one upload's CPU, the median of the {} originals: {:.1} ms", originals.len(), ms(per));
    if std::env::var_os("UPLOAD_CPU").is_some() {
        return ExitCode::SUCCESS;
    }
    let workers = server.state.config.check_workers().max(1);
    let floor = per.mul_f64(UPLOADERS as f64 / workers as f64);
    let profile = gradphoto_web::photos::upload_profile(&school_row);
    let parallel = parallel_floor(&server.state, &profile, &originals, UPLOADERS, workers);
    println!(
        "the same {UPLOADERS} checks on {workers} threads at once, nothing else: {:.2} s ({:.3} × the serial floor of \
         {:.2} s: cores running together are slower than one alone)",
        parallel.as_secs_f64(),
        parallel.as_secs_f64() / floor.as_secs_f64(),
        floor.as_secs_f64()
    );
    let storing = storing_cpu(&server_rt, &originals, UPLOADERS);
    println!("hashing and durably writing {UPLOADERS} originals, nothing else: {:.2} s of CPU", storing.as_secs_f64());
    let (busy0, total0) = cpu_jiffies();
    let own0 = own_ticks();
    let threads0 = ticks_by_thread();

    println!("\nscenario 1: {UPLOADERS} uploads at once, {POLLERS} status pollers (pause {POLL_PAUSE:?})");
    let burst = run(
        Scenario {
            uploaders: &burst_students,
            pollers: &pollers,
            type_id,
            originals: &originals,
            offsets: vec![Duration::ZERO; UPLOADERS],
        },
        &upload_rt,
        &poll_rt,
        &server.state,
    );
    let (busy1, total1) = cpu_jiffies();
    let own1 = own_ticks();
    let mut threads: Vec<(String, u64)> = ticks_by_thread()
        .into_iter()
        .map(|(name, t)| {
            let before = threads0.get(&name).copied().unwrap_or(0);
            (name, t.saturating_sub(before))
        })
        .filter(|(_, t)| *t > 0)
        .collect();
    threads.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    println!(
        "burst CPU by thread: {}",
        threads.iter().map(|(n, t)| format!("{n} {:.2} s", *t as f64 / 100.0)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "burst: the machine's CPUs were busy {:.0} % of the time; CPU used: check threads {:.1} s (serially the \
         checks need {:.1} s), the rest of the service {:.1} s, the clients {:.1} s",
        100.0 * (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64,
        (own1[0] - own0[0]) as f64 / 100.0,
        per.as_secs_f64() * UPLOADERS as f64,
        (own1[2] - own0[2]) as f64 / 100.0,
        (own1[1] - own0[1]) as f64 / 100.0,
    );
    // `LOAD_BURST_ONLY=1` skips the second scenario (while tuning the first).
    let spread = (std::env::var("LOAD_BURST_ONLY").is_err()).then(|| {
        println!("scenario 2: {UPLOADERS} uploads starting at random over {SPREAD:?}, {POLLERS} status pollers");
        run(
            Scenario {
                uploaders: &spread_students,
                pollers: &pollers,
                type_id,
                originals: &originals,
                offsets: offsets(UPLOADERS, SPREAD),
            },
            &upload_rt,
            &poll_rt,
            &server.state,
        )
    });
    let spread = spread.unwrap_or_default();
    // What the burst cannot go below on these cores: the checks as fast as both cores run them at once, plus the
    // storing no design skips and the clients' own CPU (they share the machine), spread over the cores.
    let clients = Duration::from_millis((own1[1] - own0[1]) * 10);
    let physical = parallel + (storing + clients).div_f64(cores as f64);
    print_table(&[("200 at once", &burst, true), ("200 over 10 s", &spread, false)], floor);
    println!(
        "200 at once: (c) against the physical floor of these cores ({:.2} s: the checks on {workers} threads at once \
         {:.2} s + (storing {:.2} s + the clients {:.2} s) ÷ {cores} cores): {:.3} × that floor",
        physical.as_secs_f64(),
        parallel.as_secs_f64(),
        storing.as_secs_f64(),
        clients.as_secs_f64(),
        burst.wall.as_secs_f64() / physical.as_secs_f64()
    );
    println!(
        "(status pages polled from 0.3 s before the first upload to the last report; over 10 s, throughput follows \
         the arrivals)"
    );
    for (name, o) in [("at once", &burst), ("over 10 s", &spread)] {
        let slow: Vec<String> =
            o.slowest_polls.iter().map(|(at, took)| format!("{:.0} ms at {at:+.1} s", ms(*took))).collect();
        println!("slowest status pages ({name}): {}", slow.join(", "));
    }
    println!(
        "\n{cores} CPUs; check workers {}; load average at the end {}",
        server.state.config.check_workers(),
        load_average()
    );

    let mut failed = false;
    for (name, o) in [("at once", &burst), ("over 10 s", &spread)] {
        for e in o.upload_errors.iter().chain(&o.poll_errors).take(10) {
            println!("ERROR ({name}): {e}");
            failed = true;
        }
        failed |= !o.upload_errors.is_empty() || !o.poll_errors.is_empty();
    }
    drop((burst_students, spread_students, pollers));
    server_rt.block_on(async { drop(server) });
    server_rt.shutdown_timeout(Duration::from_secs(2));
    if failed {
        println!("FAILED: requests errored");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
