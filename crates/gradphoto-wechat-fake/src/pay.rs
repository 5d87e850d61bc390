//! WeChat Pay API v3's side: signed requests in, signed answers out, orders and refunds, the payment itself and
//! the notifications with their retries.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use gradphoto_wechat::MerchantKey;
use gradphoto_wechat::pay::{
    JsapiOrder, JsapiParams, Notification, PaidAmount, Payer, RefundRequest, Resource, Transaction,
};
use gradphoto_wechat::sign::{TIMESTAMP_WINDOW_S, parse_authorization, request_message, response_message};
use serde_json::{Value, json};

use crate::{NotifyAttempt, Order, PayApi, PayBehaviour, RefundRec, Shared, util};

/// A prepay id is valid for two hours.
const PREPAY_LIFETIME_MS: i64 = 2 * 3600 * 1000;
/// How old the stale copy of [`PayBehaviour::OutOfOrder`] claims to be.
const STALE_S: i64 = 600;
/// How long the genuine copy of [`PayBehaviour::OutOfOrder`] waits behind the stale one.
const OUT_OF_ORDER_GAP: Duration = Duration::from_millis(200);

pub(crate) const PAY_OK: &str = "get_brand_wcpay_request:ok";
pub(crate) const PAY_FAIL: &str = "get_brand_wcpay_request:fail";
pub(crate) const PAY_CANCEL: &str = "get_brand_wcpay_request:cancel";

/// An answer before signing: status and JSON body (none for 204).
type Answer = (u16, Option<Value>);

fn error(status: u16, code: &str, message: &str) -> Answer {
    (status, Some(json!({"code": code, "message": message})))
}

fn message_of(code: &str) -> &'static str {
    match code {
        "SYSTEM_ERROR" | "SYSTEMERROR" => "系统错误",
        "FREQUENCY_LIMITED" => "频率超限",
        "ORDER_NOT_EXIST" => "订单不存在",
        "RESOURCE_NOT_EXISTS" => "资源不存在",
        "PARAM_ERROR" => "参数错误",
        "SIGN_ERROR" => "签名错误",
        "NOT_ENOUGH" => "余额不足",
        "ORDERPAID" => "该订单已支付",
        "ORDER_CLOSED" => "订单已关闭",
        "INVALID_REQUEST" => "无效请求",
        "BANKERROR" => "银行系统异常",
        "NO_AUTH" => "商户无权限",
        "MCH_NOT_EXISTS" => "商户号不存在",
        "APPID_MCHID_NOT_MATCH" => "appid和mch_id不匹配",
        _ => "模拟错误",
    }
}

/// Signs an answer as WeChat Pay does: `Wechatpay-Signature` over `TIMESTAMP\nNONCE\nBODY\n` with the platform key.
fn respond(s: &Shared, (status, body): Answer) -> Response {
    let body = body.map(|v| serde_json::to_vec(&v).unwrap_or_default()).unwrap_or_default();
    let ts = gradphoto_wechat::now_s();
    let nonce = gradphoto_wechat::random_alnum(32);
    let signature = s.config.platform_key.sign(&response_message(ts, &nonce, &body));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put("content-type", "application/json; charset=utf-8");
    put("wechatpay-serial", &s.config.platform_key.serial);
    put("wechatpay-signature", &signature);
    put("wechatpay-timestamp", &ts.to_string());
    put("wechatpay-nonce", &nonce);
    put("request-id", &util::hex(32, true));
    r
}

/// Checks a request's `Authorization`: the scheme and fields, our mchid and the merchant's serial, a timestamp
/// within 5 minutes, and the signature over `METHOD\nPATH?QUERY\nTS\nNONCE\nBODY\n`.
fn verify_request(s: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), Answer> {
    let bad = || error(401, "SIGN_ERROR", "签名错误");
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(bad)?;
    let f = parse_authorization(auth).map_err(|_| bad())?;
    if f.mchid != s.config.mchid || f.serial_no != s.config.merchant_serial {
        return Err(bad());
    }
    if (gradphoto_wechat::now_s() - f.timestamp).abs() > TIMESTAMP_WINDOW_S {
        return Err(bad());
    }
    let body = std::str::from_utf8(body).map_err(|_| bad())?;
    let path = uri.path_and_query().map_or_else(|| uri.path(), |p| p.as_str());
    let message = request_message(method.as_str(), path, f.timestamp, &f.nonce_str, body);
    s.merchant.verify(&f.serial_no, message.as_bytes(), &f.signature).map_err(|_| bad())
}

