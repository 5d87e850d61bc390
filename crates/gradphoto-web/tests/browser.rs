//! The whole process in a real browser (Debian's chromium driven by chromedriver), only by clicking and typing in
//! the pages: a super-admin creates a school, its admin imports a roster and adds a reviewer, a student on a phone
//! (375 × 812, WeChat's browser) finds the school, signs in, replaces the first password, uploads, reads the check
//! report and submits; the reviewer approves with the keyboard; the student downloads the registered photo; the
//! admin follows the progress and exports. Screenshots of each step go to `target/screenshots/`.
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver (`apt-get install chromium chromium-driver`): without them
//! the test fails rather than skips, because CI installs them and a silent skip would hide a broken CI.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use gradphoto_store::db::Role;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// WeChat's in-app browser on Android (XWEB, a Chromium): where most students open the link.
const WECHAT_UA: &str = "Mozilla/5.0 (Linux; Android 14; V2307A Build/UP1A.231005.007; wv) AppleWebKit/537.36 \
    (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.103 Mobile Safari/537.36 XWEB/1300289 MMWEBSDK/20241202 \
    MMWEBID/2837 MicroMessenger/8.0.56.2800(0x28003837) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64";
/// Long enough for an upload's check or an approval's normalisation on a slow CI machine.
const WAIT: Duration = Duration::from_secs(30);

