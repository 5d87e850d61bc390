//! gradphoto-wechat-fake: fake WeChat servers for the tests and the local demo, following the protocol notes in
//! `../shared/notes/wechat.md` (paths, fields, error codes, signatures).
//!
//! One axum server on one loopback port plays three hosts at once — its base URL serves as `api_base`
//! (api.weixin.qq.com), `open_base` (open.weixin.qq.com) and `pay_base` (api.mch.weixin.qq.com):
//! - web authorisation: `/connect/oauth2/authorize` (the user is the `MMWEBID/<digits>` of the User-Agent, as in
//!   WeChat's in-app browser, or a `fakewx_uid` cookie) and `/sns/oauth2/access_token`;
//! - the stable server token `/cgi-bin/stable_token` and `/cgi-bin/message/template/send`;
//! - WeChat Pay API v3: JSAPI orders, query, close, refund, refund query; every request's signature verified with
//!   the merchant's public key, every answer signed with the platform key; `TRANSACTION.SUCCESS` and
//!   `REFUND.SUCCESS` notifications posted (encrypted, signed) with WeChat's retry schedule;
//! - `/__fake/cashier`: what WeChat's client does with the page's `getBrandWCPayRequest`, as a page for the demo.
//! - `/__fake/chat?openid=`: the template messages a user received, as WeChat's service-notice cards.
//!
//! All signing, verifying and encryption is `gradphoto_wechat::sign`'s: the fake and the client share one copy of
//! the crypto, but each checks the other's output against the documented message layouts.
//!
//! Time: the fake's own bookkeeping (code age, token lifetime, force-refresh spacing and daily count, message
//! de-duplication, prepay expiry) runs on a clock tests can move with [`FakeWechat::advance_clock`]. WeChat Pay's
//! signature timestamps stay on the wall clock, because the client on the other side stamps with the wall clock.

mod cashier;
mod chat;
mod demo;
mod mp;
mod pay;
mod util;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gradphoto_wechat::pay::JsapiOrder;
use gradphoto_wechat::sign::{ApiV3Key, PayVerifier};
use gradphoto_wechat::{MerchantKey, MpClient, PayClient};
use sha2::{Digest, Sha256};

pub use demo::{config_block, load_or_create, run_demo};

/// WeChat Pay's documented notification retry schedule: 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h.
pub fn wechat_notify_schedule() -> Vec<Duration> {
    [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10_800, 10_800, 10_800, 21_600, 21_600]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// A User-Agent of WeChat's in-app browser on Android, carrying the `MMWEBID` the fake identifies users by.
pub fn wechat_user_agent(mmwebid: &str) -> String {
    format!(
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240105.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) \
         Version/4.0 Chrome/122.0.6261.120 Mobile Safari/537.36 XWEB/1220099 MMWEBSDK/20240301 MMWEBID/{mmwebid} \
         MicroMessenger/8.0.48.2580(0x28003036) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
    )
}

/// The fake's configuration: the official account's and the merchant's identities and keys.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub appid: String,
    pub secret: String,
    pub mchid: String,
    /// The merchant's certificate serial and public key: the fake verifies requests and `paySign` with them.
    pub merchant_serial: String,
    pub merchant_public_pem: String,
    /// The fake signs answers and notifications with it; its serial is the WeChat Pay public key id.
    pub platform_key: MerchantKey,
    /// 32 characters.
    pub apiv3_key: String,
    /// Template ids the account has; empty accepts any.
    pub template_ids: Vec<String>,
    /// The server token's lifetime (WeChat: 7200 s).
    pub token_lifetime_s: i64,
    /// Waits between notification attempts (WeChat: [`wechat_notify_schedule`]); the first attempt is at once.
    pub notify_schedule: Vec<Duration>,
    /// How long a web-authorisation code stays usable (WeChat: 5 minutes).
    pub code_lifetime: Duration,
}