/// The common path of every WeChat Pay call: verify, then a test's injected failure, then the call itself; the
/// answer signed whatever it is.
fn call(
    s: &Arc<Shared>,
    api: PayApi,
    req: (&Method, &Uri, &HeaderMap, &[u8]),
    f: impl FnOnce(&Arc<Shared>) -> Answer,
) -> Response {
    let (method, uri, headers, body) = req;
    if let Err(a) = verify_request(s, method, uri, headers, body) {
        return respond(s, a);
    }
    let injected = {
        let mut st = s.lock();
        match st.fail_pay.get_mut(&api) {
            Some((status, code, times)) if *times > 0 => {
                *times -= 1;
                Some((*status, code.clone()))
            }
            _ => None,
        }
    };
    if let Some((status, code)) = injected {
        return respond(s, error(status, &code, message_of(&code)));
    }
    let answer = f(s);
    respond(s, answer)
}

fn param_error(why: &str) -> Answer {
    error(400, "PARAM_ERROR", why)
}

fn mchid_of(q: Option<&str>) -> Option<String> {
    util::params(q).remove("mchid")
}

/// `POST /v3/pay/transactions/jsapi`.
pub(crate) async fn create(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(&s, PayApi::Create, (&method, &uri, &headers, &body), |s| {
        let order: JsapiOrder = match serde_json::from_slice(&body) {
            Ok(o) => o,
            Err(e) => return param_error(&format!("请求体不合法：{e}")),
        };
        if let Err(why) = order.validate() {
            return param_error(&why);
        }
        if order.mchid != s.config.mchid {
            return param_error("mchid 与请求的商户号不一致");
        }
        if order.appid != s.config.appid {
            return param_error("appid 和 mchid 不匹配");
        }
        let now = s.now_ms();
        let mut st = s.lock();
        if let Some(o) = st.orders.get_mut(&order.out_trade_no) {
            if o.request != order {
                return error(400, "INVALID_REQUEST", "201 商户订单号重复");
            }
            match o.trade_state {
                "SUCCESS" | "REFUND" => return error(400, "ORDERPAID", "该订单已支付"),
                "CLOSED" => return error(400, "ORDER_CLOSED", "订单已关闭"),
                _ => {}
            }
            // The same order again: the same prepay id while it is valid, a new one after.
            if now - o.prepay_ms >= PREPAY_LIFETIME_MS {
                o.prepay_id = new_prepay_id();
                o.prepay_ms = now;
            }
            return (200, Some(json!({"prepay_id": o.prepay_id})));
        }
        let prepay_id = new_prepay_id();
        st.orders.insert(
            order.out_trade_no.clone(),
            Order {
                request: order,
                prepay_id: prepay_id.clone(),
                prepay_ms: now,
                trade_state: "NOTPAY",
                transaction_id: None,
                success_time: None,
                refunded: 0,
            },
        );
        (200, Some(json!({"prepay_id": prepay_id})))
    })
}

fn new_prepay_id() -> String {
    format!("wx{}{}", util::compact_time(gradphoto_wechat::now_s()), util::hex(20, false))
}

fn new_transaction_id() -> String {
    format!("4200{}{}{}", util::digits(6), util::compact_day(gradphoto_wechat::now_s()), util::digits(10))
}

fn new_refund_id() -> String {
    format!("503{}{}{}", util::digits(6), util::compact_day(gradphoto_wechat::now_s()), util::digits(12))
}

fn state_desc(state: &str) -> &'static str {
    match state {
        "SUCCESS" => "支付成功",
        "REFUND" => "转入退款",
        "CLOSED" => "已关闭",
        _ => "订单未支付",
    }
}