/// chromedriver in a process group of its own, killed with every browser it started when dropped, so that a
/// failing test leaves no browser behind.
struct Driver {
    child: Child,
    url: String,
    /// Fresh browser profiles, removed after the browsers are gone.
    profiles: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: the browser test needs `apt-get install -y chromium chromium-driver`"
            );
        }
        use std::os::unix::process::CommandExt;
        // Port 0: chromedriver picks a free port and prints it, so there is no race for a port.
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(port) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(port.trim_end_matches('.').trim().parse::<u16>().ok());
                    break;
                }
            }
            // Keep reading, so that chromedriver never blocks on a full pipe.
            lines.for_each(drop);
        });
        let profiles = tempfile::tempdir().unwrap();
        let mut driver = Driver { child, url: String::new(), profiles };
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{CHROMEDRIVER} did not say which port it listens on"));
        driver.url = format!("http://127.0.0.1:{port}");
        driver
    }

    /// A new browser: a phone with WeChat's user agent, or a desktop window for the staff.
    async fn browser(&self, name: &str, phone: bool) -> Client {
        self.start_browser(name, phone.then_some(WECHAT_UA)).await
    }

    /// A phone with the given user agent (another WeChat user).
    async fn browser_as(&self, name: &str, user_agent: &str) -> Client {
        self.start_browser(name, Some(user_agent)).await
    }

    async fn start_browser(&self, name: &str, phone_agent: Option<&str>) -> Client {
        let phone = phone_agent.is_some();
        let profile = self.profiles.path().join(name);
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--lang=zh-CN".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut options = json!({ "binary": CHROMIUM });
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": 375, "height": 812, "pixelRatio": 2.0, "mobile": true, "touch": true },
                "userAgent": phone_agent.unwrap_or(WECHAT_UA),
            });
        } else {
            args.push("--window-size=1280,900".into());
        }
        options["args"] = json!(args);
        let caps = json!({ "browserName": "chrome", "goog:chromeOptions": options });
        let Value::Object(caps) = caps else { unreachable!() };
        ClientBuilder::native()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start {CHROMIUM}: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browsers it started (their pid is the group's id).
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// A phone page's screenshot, after checking that nothing makes the page wider than the phone (a sideways scroll).
async fn phone_shot(c: &Client, name: &str) {
    const JS: &str = "return [document.documentElement.scrollWidth, window.innerWidth];";
    let v = c.execute(JS, vec![]).await.unwrap();
    let (page, screen) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
    shot(c, name).await;
    assert!(page <= screen, "{name}: the page is {page} px wide on a {screen} px phone");
}

/// Where the browser is and what it shows, for a failure message.
async fn whereabouts(c: &Client) -> String {
    let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
    let text = match c.find(Locator::Css("body")).await {
        Ok(b) => b.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    format!("at {url}, showing:\n{}", text.chars().take(1500).collect::<String>())
}

async fn wait_for(c: &Client, css: &str) -> Element {
    match c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
        Ok(e) => e,
        Err(e) => panic!("no `{css}` ({e}) {}", whereabouts(c).await),
    }
}

/// Waits until the page's text contains `text` (pages are rendered by the server: no partial states).
async fn wait_text(c: &Client, text: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(body) = c.find(Locator::Css("body")).await
            && let Ok(t) = body.text().await
            && t.contains(text)
        {
            return t;
        }
        if start.elapsed() > WAIT {
            panic!("the page never said {text:?}; {}", whereabouts(c).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser's path starts with `prefix`, and returns the path.
async fn wait_path(c: &Client, prefix: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(u) = c.current_url().await
            && u.path().starts_with(prefix)
        {
            return u.path().to_string();
        }
        if start.elapsed() > WAIT {
            panic!("never reached {prefix}; {}", whereabouts(c).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every `<img>` matching `css` has loaded and decoded, and returns their natural widths.
async fn images_loaded(c: &Client, css: &str) -> Vec<u64> {
    const JS: &str =
        "return Array.from(document.querySelectorAll(arguments[0])).map(i => i.complete ? i.naturalWidth : -1);";
    let start = Instant::now();
    loop {
        let v = c.execute(JS, vec![json!(css)]).await.unwrap();
        let widths: Vec<i64> = v.as_array().unwrap().iter().filter_map(Value::as_i64).collect();
        if !widths.is_empty() && widths.iter().all(|w| *w > 0) {
            return widths.into_iter().map(|w| w as u64).collect();
        }
        if start.elapsed() > WAIT {
            panic!("images `{css}` did not load (natural widths {widths:?}); {}", whereabouts(c).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The share of the middle row of an element's pixels within ±40 of `rgb` per channel: how full a bar is drawn.
async fn painted_share(e: &Element, rgb: [u8; 3]) -> f64 {
    let png = e.screenshot().await.unwrap();
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    let y = img.height() / 2;
    let painted =
        (0..img.width()).filter(|&x| img.get_pixel(x, y).0.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 40)).count();
    painted as f64 / f64::from(img.width())
}

async fn type_into(c: &Client, css: &str, text: &str) {
    wait_for(c, css).await.send_keys(text).await.unwrap_or_else(|e| panic!("typing into {css}: {e}"));
}

async fn click(c: &Client, css: &str) {
    wait_for(c, css).await.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn scroll_to(c: &Client, css: &str) {
    c.execute("document.querySelector(arguments[0]).scrollIntoView({block: 'start'});", vec![json!(css)])
        .await
        .unwrap();
}

async fn staff_sign_in(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/staff/login")).await.unwrap();
    type_into(c, "input[name=username]", user).await;
    type_into(c, "input[name=password]", password).await;
    click(c, "main form button[type=submit]").await;
}

async fn sign_out(c: &Client) {
    click(c, "header form[action='/logout'] button").await;
    wait_for(c, "select[name=region]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_walk_student_reviewer_admin() {
    let started = Instant::now();
    // The driver first: a missing browser fails at once, before any other work.
    let driver = Driver::start();
    let server = TestServer::start().await;
    let base = server.base.clone();
    server.staff("root", Role::SuperAdmin, None).await;
    let files = tempfile::tempdir().unwrap();
    let roster = files.path().join("名单.csv");
    std::fs::write(&roster, roster_csv(1, 3)).unwrap();
    let photo = files.path().join("IMG_0001.JPG");
    std::fs::write(&photo, &approvable_originals()[0].1).unwrap();
    let id = id_number(1);
    let first_password = &id[id.len() - 6..];

    let staff = driver.browser("staff", false).await;
    let phone = driver.browser("phone", true).await;

    // The super-admin creates the school and its admin in the form.
    staff.goto(&format!("{base}/staff/login")).await.unwrap();
    shot(&staff, "01-staff-login").await;
    staff_sign_in(&staff, &base, "root", "root-password").await;
    wait_for(&staff, "form[action='/admin/schools']").await;
    for (name, value) in [
        ("province", "北京市"),
        ("city", "北京市"),
        ("code", "pku"),
        ("name", "北京大学"),
        ("admin_username", "pku-admin"),
        ("admin_password", "pku-admin-password"),
    ] {
        type_into(&staff, &format!("form[action='/admin/schools'] input[name={name}]"), value).await;
    }
    shot(&staff, "02-admin-new-school").await;
    click(&staff, "form[action='/admin/schools'] button[type=submit]").await;
    let path = wait_path(&staff, "/admin/schools/").await;
    let school: i64 = path.rsplit('/').next().unwrap().parse().unwrap();
    wait_text(&staff, "北京大学").await;
    sign_out(&staff).await;

    // The school's admin imports the roster through the file input and adds a reviewer.
    staff_sign_in(&staff, &base, "pku-admin", "pku-admin-password").await;
    wait_path(&staff, &format!("/admin/schools/{school}")).await;
    let file = wait_for(&staff, "input[type=file][name=roster]").await;
    file.send_keys(&roster.display().to_string()).await.unwrap();
    click(&staff, "form[action*='/roster'] button[type=submit]").await;
    wait_text(&staff, "新增 3，更新 0，未变 0，错误 0").await;
    wait_text(&staff, "3 名学生").await;
    scroll_to(&staff, "form[action*='/roster']").await;
    shot(&staff, "03-admin-roster-imported").await;
    type_into(&staff, "form[action$='/staff'] input[name=username]", "pku-reviewer").await;
    type_into(&staff, "form[action$='/staff'] input[name=password]", "pku-reviewer-password").await;
    click(&staff, "form[action$='/staff'] button[type=submit]").await;
    wait_text(&staff, "pku-reviewer · reviewer").await;
    sign_out(&staff).await;

    // The student, on a phone: region, school, sign-in, a password of their own.
    phone.goto(&format!("{base}/")).await.unwrap();
    let seen = phone.execute("return [navigator.userAgent, window.innerWidth];", vec![]).await.unwrap();
    assert!(seen[0].as_str().unwrap().contains("MicroMessenger") && seen[1] == 375, "not a phone: {seen}");
    phone_shot(&phone, "04-home").await;
    // Choosing the region submits its form (app.js); the school's button appears.
    wait_for(&phone, "select[name=region]").await.select_by_label("北京市 北京市").await.unwrap();
    wait_for(&phone, "a[href='/s/pku/login']").await;
    phone_shot(&phone, "05-home-region").await;
    click(&phone, "a[href='/s/pku/login']").await;
    type_into(&phone, "input[name=username]", "S00001").await;
    type_into(&phone, "input[name=password]", first_password).await;
    phone_shot(&phone, "06-student-login").await;
    click(&phone, "main form button[type=submit]").await;
    wait_path(&phone, "/me/password").await;
    wait_text(&phone, "首次登录请修改初始密码").await;
    type_into(&phone, "input[name=current]", first_password).await;
    type_into(&phone, "input[name=new]", "a-new-password").await;
    phone_shot(&phone, "07-password").await;
    click(&phone, "main form button[type=submit]").await;
    wait_text(&phone, "我的照片").await;
    assert_eq!(phone.current_url().await.unwrap().path(), "/me");
    phone_shot(&phone, "08-student-home").await;
    // The requirements picture (an SVG) is there and drawn.
    images_loaded(&phone, ".req img").await;
    scroll_to(&phone, ".req").await;
    phone_shot(&phone, "09-requirements").await;

    // The photo type, the upload, the check report with its annotated picture, the submission.
    click(&phone, ".type a").await;
    wait_text(&phone, "未上传").await;
    phone_shot(&phone, "10-photo-type").await;
    wait_for(&phone, "#upload input[type=file]").await.send_keys(&photo.display().to_string()).await.unwrap();
    click(&phone, "#upload button[type=submit]").await;
    let verdict = wait_for(&phone, ".verdict").await.attr("class").await.unwrap().unwrap_or_default();
    assert!(!verdict.contains("v-reject") && !verdict.contains("v-error"), "{verdict}; {}", whereabouts(&phone).await);
    let widths = images_loaded(&phone, "img[src$='annotated.jpg']").await;
    assert!(widths[0] >= 240, "annotated picture {widths:?}");
    scroll_to(&phone, "main > section:nth-of-type(2)").await;
    phone_shot(&phone, "11-check-report").await;
    click(&phone, "form[action$='/submit'] button[type=submit]").await;
    wait_text(&phone, "待审核").await;
    phone_shot(&phone, "12-submitted").await;

    // The reviewer: the queue, the item with both pictures, approval by pressing A.
    staff_sign_in(&staff, &base, "pku-reviewer", "pku-reviewer-password").await;
    wait_path(&staff, "/review").await;
    wait_text(&staff, "S00001").await;
    shot(&staff, "13-review-queue").await;
    click(&staff, "#first").await;
    wait_for(&staff, "#approve").await;
    let widths = images_loaded(&staff, ".pair img").await;
    assert_eq!(widths.len(), 2, "original and annotated");
    shot(&staff, "14-review-item").await;
    let press_a =
        KeyActions::new("keyboard".into()).then(KeyAction::Down { value: 'a' }).then(KeyAction::Up { value: 'a' });
    staff.perform_actions(press_a).await.unwrap();
    // Approval normalises and seals the photo, then returns to the emptied queue.
    wait_text(&staff, "队列已清空").await;
    shot(&staff, "15-review-done").await;
    sign_out(&staff).await;

    // The student reloads: approved, and the registered photo downloads.
    phone.refresh().await.unwrap();
    wait_text(&phone, "已通过").await;
    let link = wait_for(&phone, "a[href$='/registered.jpg']").await;
    let href = link.attr("href").await.unwrap().expect("download link");
    phone_shot(&phone, "16-student-approved").await;
    phone.goto(&format!("{base}/me")).await.unwrap();
    wait_text(&phone, "已通过").await;
    phone_shot(&phone, "17-student-home-approved").await;
    // Fetched by the page itself, with the student's own cookies.
    const FETCH: &str = "const done = arguments[arguments.length - 1]; \
        fetch(arguments[0]).then(r => r.blob().then(b => done({ status: r.status, type: r.headers.get('content-type'), \
        size: b.size }))).catch(e => done({ error: String(e) }));";
    let got = phone.execute_async(FETCH, vec![json!(href)]).await.unwrap();
    assert_eq!((got["status"].as_i64(), got["type"].as_str()), (Some(200), Some("image/jpeg")), "{got}");
    let registered_size = got["size"].as_u64().unwrap();
    assert!(registered_size > 10_000, "{got}");

    // The admin: progress bars, then the export with the browser's session.
    staff_sign_in(&staff, &base, "pku-admin", "pku-admin-password").await;
    wait_path(&staff, &format!("/admin/schools/{school}")).await;
    let bars = staff.find_all(Locator::Css(".bars .bar")).await.unwrap();
    assert!(bars.len() >= 2, "progress bars: {}", bars.len());
    let mut approved = None;
    for b in bars {
        let text = b.text().await.unwrap();
        if text.contains("已通过") {
            assert!(text.trim_end().ends_with('1'), "{text}");
            approved = Some(b);
        }
    }
    // Drawn, not only written: one of three students approved fills a third of the bar.
    let fill = approved.expect("a bar for 已通过").find(Locator::Css(".fill")).await.unwrap();
    let share = painted_share(&fill, [0x1f, 0x4e, 0x8c]).await;
    assert!((0.25..0.42).contains(&share), "the approved bar is {share:.2} full, not a third");
    shot(&staff, "18-admin-progress").await;
    let export = wait_for(&staff, "a.button[href$='/export.zip']").await;
    let href = export.attr("href").await.unwrap().expect("export link");
    let session = staff.get_named_cookie("gp_session").await.unwrap();
    let r = reqwest::Client::new()
        .get(format!("{base}{href}"))
        .header("cookie", format!("gp_session={}", session.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let bytes = r.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, vec![format!("{id}.jpg"), "manifest.csv".to_string()]);
    let mut jpg = Vec::new();
    zip.by_name(&format!("{id}.jpg")).unwrap().read_to_end(&mut jpg).unwrap();
    assert_eq!(jpg.len() as u64, registered_size, "the exported file is the one the student downloaded");

    staff.close().await.unwrap();
    phone.close().await.unwrap();
    drop(driver);
    eprintln!("browser walk: {:?}", started.elapsed());
}

/// The student's path inside WeChat, by clicking in a phone browser with WeChat's user agent, against the fake
/// WeChat servers: the official account's menu link, the silent authorisation, sign-in and binding, upload, WeChat
/// Pay through the page's `getBrandWCPayRequest` (the bridge WeChat injects is stood in for by the test, and the fake
/// plays the cashier, checking `paySign` as WeChat's client does), the approval pushed as a template message; then
/// a second WeChat user refused on the same account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_wechat_student_signs_in_pays_and_is_told() {
    let started = Instant::now();
    let driver = Driver::start();
    let (wx, school, _admin) = common::wechat::start("wxu", "30").await;
    let base = wx.server.base.clone();
    let files = tempfile::tempdir().unwrap();
    let photo = files.path().join("IMG_0002.JPG");
    std::fs::write(&photo, &approvable_originals()[0].1).unwrap();
    let first_password = {
        let id = id_number(1);
        id[id.len() - 6..].to_string()
    };
    let phone = driver.browser("wechat-phone", true).await;

    // The menu link: authorised silently through WeChat, then the school's sign-in page.
    phone.goto(&format!("{base}/s/wxu/login")).await.unwrap();
    wait_path(&phone, "/s/wxu/login").await;
    phone_shot(&phone, "w01-wechat-login").await;
    assert!(phone.get_named_cookie("gp_wx").await.is_ok(), "the authorised openid is kept for the sign-in");
    type_into(&phone, "input[name=username]", "S00001").await;
    type_into(&phone, "input[name=password]", &first_password).await;
    click(&phone, "main form button[type=submit]").await;
    wait_path(&phone, "/me/password").await;
    type_into(&phone, "input[name=current]", &first_password).await;
    type_into(&phone, "input[name=new]", "a-new-password").await;
    click(&phone, "main form button[type=submit]").await;
    wait_text(&phone, "我的照片").await;
    let student = wx.server.state.db.student_by_no(school, "S00001").await.unwrap().unwrap();
    let bound = wx.server.state.db.bindings_of(student.id).await.unwrap();
    assert_eq!(bound.iter().map(|b| b.channel.as_str()).collect::<Vec<_>>(), vec!["wechat"], "bound to WeChat");

    // Upload and submit: the fee is due, so the photo waits for it.
    click(&phone, ".type a").await;
    wait_for(&phone, "#upload input[type=file]").await.send_keys(&photo.display().to_string()).await.unwrap();
    click(&phone, "#upload button[type=submit]").await;
    images_loaded(&phone, "img[src$='annotated.jpg']").await;
    click(&phone, "form[action$='/submit'] button[type=submit]").await;
    wait_path(&phone, "/me/pay").await;
    wait_for(&phone, "#wxpay").await;
    phone_shot(&phone, "w02-wechat-pay").await;

    // WeChat injects WeixinJSBridge into its pages; the stand-in hands the parameters to the test, which pays in
    // the fake cashier (paySign checked there) and answers as WeChat's client would.
    const BRIDGE: &str = "window.WeixinJSBridge = { invoke: function (name, params, cb) { \
        window.__wxpay = { name: name, params: params }; window.__wxcb = cb; } };";
    phone.execute(BRIDGE, vec![]).await.unwrap();
    click(&phone, "#wxpay").await;
    let asked = {
        let start = Instant::now();
        loop {
            let v = phone.execute("return window.__wxpay || null;", vec![]).await.unwrap();
            if !v.is_null() {
                break v;
            }
            assert!(
                start.elapsed() < WAIT,
                "the page never called getBrandWCPayRequest; {}",
                whereabouts(&phone).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(asked["name"], "getBrandWCPayRequest");
    let params: gradphoto_wechat::pay::JsapiParams = serde_json::from_value(asked["params"].clone()).unwrap();
    let answer = wx.fake.pay(&params, gradphoto_wechat_fake::PayBehaviour::Normal).await.unwrap();
    assert_eq!(answer, "get_brand_wcpay_request:ok");
    phone.execute("window.__wxcb({ err_msg: arguments[0] });", vec![json!(answer)]).await.unwrap();
    // The page confirms with the server and returns home; the photo is now in the queue.
    wait_path(&phone, "/me").await;
    wait_text(&phone, "待审核").await;
    phone_shot(&phone, "w03-wechat-paid").await;

    // The reviewer approves (through the API); the approval is pushed to the student's WeChat.
    let mut rev = wx.server.client();
    assert_eq!(rev.login("/staff/login", "wxu-rev", "reviewer-password").await.0, 200);
    let sub = wx.server.state.db.submissions_of(student.id).await.unwrap().remove(0);
    let item = rev.json(&format!("/review/{}", sub.id)).await;
    let photo_id = item["item"]["submission"]["photo_id"].as_i64().unwrap().to_string();
    let r = rev.post(&format!("/review/{}/approve", sub.id), &[("photo", photo_id.as_str())]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let openid = wx.fake.openid_for_mmwebid("2837");
    let start = Instant::now();
    while !wx.fake.messages().iter().any(|m| m.touser == openid && m.template_id == "T-OK") {
        assert!(start.elapsed() < WAIT, "no approval message pushed: {:?}", wx.fake.messages());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    phone.goto(&format!("{}/__fake/chat?openid={openid}", wx.fake.base)).await.unwrap();
    wait_text(&phone, "已通过").await;
    phone_shot(&phone, "w04-wechat-message").await;
    phone.goto(&format!("{base}/me")).await.unwrap();
    wait_text(&phone, "已通过").await;
    phone_shot(&phone, "w05-wechat-approved").await;

    // A second WeChat user with the same student's password: refused, told who can release the binding.
    let other = driver.browser_as("wechat-phone-2", &WECHAT_UA.replace("MMWEBID/2837", "MMWEBID/9001")).await;
    other.goto(&format!("{base}/s/wxu/login")).await.unwrap();
    wait_path(&other, "/s/wxu/login").await;
    type_into(&other, "input[name=username]", "S00001").await;
    type_into(&other, "input[name=password]", "a-new-password").await;
    click(&other, "main form button[type=submit]").await;
    wait_text(&other, "此账号已绑定另一个微信号").await;
    phone_shot(&other, "w06-wechat-second-user-refused").await;

    phone.close().await.unwrap();
    other.close().await.unwrap();
    drop(driver);
    eprintln!("browser WeChat walk: {:?}", started.elapsed());
}

/// A photo waiting in the check queue, on a phone: the page says it is checking and how many are ahead, then the
/// report appears in place when the check ends — the same page, not a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_queued_photo_shows_its_report_without_a_reload() {
    let driver = Driver::start();
    // No check worker until the test starts one: the queued page holds still for as long as it needs.
    let mut config = common::config();
    config.check_workers = Some(0);
    let server = TestServer::start_with(config).await;
    let base = server.base.clone();
    server.staff("root", Role::SuperAdmin, None).await;
    let mut root = common::Client::new(&base);
    root.login("/staff/login", "root", "root-password").await;
    let school_id = school(&server, &root, "qq", "0").await;
    let r =
        root.upload(&format!("/admin/schools/{school_id}/roster"), "roster", "r.csv", roster_csv(1, 1).into()).await;
    assert_eq!(r.status(), 200);
    let files = tempfile::tempdir().unwrap();
    let photo = files.path().join("IMG_0002.JPG");
    std::fs::write(&photo, &approvable_originals()[0].1).unwrap();
    let id = id_number(1);
    let first_password = &id[id.len() - 6..];

    let phone = driver.browser("queued", true).await;
    phone.goto(&format!("{base}/s/qq/login")).await.unwrap();
    type_into(&phone, "input[name=username]", "S00001").await;
    type_into(&phone, "input[name=password]", first_password).await;
    click(&phone, "main form button[type=submit]").await;
    wait_path(&phone, "/me/password").await;
    type_into(&phone, "input[name=current]", first_password).await;
    type_into(&phone, "input[name=new]", "a-new-password").await;
    click(&phone, "main form button[type=submit]").await;
    wait_text(&phone, "我的照片").await;
    click(&phone, ".type a").await;
    wait_for(&phone, "#upload input[type=file]").await.send_keys(&photo.display().to_string()).await.unwrap();
    click(&phone, "#upload button[type=submit]").await;
    wait_for(&phone, "#checking").await;
    assert_eq!(wait_for(&phone, "#place-ahead").await.text().await.unwrap(), "0", "first in the queue");
    phone_shot(&phone, "19-checking").await;
    // A mark on this page: a reload would lose it.
    phone.execute("window.sameMark = 'kept'; return true;", vec![]).await.unwrap();
    let worker = tokio::spawn(gradphoto_web::checks::run(server.state.clone()));
    wait_for(&phone, ".verdict").await;
    let mark = phone.execute("return window.sameMark || null;", vec![]).await.unwrap();
    assert_eq!(mark, json!("kept"), "the report came in place, without a reload; {}", whereabouts(&phone).await);
    wait_for(&phone, "form[action$='/submit'] button[type=submit]").await;
    phone_shot(&phone, "20-checked-in-place").await;
    worker.abort();
    phone.close().await.unwrap();
}
