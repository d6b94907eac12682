//! The dashboard as a user sees it: a testnet partitioned in two with a miner on each side,
//! its page loaded in headless Chromium at 1280×800 and 500 px wide (a phone). From the DOM
//! after the page's scripts ran: both sides' tips are drawn in the fork tree inside the
//! window (the page records where each tip landed, in window pixels), the page does not
//! scroll sideways, and the propagation table shows each node's delay after the first as
//! a non-zero number of milliseconds with one decimal.
//!
//! Chromium comes from `make deps`; without it the test fails and says so. Every wait has
//! a deadline; the supervisor (dropped first) stops every node, and the temp dirs go.

use ember_testnet::{wait_for, Control, Supervisor, TestnetOptions, Topology};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);
/// Blocks each side mines after the partition: more than fit across 1280 px at one
/// block per 60 px, so a fixed-pitch tree would put the newest tip out of sight.
const GROWTH: u64 = 24;

/// `chromium` from PATH, or a failure that says how to get it.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("chromium")).find(|p| p.is_file()).unwrap_or_else(
        || panic!("chromium is not on PATH; the dashboard test needs it: run `make deps`"),
    )
}

/// Loads `url` in headless Chromium with a `width`×`height` window and returns the DOM
/// after the page's scripts ran.
fn dump_dom(chromium: &Path, url: &str, width: u32, height: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out_path = profile.path().join("dom.html");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().join("profile").display()))
        .arg(format!("--window-size={width},{height}"))
        .args(["--virtual-time-budget=3000", "--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let status = wait_for(WAIT, "chromium to dump the page", || child.try_wait().ok().flatten());
    if status.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(status.unwrap().success(), "chromium failed on {url}");
    std::fs::read_to_string(out_path).unwrap()
}

/// The value of attribute `name` in the start tag `tag` (text from `<` to `>`).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    tag[start..].split('"').next()
}

/// Every start tag in `dom` that has the attribute `name`.
fn tags_with<'a>(dom: &'a str, name: &str) -> Vec<&'a str> {
    let needle = format!(" {name}=\"");
    dom.split('<')
        .filter(|t| !t.starts_with('/'))
        .filter_map(|t| t.split_once('>').map(|(tag, _)| tag))
        .filter(|tag| tag.contains(&needle))
        .collect()
}