/// The order as the query answers it (and, paid, as the notification's resource carries it).
fn transaction(o: &Order) -> Transaction {
    let paid = o.transaction_id.is_some();
    Transaction {
        appid: o.request.appid.clone(),
        mchid: o.request.mchid.clone(),
        out_trade_no: o.request.out_trade_no.clone(),
        transaction_id: o.transaction_id.clone(),
        trade_type: Some("JSAPI".into()),
        trade_state: o.trade_state.to_string(),
        trade_state_desc: state_desc(o.trade_state).into(),
        bank_type: paid.then(|| "OTHERS".into()),
        attach: Some(o.request.attach.clone().unwrap_or_default()),
        success_time: o.success_time.clone(),
        payer: paid.then(|| Payer { openid: o.request.payer.openid.clone() }),
        amount: Some(PaidAmount {
            total: o.request.amount.total,
            payer_total: paid.then_some(o.request.amount.total),
            currency: "CNY".into(),
            payer_currency: Some("CNY".into()),
        }),
    }
}

/// JSON without the nulls of absent optional fields: WeChat Pay omits what an order does not have yet.
fn without_nulls<T: serde::Serialize>(t: &T) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    v
}

fn query_answer(s: &Arc<Shared>, q: Option<&str>, find: impl Fn(&Order) -> bool) -> Answer {
    match mchid_of(q) {
        None => return param_error("mchid 字段缺失"),
        Some(m) if m != s.config.mchid => return param_error("mchid 与请求的商户号不一致"),
        Some(_) => {}
    }
    let st = s.lock();
    match st.orders.values().find(|o| find(o)) {
        Some(o) => (200, Some(without_nulls(&transaction(o)))),
        None => error(404, "ORDER_NOT_EXIST", "订单不存在"),
    }
}

/// `GET /v3/pay/transactions/out-trade-no/{no}?mchid=`.
pub(crate) async fn query_by_out_trade_no(
    State(s): State<Arc<Shared>>,
    Path(no): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    call(&s, PayApi::Query, (&method, &uri, &headers, &[]), |s| {
        query_answer(s, q.as_deref(), |o| o.request.out_trade_no == no)
    })
}

/// `GET /v3/pay/transactions/id/{transaction_id}?mchid=`.
pub(crate) async fn query_by_transaction_id(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    call(&s, PayApi::Query, (&method, &uri, &headers, &[]), |s| {
        query_answer(s, q.as_deref(), |o| o.transaction_id.as_deref() == Some(id.as_str()))
    })
}

/// `POST /v3/pay/transactions/out-trade-no/{no}/close` with `{mchid}`: 204.
pub(crate) async fn close(
    State(s): State<Arc<Shared>>,
    Path(no): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(&s, PayApi::Close, (&method, &uri, &headers, &body), |s| {
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        match v.get("mchid").and_then(Value::as_str) {
            None => return param_error("mchid 字段缺失"),
            Some(m) if m != s.config.mchid => return param_error("mchid 与请求的商户号不一致"),
            Some(_) => {}
        }
        let mut st = s.lock();
        let Some(o) = st.orders.get_mut(&no) else { return error(404, "ORDER_NOT_EXIST", "订单不存在") };
        match o.trade_state {
            "SUCCESS" | "REFUND" => error(400, "ORDERPAID", "订单已支付"),
            _ => {
                o.trade_state = "CLOSED";
                (204, None)
            }
        }
    })
}