impl FakeConfig {
    /// Fresh random identities and keys, plus the merchant's private key (what the service under test signs
    /// with). Two RSA key generations: slowish, so tests make one per binary and clone it.
    pub fn generate() -> (FakeConfig, MerchantKey) {
        let mchid = format!("19000{}", util::digits(5));
        let merchant = MerchantKey::generate(&util::hex(40, true));
        let platform = MerchantKey::generate(&format!("PUB_KEY_ID_01{mchid}{}", util::digits(16)));
        let merchant_public_pem = merchant.public_pem().expect("a freshly generated key has a public PEM");
        let config = FakeConfig {
            appid: format!("wx{}", util::hex(16, false)),
            secret: util::hex(32, false),
            mchid,
            merchant_serial: merchant.serial.clone(),
            merchant_public_pem,
            platform_key: platform,
            apiv3_key: gradphoto_wechat::random_alnum(32),
            template_ids: Vec::new(),
            token_lifetime_s: 7200,
            notify_schedule: wechat_notify_schedule(),
            code_lifetime: Duration::from_secs(300),
        };
        (config, merchant)
    }
}

/// The official-account APIs whose answers [`FakeWechat::fail_next`] can replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    OauthExchange,
    StableToken,
    TemplateSend,
}

/// The WeChat Pay APIs whose answers [`FakeWechat::fail_next_pay`] can replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayApi {
    Create,
    /// Both order queries (by out_trade_no and by transaction id).
    Query,
    Close,
    Refund,
    RefundQuery,
}

/// What the student's WeChat client does after the page calls `getBrandWCPayRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayBehaviour {
    /// Paid; one notification, retried on WeChat's schedule until acknowledged.
    Normal,
    /// Paid; the same notification (same id and body) this many extra times, all at once.
    Duplicate(u32),
    /// Paid; the notification is signed with another key (under the platform serial), so it must be refused.
    BadSignature,
    /// Paid, but no notification is ever sent: reconciliation (the order query) must find it.
    Drop,
    /// Paid; the notification claims this total (fen) instead of the order's.
    WrongAmount(i64),
    /// Paid; first a stale copy of the notification (the same body, signed with a timestamp 10 minutes old, as
    /// a late replay would be: outside the 5-minute window, so it must be refused), sent once; then, a moment
    /// later, the genuine notification.
    OutOfOrder,
    /// Paid; the notification goes out after this delay.
    Delay(Duration),
    /// The student cancels: nothing is paid, `get_brand_wcpay_request:cancel`.
    Cancel,
}

/// A template message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub touser: String,
    pub template_id: String,
    /// key → value
    pub data: BTreeMap<String, String>,
    pub url: Option<String>,
    pub client_msg_id: Option<String>,
    pub msgid: i64,
}

/// `/cgi-bin/stable_token` requests received (including refused ones), by mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCalls {
    pub normal: u32,
    pub forced: u32,
}

/// An order as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeOrder {
    pub out_trade_no: String,
    pub description: String,
    /// Total, fen.
    pub amount: i64,
    pub openid: String,
    /// NOTPAY, SUCCESS, CLOSED or REFUND.
    pub trade_state: String,
    pub transaction_id: Option<String>,
    pub prepay_id: String,
    pub notify_url: String,
    pub success_time: Option<String>,
    /// Refunded so far, fen.
    pub refunded: i64,
}

/// One attempt to deliver a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyAttempt {
    pub event_id: String,
    /// TRANSACTION.SUCCESS or REFUND.SUCCESS.
    pub event_type: String,
    pub out_trade_no: String,
    /// The notify URL's path.
    pub path: String,
    /// 1 for the first attempt of a delivery, 2 for its first retry, …
    pub attempt: u32,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The connection error or timeout, when it did not.
    pub error: Option<String>,
}

/// A web-authorisation code waiting to be exchanged.
struct Code {
    openid: String,
    scope: String,
    issued_ms: i64,
    used: bool,
}

/// A server token and why it may no longer work.
struct Token {
    expires_ms: i64,
    /// Replaced by a force refresh: refused at once as invalid (40001).
    revoked: bool,
    /// Expired by the test (42001).
    expired: bool,
}