fn num(tag: &str, name: &str) -> f64 {
    attr(tag, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {name} in <{tag}>"))
}

/// A box in window pixels, as the page recorded it.
#[derive(Debug)]
struct Rect {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Rect {
    fn of(tag: &str) -> Rect {
        Rect {
            left: num(tag, "data-left"),
            right: num(tag, "data-right"),
            top: num(tag, "data-top"),
            bottom: num(tag, "data-bottom"),
        }
    }

    fn inside(&self, outer: &Rect) -> bool {
        self.left >= outer.left
            && self.right <= outer.right
            && self.top >= outer.top
            && self.bottom <= outer.bottom
    }
}

/// Node `i`'s tip in the supervisor's view.
fn tip(view: &Value, i: usize) -> (u64, String) {
    let n = &view["nodes"][i];
    (n["height"].as_u64().unwrap_or(0), n["tip"].as_str().unwrap_or("").to_string())
}

/// Checks the page as laid out in a window `width` px wide: it does not scroll sideways,
/// and every tip (circle, rings and labels) is inside the fork tree, which is inside the
/// window; node 0's and node 3's tips are two different blocks, and every node's tip is
/// drawn.
fn check_tips_visible(dom: &str, width: f64) {
    let body = tags_with(dom, "data-viewport-width");
    let body = body.first().unwrap_or_else(|| panic!("the page recorded no layout:\n{dom}"));
    let viewport = num(body, "data-viewport-width");
    assert!((width - 40.0..=width).contains(&viewport), "window not {width} px wide: {viewport}");
    let page = num(body, "data-page-width");
    assert!(page <= viewport, "at {width} px the page scrolls sideways: {page} px wide");
    let tree = dom
        .split("<svg")
        .map(|s| s.split_once('>').map_or(s, |(tag, _)| tag))
        .find(|tag| attr(tag, "id") == Some("tree"))
        .unwrap_or_else(|| panic!("no fork tree:\n{dom}"));
    let tree = Rect::of(tree);
    assert!(
        tree.left >= 0.0 && tree.right <= viewport,
        "at {width} px the tree is outside the window: {tree:?}"
    );
    let tips: Vec<(Vec<usize>, Rect, &str)> = tags_with(dom, "data-tip-of")
        .into_iter()
        .filter(|t| attr(t, "data-tip-of") != Some(""))
        .map(|t| {
            let nodes = attr(t, "data-tip-of").unwrap().split(',');
            (
                nodes.map(|n| n.parse().unwrap()).collect(),
                Rect::of(t),
                attr(t, "data-block").unwrap(),
            )
        })
        .collect();
    for (nodes, rect, id) in &tips {
        assert!(
            rect.inside(&tree),
            "at {width} px, tip {id} of nodes {nodes:?} is not inside the tree: {rect:?} vs {tree:?}"
        );
    }
    let side = |n: usize| tips.iter().find(|t| t.0.contains(&n)).map(|t| t.2);
    let (a, b) = (side(0), side(3));
    assert!(a.is_some() && b.is_some() && a != b, "both sides' tips drawn: {a:?} and {b:?}");
    for n in 0..4 {
        assert!(side(n).is_some(), "at {width} px node {n}'s tip is not drawn; tips: {tips:?}");
    }
}

#[test]
fn dashboard_shows_both_tips_of_a_partition_in_a_1280_px_window_with_real_propagation_times() {
    let chromium = chromium(); // before anything starts: without it, fail at once
    let dir = tempfile::tempdir().unwrap();
    let opts = TestnetOptions {
        miners: vec![0, 3],
        block_time_secs: 0.3,
        ..TestnetOptions::new(4, Topology::Line, dir.path())
    };
    let sup = Supervisor::start(&opts, "127.0.0.1:0".parse().unwrap(), |_| {}).unwrap();
    wait_for(WAIT, "every node to reach height 2", || {
        let v = sup.view();
        (0..4).all(|i| tip(&v, i).0 >= 2).then_some(())
    })
    .unwrap();

    // 0-1 | 2-3, a miner on each side: two branches grow.
    sup.control(Control::Partition { groups: vec![vec![0, 1], vec![2, 3]] }).unwrap();
    let start = (0..4).map(|i| tip(&sup.view(), i).0).max().unwrap();
    let view = wait_for(WAIT, "each side to grow its own branch, each side on one tip", || {
        let v = sup.view();
        let t: Vec<(u64, String)> = (0..4).map(|i| tip(&v, i)).collect();
        let settled = t[0].1 == t[1].1 && t[2].1 == t[3].1 && t[0].1 != t[3].1;
        (settled && t[0].0 >= start + GROWTH && t[3].0 >= start + GROWTH).then_some(v)
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", sup.view()["nodes"]));
    assert_eq!(view["nodes"][0]["miner"], true);

    let url = sup.state().dashboard_url;
    // A phone-width window too (500 px: headless Chromium lays out no narrower, whatever
    // --window-size asks; its screenshots do go down to 400).
    check_tips_visible(&dump_dom(&chromium, &url, 500, 900), 500.0);
    let dom = dump_dom(&chromium, &url, 1280, 800);
    check_tips_visible(&dom, 1280.0);

    // Propagation: one decimal, non-zero for every node that was not the first to store a
    // block; the records, not 250 ms polls, make the numbers.
    let mut later = Vec::new();
    for td in tags_with(&dom, "data-ms") {
        let ms = num(td, "data-ms");
        let first = attr(td, "class") == Some("first");
        assert!(first == (ms == 0.0), "<{td}>: only the first node to store a block is at 0");
        let shown = dom.split(td).nth(1).and_then(|r| r.strip_prefix('>')).unwrap_or("");
        let shown = shown.split('<').next().unwrap_or("");
        let one_decimal = shown.split_once('.').is_some_and(|(_, d)| d.len() == 1);
        let value: f64 = shown.parse().unwrap_or(f64::NAN);
        assert!(one_decimal && (value - ms).abs() <= 0.05 + 1e-9, "<{td}> shows {shown:?}");
        if !first {
            later.push(ms);
        }
    }
    assert!(later.len() >= 8, "too few propagation times: {later:?}\n{dom}");
    assert!(
        later.iter().any(|ms| ms.fract() != 0.0 && ms % 250.0 != 0.0),
        "propagation times look like poll ticks: {later:?}"
    );
    sup.shutdown().unwrap();
}