/// `POST /v3/refund/domestic/refunds`: PROCESSING now, then `REFUND.SUCCESS` notified.
pub(crate) async fn refund(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(&s, PayApi::Refund, (&method, &uri, &headers, &body), |s| {
        let req: RefundRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return param_error(&format!("请求体不合法：{e}")),
        };
        let no = &req.out_refund_no;
        if no.is_empty() || no.len() > 64 || !no.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b)) {
            return param_error("out_refund_no: 1–64 of [0-9A-Za-z_-|*@]");
        }
        if req.transaction_id.is_none() && req.out_trade_no.is_none() {
            return param_error("transaction_id 和 out_trade_no 必须二选一");
        }
        if req.notify_url.as_deref().is_some_and(|u| !u.starts_with("http") || u.contains('?') || u.len() > 256) {
            return param_error("notify_url 格式错误");
        }
        if req.amount.currency != "CNY" || req.amount.refund <= 0 {
            return param_error("amount: 退款金额必须为正数，币种 CNY");
        }
        let mut st = s.lock();
        if let Some(r) = st.refunds.get(no) {
            if r.request != req {
                return error(400, "INVALID_REQUEST", "退款单号重复，与之前的请求参数不一致");
            }
            return (200, Some(refund_answer(r)));
        }
        let found = st.orders.values_mut().find(|o| match (&req.transaction_id, &req.out_trade_no) {
            (Some(t), _) => o.transaction_id.as_ref() == Some(t),
            (None, Some(n)) => &o.request.out_trade_no == n,
            (None, None) => false,
        });
        let Some(o) = found else { return error(404, "RESOURCE_NOT_EXISTS", "订单不存在") };
        if let (Some(n), Some(t)) = (&req.out_trade_no, &req.transaction_id)
            && (&o.request.out_trade_no != n || o.transaction_id.as_ref() != Some(t))
        {
            return param_error("transaction_id 与 out_trade_no 不匹配");
        }
        let Some(transaction_id) = o.transaction_id.clone() else {
            return error(400, "INVALID_REQUEST", "订单未支付，不能退款");
        };
        if req.amount.total != o.request.amount.total {
            return param_error("订单金额与原订单不一致");
        }
        if req.amount.refund > o.request.amount.total - o.refunded {
            return error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额");
        }
        o.refunded += req.amount.refund;
        o.trade_state = "REFUND";
        let notify_url = req.notify_url.clone().unwrap_or_else(|| o.request.notify_url.clone());
        let rec = RefundRec {
            request: req.clone(),
            refund_id: new_refund_id(),
            out_trade_no: o.request.out_trade_no.clone(),
            transaction_id,
            total: o.request.amount.total,
            refund: req.amount.refund,
            create_time: util::rfc3339(gradphoto_wechat::now_s()),
            success_time: None,
            status: "PROCESSING",
        };
        let answer = refund_answer(&rec);
        st.refunds.insert(no.clone(), rec);
        drop(st);
        let (s2, no) = (s.clone(), no.clone());
        s.spawn(async move { refund_succeeds(s2, no, notify_url).await });
        (200, Some(answer))
    })
}

fn refund_amount(r: &RefundRec) -> Value {
    json!({
        "total": r.total, "refund": r.refund, "payer_total": r.total, "payer_refund": r.refund,
        "settlement_total": r.total, "settlement_refund": r.refund, "discount_refund": 0, "currency": "CNY",
        "refund_fee": 0, "from": [],
    })
}

fn refund_answer(r: &RefundRec) -> Value {
    let mut v = json!({
        "refund_id": r.refund_id, "out_refund_no": r.request.out_refund_no, "transaction_id": r.transaction_id,
        "out_trade_no": r.out_trade_no, "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
        "create_time": r.create_time, "status": r.status, "funds_account": "AVAILABLE",
        "amount": refund_amount(r), "promotion_detail": [],
    });
    if let (Some(t), Some(m)) = (&r.success_time, v.as_object_mut()) {
        m.insert("success_time".into(), json!(t));
    }
    v
}

/// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
pub(crate) async fn refund_query(
    State(s): State<Arc<Shared>>,
    Path(no): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    call(&s, PayApi::RefundQuery, (&method, &uri, &headers, &[]), |s| match s.lock().refunds.get(&no) {
        Some(r) => (200, Some(refund_answer(r))),
        None => error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"),
    })
}

/// Anything else: WeChat Pay's 404 under `/v3/`, a plain 404 elsewhere.
pub(crate) async fn fallback(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    if uri.path().starts_with("/v3/") {
        respond(&s, error(404, "NOT_FOUND", "请求的资源不存在"))
    } else {
        (StatusCode::NOT_FOUND, "404 Not Found").into_response()
    }
}

/// The refund goes through, then WeChat Pay says so.
async fn refund_succeeds(s: Arc<Shared>, out_refund_no: String, url: String) {
    let plain = {
        let mut st = s.lock();
        let Some(r) = st.refunds.get_mut(&out_refund_no) else { return };
        let success_time = util::rfc3339(gradphoto_wechat::now_s());
        r.status = "SUCCESS";
        r.success_time = Some(success_time.clone());
        json!({
            "mchid": s.config.mchid, "out_trade_no": r.out_trade_no, "transaction_id": r.transaction_id,
            "out_refund_no": r.request.out_refund_no, "refund_id": r.refund_id, "refund_status": "SUCCESS",
            "success_time": success_time, "user_received_account": "支付用户零钱",
            "amount": {"total": r.total, "refund": r.refund, "payer_total": r.total, "payer_refund": r.refund},
        })
    };
    let out_trade_no = plain["out_trade_no"].as_str().unwrap_or_default().to_string();
    let Some(d) = Delivery::new(&s, "REFUND.SUCCESS", "退款成功", "refund", &plain, out_trade_no, url) else {
        return;
    };
    deliver(s, Arc::new(d), Signer::Platform, true).await;
}