pub(crate) struct Order {
    request: JsapiOrder,
    prepay_id: String,
    prepay_ms: i64,
    trade_state: &'static str,
    transaction_id: Option<String>,
    success_time: Option<String>,
    refunded: i64,
}

pub(crate) struct RefundRec {
    /// The request as first made, to tell a retry from a conflicting reuse of `out_refund_no`.
    request: gradphoto_wechat::pay::RefundRequest,
    refund_id: String,
    out_trade_no: String,
    transaction_id: String,
    total: i64,
    refund: i64,
    create_time: String,
    success_time: Option<String>,
    status: &'static str,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, Code>,
    /// Openids the fake has handed out (or that a test asked for): template sends to others answer 40003.
    known_openids: HashSet<String>,
    refused: HashSet<String>,
    snapshot: HashSet<String>,
    tokens: HashMap<String, Token>,
    current_token: Option<String>,
    /// When each successful force refresh happened (fake clock, ms).
    forces: Vec<i64>,
    token_calls: TokenCalls,
    exchange_calls: u32,
    fail: HashMap<Api, (i64, u32)>,
    fail_pay: HashMap<PayApi, (u16, String, u32)>,
    messages: Vec<SentMessage>,
    /// (touser, client_msg_id) → (msgid, when), for WeChat's 10-minute de-duplication.
    dedup: HashMap<(String, String), (i64, i64)>,
    next_msgid: i64,
    orders: BTreeMap<String, Order>,
    refunds: BTreeMap<String, RefundRec>,
    notify_log: Vec<NotifyAttempt>,
}

pub(crate) struct Shared {
    config: FakeConfig,
    /// The merchant's public key, for requests and `paySign`.
    merchant: PayVerifier,
    apiv3: ApiV3Key,
    base: String,
    /// For notifications: WeChat gives a receiver 5 s and follows no redirects.
    http: reqwest::Client,
    clock_offset_ms: AtomicI64,
    inner: Mutex<Inner>,
    /// Notification deliveries in flight, aborted with the fake.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fake's clock, ms: the wall clock plus what tests advanced it by.
    fn now_ms(&self) -> i64 {
        util::wall_ms() + self.clock_offset_ms.load(Ordering::Relaxed)
    }

    fn openid_of(&self, user: &str) -> String {
        let digest = Sha256::digest(format!("{}:{user}", self.config.appid).as_bytes());
        let b64 = URL_SAFE_NO_PAD.encode(digest);
        format!("o{}", &b64[..27])
    }

    /// An openid given as itself, or an MMWEBID (all digits) turned into its openid.
    fn openid_or_mmwebid(&self, s: &str) -> String {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) { self.openid_of(s) } else { s.to_string() }
    }

    fn spawn<F>(self: &Arc<Self>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(fut).abort_handle();
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/connect/oauth2/authorize", get(mp::authorize))
        .route("/sns/oauth2/access_token", get(mp::oauth_exchange))
        .route("/cgi-bin/stable_token", post(mp::stable_token))
        .route("/cgi-bin/message/template/send", post(mp::template_send))
        .route("/v3/pay/transactions/jsapi", post(pay::create))
        .route("/v3/pay/transactions/out-trade-no/{no}", get(pay::query_by_out_trade_no))
        .route("/v3/pay/transactions/out-trade-no/{no}/close", post(pay::close))
        .route("/v3/pay/transactions/id/{id}", get(pay::query_by_transaction_id))
        .route("/v3/refund/domestic/refunds", post(pay::refund))
        .route("/v3/refund/domestic/refunds/{no}", get(pay::refund_query))
        .route("/__fake/cashier", get(cashier::page).post(cashier::submit))
        .route("/__fake/chat", get(chat::page))
        .fallback(pay::fallback)
        .with_state(shared)
}

/// The fake WeChat servers, running; dropping it stops the server and every notification in flight.
pub struct FakeWechat {
    /// `http://127.0.0.1:PORT`: api_base, open_base and pay_base at once.
    pub base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeWechat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FakeWechat({})", self.base)
    }
}