/// One notification: its event, its body (the same for every copy and retry), where it goes.
struct Delivery {
    event_id: String,
    event_type: &'static str,
    out_trade_no: String,
    url: String,
    path: String,
    body: Vec<u8>,
}

impl Delivery {
    /// Encrypts `plain` into a `pay::Notification` (12-character nonce, associated data = original type).
    fn new(
        s: &Shared,
        event_type: &'static str,
        summary: &str,
        original_type: &str,
        plain: &Value,
        out_trade_no: String,
        url: String,
    ) -> Option<Delivery> {
        let nonce = gradphoto_wechat::random_alnum(12);
        let plaintext = serde_json::to_vec(plain).ok()?;
        let ciphertext = s.apiv3.encrypt(&nonce, original_type, &plaintext).ok()?;
        let n = Notification {
            id: util::uuid(),
            create_time: util::rfc3339(gradphoto_wechat::now_s()),
            resource_type: "encrypt-resource".into(),
            event_type: event_type.into(),
            summary: summary.into(),
            resource: Resource {
                original_type: original_type.into(),
                algorithm: "AEAD_AES_256_GCM".into(),
                ciphertext,
                associated_data: original_type.into(),
                nonce,
            },
        };
        let path = url::Url::parse(&url).map_or_else(|_| url.clone(), |u| u.path().to_string());
        Some(Delivery {
            event_id: n.id.clone(),
            event_type,
            out_trade_no,
            url,
            path,
            body: serde_json::to_vec(&n).ok()?,
        })
    }
}

#[derive(Clone, Copy)]
enum Signer {
    Platform,
    /// Another key under the platform's serial: a forgery.
    Foreign,
    /// The platform key, with a timestamp [`STALE_S`] old: a late replay.
    Stale,
}

/// A key that is not the platform's, made once per process (RSA key generation is slow).
async fn foreign_key() -> Option<MerchantKey> {
    static KEY: OnceLock<MerchantKey> = OnceLock::new();
    if let Some(k) = KEY.get() {
        return Some(k.clone());
    }
    let k = tokio::task::spawn_blocking(|| MerchantKey::generate("foreign")).await.ok()?;
    Some(KEY.get_or_init(|| k).clone())
}

/// Posts one notification until acknowledged (200 or 204), waiting the schedule's steps between attempts
/// (`retry` false: once). Each attempt is signed afresh, as a retry hours later must still be within the
/// receiver's 5-minute window.
async fn deliver(s: Arc<Shared>, d: Arc<Delivery>, signer: Signer, retry: bool) {
    let foreign = match signer {
        Signer::Foreign => foreign_key().await,
        _ => None,
    };
    let schedule = if retry { s.config.notify_schedule.clone() } else { Vec::new() };
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let ts = match signer {
            Signer::Stale => gradphoto_wechat::now_s() - STALE_S,
            _ => gradphoto_wechat::now_s(),
        };
        let nonce = gradphoto_wechat::random_alnum(32);
        let message = response_message(ts, &nonce, &d.body);
        let signature = match &foreign {
            Some(k) => k.sign(&message),
            None => s.config.platform_key.sign(&message),
        };
        let sent = s
            .http
            .post(&d.url)
            .header("content-type", "application/json")
            .header("wechatpay-serial", &s.config.platform_key.serial)
            .header("wechatpay-signature", signature)
            .header("wechatpay-timestamp", ts.to_string())
            .header("wechatpay-nonce", nonce)
            .header("wechatpay-signature-type", gradphoto_wechat::sign::SCHEME)
            .header("request-id", util::hex(32, true))
            .body(d.body.clone())
            .send()
            .await;
        let (status, error) = match sent {
            Ok(r) => (Some(r.status().as_u16()), None),
            Err(e) => (None, Some(e.without_url().to_string())),
        };
        s.lock().notify_log.push(NotifyAttempt {
            event_id: d.event_id.clone(),
            event_type: d.event_type.to_string(),
            out_trade_no: d.out_trade_no.clone(),
            path: d.path.clone(),
            attempt,
            status,
            error,
        });
        if matches!(status, Some(200 | 204)) {
            return;
        }
        let Some(wait) = schedule.get(attempt as usize - 1) else { return };
        tokio::time::sleep(*wait).await;
    }
}