impl Drop for FakeWechat {
    fn drop(&mut self) {
        self.server.abort();
        for t in self.shared.tasks.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            t.abort();
        }
    }
}

impl FakeWechat {
    /// Starts on a free loopback port. Panics if the configuration's keys are unusable or no port is free
    /// (a broken test set-up); see [`FakeWechat::try_start_on`].
    pub async fn start(config: FakeConfig) -> FakeWechat {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        FakeWechat::start_on(config, listener).await
    }

    /// Starts on the given listener; panics like [`FakeWechat::start`].
    pub async fn start_on(config: FakeConfig, listener: tokio::net::TcpListener) -> FakeWechat {
        match FakeWechat::try_start_on(config, listener).await {
            Ok(f) => f,
            Err(e) => panic!("the fake WeChat cannot start: {e}"),
        }
    }

    pub async fn try_start_on(config: FakeConfig, listener: tokio::net::TcpListener) -> Result<FakeWechat, String> {
        let mut merchant = PayVerifier::new();
        merchant.add_pem(&config.merchant_serial, &config.merchant_public_pem).map_err(|e| e.to_string())?;
        let apiv3 = ApiV3Key::new(&config.apiv3_key).map_err(|e| e.to_string())?;
        config.platform_key.public_pem().map_err(|e| e.to_string())?;
        let mut addr = listener.local_addr().map_err(|e| e.to_string())?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            config,
            merchant,
            apiv3,
            base: format!("http://{addr}"),
            http,
            clock_offset_ms: AtomicI64::new(0),
            inner: Mutex::new(Inner {
                next_msgid: 2_000_000_000 + rand::random_range(0..1_000_000),
                ..Inner::default()
            }),
            tasks: Mutex::new(Vec::new()),
        });
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake WeChat: the server stopped: {e}");
            }
        });
        Ok(FakeWechat { base: shared.base.clone(), shared, server })
    }

    pub fn config(&self) -> &FakeConfig {
        &self.shared.config
    }

    pub fn platform_public_pem(&self) -> String {
        // Checked at start.
        self.shared.config.platform_key.public_pem().unwrap_or_default()
    }

    /// The WeChat Pay public key id (`Wechatpay-Serial` of every answer and notification).
    pub fn platform_serial(&self) -> String {
        self.shared.config.platform_key.serial.clone()
    }

    /// The platform's public key under its serial: what the service's [`PayClient`] verifies with.
    pub fn platform_verifier(&self) -> PayVerifier {
        let mut v = PayVerifier::new();
        // Checked at start, so this cannot fail.
        let _ = v.add_pem(&self.platform_serial(), &self.platform_public_pem());
        v
    }

    /// An official-account client pointed at the fake, with the right appid and secret.
    pub fn mp_client(&self) -> MpClient {
        MpClient::new(&self.base, &self.shared.config.appid, &self.shared.config.secret)
    }

    /// A WeChat Pay client pointed at the fake, signing with `merchant_key`, verifying with the platform key.
    pub fn pay_client(&self, merchant_key: MerchantKey) -> PayClient {
        let c = &self.shared.config;
        PayClient::new(
            &self.base,
            &c.mchid,
            &c.appid,
            merchant_key,
            self.platform_verifier(),
            self.shared.apiv3.clone(),
        )
    }

    /// The openid the user with this MMWEBID gets from this account. The fake now knows the user (as if they had
    /// followed the account), so template sends to it are accepted.
    pub fn openid_for_mmwebid(&self, mmwebid: &str) -> String {
        let openid = self.shared.openid_of(mmwebid);
        self.shared.lock().known_openids.insert(openid.clone());
        openid
    }

    /// Follows the service's redirect to the authorize page as WeChat's in-app browser of user `mmwebid` would,
    /// and returns where WeChat sends the user back (the `Location`, with `code` and `state`).
    pub async fn visit_authorize(&self, authorize_url: &str, mmwebid: &str) -> Result<String, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let r = client
            .get(authorize_url)
            .header("user-agent", wechat_user_agent(mmwebid))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() != 302 {
            let status = r.status().as_u16();
            return Err(format!("authorize answered {status}: {}", r.text().await.unwrap_or_default()));
        }
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| "a redirect without Location".to_string())
    }

    /// Moves the fake's clock forward (code age, token lifetime, force-refresh limits, de-duplication window,
    /// prepay expiry). WeChat Pay's signature timestamps stay on the wall clock.
    pub fn advance_clock(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.shared.clock_offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// The next `times` calls of `api` answer `{errcode, errmsg}` (errmsg WeChat's text for known codes).
    pub fn fail_next(&self, api: Api, errcode: i64, times: u32) {
        self.shared.lock().fail.insert(api, (errcode, times));
    }

    /// The next `times` (correctly signed) calls of `api` answer `status` with `{code, message}`, signed.
    pub fn fail_next_pay(&self, api: PayApi, status: u16, code: &str, times: u32) {
        self.shared.lock().fail_pay.insert(api, (status, code.to_string(), times));
    }

    /// The current server token now answers 42001 (access_token expired); the next normal stable_token call
    /// hands out a new one.
    pub fn expire_token(&self) {
        let mut s = self.shared.lock();
        if let Some(t) = s.current_token.clone()
            && let Some(tok) = s.tokens.get_mut(&t)
        {
            tok.expired = true;
        }
    }

    /// That user (an openid, or an MMWEBID of digits) refuses authorisation: redirected back without a code.
    pub fn refuse_authorization(&self, openid_or_mmwebid: &str) {
        let openid = self.shared.openid_or_mmwebid(openid_or_mmwebid);
        self.shared.lock().refused.insert(openid);
    }

    /// That user (an openid or an MMWEBID) is a snapshot-mode virtual user: the code exchange says
    /// `is_snapshotuser: 1`.
    pub fn snapshot_user(&self, openid_or_mmwebid: &str) {
        let openid = self.shared.openid_or_mmwebid(openid_or_mmwebid);
        self.shared.lock().snapshot.insert(openid);
    }

    pub fn messages(&self) -> Vec<SentMessage> {
        self.shared.lock().messages.clone()
    }

    pub fn token_calls(&self) -> TokenCalls {
        self.shared.lock().token_calls
    }

    /// `/sns/oauth2/access_token` requests received, including refused ones.
    pub fn exchange_calls(&self) -> u32 {
        self.shared.lock().exchange_calls
    }

    pub fn order(&self, out_trade_no: &str) -> Option<FakeOrder> {
        self.shared.lock().orders.get(out_trade_no).map(Order::view)
    }

    pub fn notify_log(&self) -> Vec<NotifyAttempt> {
        self.shared.lock().notify_log.clone()
    }

    /// The student pays inside WeChat with the parameters the page passed to `getBrandWCPayRequest`: the client
    /// checks `paySign` with the merchant's public key, the appId and that the prepay id is open, then the order
    /// is paid and notified per `how`. `Ok("get_brand_wcpay_request:ok")`, or
    /// `Err("get_brand_wcpay_request:fail")` (bad sign, unknown, paid or expired prepay id) /
    /// `Err("get_brand_wcpay_request:cancel")`.
    pub async fn pay(&self, params: &gradphoto_wechat::pay::JsapiParams, how: PayBehaviour) -> Result<String, String> {
        self.shared.pay(params, how)
    }
}

impl Order {
    fn view(&self) -> FakeOrder {
        FakeOrder {
            out_trade_no: self.request.out_trade_no.clone(),
            description: self.request.description.clone(),
            amount: self.request.amount.total,
            openid: self.request.payer.openid.clone(),
            trade_state: self.trade_state.to_string(),
            transaction_id: self.transaction_id.clone(),
            prepay_id: self.prepay_id.clone(),
            notify_url: self.request.notify_url.clone(),
            success_time: self.success_time.clone(),
            refunded: self.refunded,
        }
    }
}