impl Shared {
    /// What WeChat's client does with `getBrandWCPayRequest`'s parameters.
    pub(crate) fn pay(self: &Arc<Self>, params: &JsapiParams, how: PayBehaviour) -> Result<String, String> {
        let fail = |why: &str| {
            eprintln!("fake WeChat: payment refused: {why}");
            Err(PAY_FAIL.to_string())
        };
        if params.verify(&self.merchant, &self.config.merchant_serial).is_err() {
            return fail("paySign does not verify with the merchant's public key");
        }
        if params.app_id != self.config.appid {
            return fail("appId is not the account's");
        }
        if params.sign_type != "RSA" {
            return fail("signType is not RSA");
        }
        let Some(prepay_id) = params.package.strip_prefix("prepay_id=") else {
            return fail("package is not prepay_id=…");
        };
        let now = self.now_ms();
        let (plain, out_trade_no, url) = {
            let mut st = self.lock();
            let Some(o) = st.orders.values_mut().find(|o| o.prepay_id == prepay_id) else {
                return fail("unknown prepay id");
            };
            if o.trade_state != "NOTPAY" {
                return fail(&format!("the order is {}", o.trade_state));
            }
            if now - o.prepay_ms >= PREPAY_LIFETIME_MS {
                return fail("the prepay id has expired");
            }
            if how == PayBehaviour::Cancel {
                return Err(PAY_CANCEL.to_string());
            }
            o.trade_state = "SUCCESS";
            o.transaction_id = Some(new_transaction_id());
            o.success_time = Some(util::rfc3339(gradphoto_wechat::now_s()));
            let mut t = transaction(o);
            if let (PayBehaviour::WrongAmount(total), Some(a)) = (&how, t.amount.as_mut()) {
                a.total = *total;
                a.payer_total = Some(*total);
            }
            (without_nulls(&t), o.request.out_trade_no.clone(), o.request.notify_url.clone())
        };
        if how == PayBehaviour::Drop {
            return Ok(PAY_OK.to_string());
        }
        let Some(d) = Delivery::new(self, "TRANSACTION.SUCCESS", "支付成功", "transaction", &plain, out_trade_no, url)
        else {
            return Ok(PAY_OK.to_string());
        };
        let d = Arc::new(d);
        match how {
            PayBehaviour::Duplicate(n) => {
                for _ in 0..=n {
                    self.spawn(deliver(self.clone(), d.clone(), Signer::Platform, true));
                }
            }
            PayBehaviour::BadSignature => self.spawn(deliver(self.clone(), d, Signer::Foreign, true)),
            PayBehaviour::OutOfOrder => {
                let s = self.clone();
                self.spawn(async move {
                    deliver(s.clone(), d.clone(), Signer::Stale, false).await;
                    tokio::time::sleep(OUT_OF_ORDER_GAP).await;
                    deliver(s, d, Signer::Platform, true).await;
                });
            }
            PayBehaviour::Delay(wait) => {
                let s = self.clone();
                self.spawn(async move {
                    tokio::time::sleep(wait).await;
                    deliver(s, d, Signer::Platform, true).await;
                });
            }
            _ => self.spawn(deliver(self.clone(), d, Signer::Platform, true)),
        }
        Ok(PAY_OK.to_string())
    }

    /// The order a prepay id belongs to: (description, total fen, trade state), for the cashier page.
    pub(crate) fn prepay_order(&self, prepay_id: &str) -> Option<(String, i64, String)> {
        let st = self.lock();
        let o = st.orders.values().find(|o| o.prepay_id == prepay_id)?;
        Some((o.request.description.clone(), o.request.amount.total, o.trade_state.to_string()))
    }
}
