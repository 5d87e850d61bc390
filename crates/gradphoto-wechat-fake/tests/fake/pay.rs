//! The WeChat Pay side of the fake, driven by the real client (`PayClient`): signatures both ways, orders, the
//! student's payment, notifications (received by a small server here) and refunds.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use gradphoto_wechat::pay::{Amount, JsapiOrder, JsapiParams, Payer, Refund, RefundAmount, RefundRequest, Transaction};
use gradphoto_wechat::{MerchantKey, PayClient, PayVerifier, WechatError};
use gradphoto_wechat_fake::{FakeWechat, PayApi, PayBehaviour};

/// A notification as the receiver got it.
#[derive(Clone, Debug)]
struct Got {
    serial: String,
    signature: String,
    timestamp: String,
    nonce: String,
    body: Vec<u8>,
}

#[derive(Clone, Default)]
struct Inbox {
    got: Arc<Mutex<Vec<Got>>>,
    /// Statuses to answer, in turn; 204 when empty.
    answers: Arc<Mutex<VecDeque<u16>>>,
}

/// The merchant's notify endpoint, here: records and answers from its queue.
struct Receiver {
    url: String,
    inbox: Inbox,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(answers: &[u16]) -> Receiver {
        async fn notify(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            inbox.got.lock().unwrap().push(Got {
                serial: h("wechatpay-serial"),
                signature: h("wechatpay-signature"),
                timestamp: h("wechatpay-timestamp"),
                nonce: h("wechatpay-nonce"),
                body: body.to_vec(),
            });
            let status = inbox.answers.lock().unwrap().pop_front().unwrap_or(204);
            StatusCode::from_u16(status).unwrap()
        }
        let inbox = Inbox::default();
        inbox.answers.lock().unwrap().extend(answers);
        let app =
            axum::Router::new().route("/wechat/pay/notify", axum::routing::post(notify)).with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/wechat/pay/notify", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, inbox, task }
    }

    fn got(&self) -> Vec<Got> {
        self.inbox.got.lock().unwrap().clone()
    }

    async fn wait(&self, n: usize) -> Vec<Got> {
        crate::common::wait_for(&format!("{n} notifications"), || {
            let g = self.got();
            (g.len() >= n).then_some(g)
        })
        .await
    }
}

fn order(fake: &FakeWechat, no: &str, total: i64, notify_url: &str) -> JsapiOrder {
    let c = fake.config();
    JsapiOrder {
        appid: c.appid.clone(),
        mchid: c.mchid.clone(),
        description: "学历照片采集费".into(),
        out_trade_no: no.into(),
        time_expire: None,
        attach: None,
        notify_url: notify_url.into(),
        amount: Amount { total, currency: "CNY".into() },
        payer: Payer { openid: fake.openid_for_mmwebid("8080") },
    }
}

fn pay_error(e: WechatError) -> (u16, String) {
    match e {
        WechatError::Pay { status, code, .. } => (status, code),
        other => panic!("expected a WeChat Pay error, got {other:?}"),
    }
}

/// Created and paid: the client, the order and its prepay id.
async fn paid_order(fake: &FakeWechat, merchant: &MerchantKey, no: &str, url: &str, how: PayBehaviour) -> PayClient {
    let client = fake.pay_client(merchant.clone());
    let prepay = client.create_jsapi(&order(fake, no, 3000, url)).await.unwrap().prepay_id;
    let params = JsapiParams::new(&fake.config().appid, &prepay, merchant);
    assert_eq!(fake.pay(&params, how).await.unwrap(), "get_brand_wcpay_request:ok");
    client
}

fn open(client: &PayClient, g: &Got) -> Result<(String, String, Vec<u8>), WechatError> {
    let n = client.verify_notification(&g.serial, &g.signature, &g.timestamp, &g.nonce, &g.body)?;
    let plain = n.decrypt(&client.apiv3)?;
    Ok((n.id, n.event_type, plain))
}

#[tokio::test]
async fn create_query_pay_and_the_notification() {
    let (cfg, merchant) = crate::common::config();
    let fake = FakeWechat::start(cfg).await;
    let rx = Receiver::start(&[]).await;
    let client = fake.pay_client(merchant.clone());

    let o = order(&fake, "GP20260612000001", 3000, &rx.url);
    let prepay = client.create_jsapi(&o).await.unwrap().prepay_id;
    assert!(prepay.starts_with("wx") && prepay.len() == 36, "{prepay}");
    assert_eq!(client.create_jsapi(&o).await.unwrap().prepay_id, prepay, "the same order again");
    let mut changed = o.clone();
    changed.amount.total = 1;
    let (status, code) = pay_error(client.create_jsapi(&changed).await.unwrap_err());
    assert_eq!((status, code.as_str()), (400, "INVALID_REQUEST"));

    let q = client.query(&o.out_trade_no).await.unwrap();
    assert_eq!((q.trade_state.as_str(), q.transaction_id.as_ref(), q.payer.as_ref()), ("NOTPAY", None, None));
    assert_eq!(q.amount.unwrap().total, 3000);
    let (status, code) = pay_error(client.query("GP_NO_SUCH_ORDER").await.unwrap_err());
    assert_eq!((status, code.as_str()), (404, "ORDER_NOT_EXIST"));

    let params = JsapiParams::new(&fake.config().appid, &prepay, &merchant);
    assert_eq!(fake.pay(&params, PayBehaviour::Normal).await.unwrap(), "get_brand_wcpay_request:ok");
    assert_eq!(fake.pay(&params, PayBehaviour::Normal).await.unwrap_err(), "get_brand_wcpay_request:fail");

    let got = rx.wait(1).await;
    let (_, event_type, plain) = open(&client, &got[0]).unwrap();
    assert_eq!(event_type, "TRANSACTION.SUCCESS");
    let t: Transaction = serde_json::from_slice(&plain).unwrap();
    assert_eq!((t.out_trade_no.as_str(), t.trade_state.as_str()), ("GP20260612000001", "SUCCESS"));
    assert_eq!(t.amount.as_ref().map(|a| (a.total, a.payer_total)), Some((3000, Some(3000))));
    assert_eq!(t.payer.unwrap().openid, fake.openid_for_mmwebid("8080"));
    let n: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!((n["resource_type"].as_str(), n["summary"].as_str()), (Some("encrypt-resource"), Some("支付成功")));
    assert_eq!(n["resource"]["associated_data"], "transaction");

    let q = client.query(&o.out_trade_no).await.unwrap();
    assert_eq!(q.trade_state, "SUCCESS");
    assert_eq!(q.transaction_id, t.transaction_id);
    assert!(q.success_time.as_deref().unwrap().ends_with("+08:00"));
    let fo = fake.order(&o.out_trade_no).unwrap();
    assert_eq!((fo.amount, fo.trade_state.as_str(), fo.prepay_id.as_str()), (3000, "SUCCESS", prepay.as_str()));
    let log = crate::common::wait_for("the log", || Some(fake.notify_log()).filter(|l| !l.is_empty())).await;
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].status, log[0].path.as_str(), log[0].attempt), (Some(204), "/wechat/pay/notify", 1));
    assert_eq!(log[0].out_trade_no, "GP20260612000001");
    let (status, code) = pay_error(client.create_jsapi(&o).await.unwrap_err());
    assert_eq!((status, code.as_str()), (400, "ORDERPAID"));
}

#[tokio::test]
async fn signatures_are_checked_both_ways() {
    let (cfg, merchant) = crate::common::config();
    let fake = FakeWechat::start(cfg.clone()).await;
    let o = order(&fake, "GP20260612000002", 3000, "https://svc.example/wechat/pay/notify");

    // Our requests signed with a key that is not the merchant's.
    let mut impostor = cfg.platform_key.clone();
    impostor.serial = cfg.merchant_serial.clone();
    let (status, code) = pay_error(fake.pay_client(impostor).create_jsapi(&o).await.unwrap_err());
    assert_eq!((status, code.as_str()), (401, "SIGN_ERROR"));
    assert!(fake.order(&o.out_trade_no).is_none());

    // The fake's answers checked with a key that is not the platform's.
    let mut wrong = PayVerifier::new();
    wrong.add_pem(&fake.platform_serial(), &cfg.merchant_public_pem).unwrap();
    let client = fake.pay_client(merchant.clone());
    let doubting = PayClient::new(&fake.base, &cfg.mchid, &cfg.appid, merchant.clone(), wrong, client.apiv3.clone());
    assert!(matches!(doubting.create_jsapi(&o).await.unwrap_err(), WechatError::Signature(_)));
    // Error answers are signed too, but an error is surfaced as it is.
    assert!(matches!(doubting.query("GP_NO_SUCH_ORDER").await.unwrap_err(), WechatError::Pay { status: 404, .. }));

    // paySign: made by the merchant's key, over the appId too.
    let prepay = client.create_jsapi(&o).await.unwrap().prepay_id;
    let forged = JsapiParams::new(&cfg.appid, &prepay, &cfg.platform_key);
    assert_eq!(fake.pay(&forged, PayBehaviour::Normal).await.unwrap_err(), "get_brand_wcpay_request:fail");
    let other_app = JsapiParams::new("wx0000000000000000", &prepay, &merchant);
    assert_eq!(fake.pay(&other_app, PayBehaviour::Normal).await.unwrap_err(), "get_brand_wcpay_request:fail");
    let unknown = JsapiParams::new(&cfg.appid, "wx_no_such_prepay", &merchant);
    assert_eq!(fake.pay(&unknown, PayBehaviour::Normal).await.unwrap_err(), "get_brand_wcpay_request:fail");
    let cancel = JsapiParams::new(&cfg.appid, &prepay, &merchant);
    assert_eq!(fake.pay(&cancel, PayBehaviour::Cancel).await.unwrap_err(), "get_brand_wcpay_request:cancel");
    assert_eq!(fake.order(&o.out_trade_no).unwrap().trade_state, "NOTPAY");

    // A request with no or a malformed Authorization.
    let r = crate::common::http()
        .get(format!("{}/v3/pay/transactions/out-trade-no/X?mchid=1", fake.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("wechatpay-signature") && r.headers().contains_key("request-id"));
}

#[tokio::test]
async fn a_refused_notification_is_retried_on_the_schedule() {
    let (mut cfg, merchant) = crate::common::config();
    cfg.notify_schedule = vec![Duration::from_millis(50); 5];
    let fake = FakeWechat::start(cfg).await;
    let rx = Receiver::start(&[500, 500]).await;
    let client = paid_order(&fake, &merchant, "GP20260612000003", &rx.url, PayBehaviour::Normal).await;

    let log = crate::common::wait_for("three attempts", || Some(fake.notify_log()).filter(|l| l.len() >= 3)).await;
    let statuses: Vec<_> = log.iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(statuses, [(1, Some(500)), (2, Some(500)), (3, Some(204))]);
    assert!(log.iter().all(|a| a.event_id == log[0].event_id && a.event_type == "TRANSACTION.SUCCESS"));
    let got = rx.got();
    assert_eq!(got.len(), 3);
    // Every attempt is signed afresh and carries the same event.
    let ids: Vec<String> = got.iter().map(|g| open(&client, g).unwrap().0).collect();
    assert!(ids.iter().all(|id| *id == log[0].event_id));
    assert_ne!(got[0].nonce, got[1].nonce);

    // A receiver that cannot be reached: every attempt logged with its error, then WeChat gives up.
    let (mut cfg, merchant) = crate::common::config();
    cfg.notify_schedule = vec![Duration::from_millis(10); 2];
    let fake = FakeWechat::start(cfg).await;
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wechat/pay/notify", gone.local_addr().unwrap());
    drop(gone);
    paid_order(&fake, &merchant, "GP20260612000004", &url, PayBehaviour::Normal).await;
    let log =
        crate::common::wait_for("three failed attempts", || Some(fake.notify_log()).filter(|l| l.len() >= 3)).await;
    assert!(log.iter().all(|a| a.status.is_none() && a.error.is_some()), "{log:?}");
}

#[tokio::test]
async fn payment_behaviours() {
    let (mut cfg, merchant) = crate::common::config();
    cfg.notify_schedule = vec![Duration::from_millis(20); 2];
    let fake = FakeWechat::start(cfg).await;

    // Duplicates: the same event three times.
    let rx = Receiver::start(&[]).await;
    let client = paid_order(&fake, &merchant, "GP20260612000010", &rx.url, PayBehaviour::Duplicate(2)).await;
    let ids: Vec<String> = rx.wait(3).await.iter().map(|g| open(&client, g).unwrap().0).collect();
    assert!(ids.len() == 3 && ids.iter().all(|i| *i == ids[0]));

    // Signed with another key: refused by verification; the receiver's 401 gets it retried.
    let rx = Receiver::start(&[401, 401, 401]).await;
    paid_order(&fake, &merchant, "GP20260612000011", &rx.url, PayBehaviour::BadSignature).await;
    let got = rx.wait(3).await;
    assert!(got.iter().all(|g| matches!(open(&client, g), Err(WechatError::Signature(_)))));
    assert_eq!(got[0].serial, fake.platform_serial());

    // Dropped: paid, never notified; the query finds it.
    let rx = Receiver::start(&[]).await;
    paid_order(&fake, &merchant, "GP20260612000012", &rx.url, PayBehaviour::Drop).await;
    assert_eq!(client.query("GP20260612000012").await.unwrap().trade_state, "SUCCESS");
    assert!(fake.notify_log().iter().all(|a| a.out_trade_no != "GP20260612000012"));

    // A wrong amount in the notification (the order itself is unchanged).
    let rx = Receiver::start(&[]).await;
    paid_order(&fake, &merchant, "GP20260612000013", &rx.url, PayBehaviour::WrongAmount(1)).await;
    let (_, _, plain) = open(&client, &rx.wait(1).await[0]).unwrap();
    let t: Transaction = serde_json::from_slice(&plain).unwrap();
    assert_eq!(t.amount.unwrap().total, 1);
    assert_eq!(client.query("GP20260612000013").await.unwrap().amount.unwrap().total, 3000);

    // Out of order: a stale replay first (outside the time window), then the genuine one.
    let rx = Receiver::start(&[401]).await;
    paid_order(&fake, &merchant, "GP20260612000014", &rx.url, PayBehaviour::OutOfOrder).await;
    let got = rx.wait(2).await;
    assert!(matches!(open(&client, &got[0]), Err(WechatError::Signature(_))));
    let (id, _, _) = open(&client, &got[1]).unwrap();
    assert_eq!(got[0].body, got[1].body);
    assert!(!id.is_empty());

    // Delayed.
    let rx = Receiver::start(&[]).await;
    paid_order(&fake, &merchant, "GP20260612000015", &rx.url, PayBehaviour::Delay(Duration::from_millis(50))).await;
    open(&client, &rx.wait(1).await[0]).unwrap();
}

#[tokio::test]
async fn refund_then_its_notification() {
    let (cfg, merchant) = crate::common::config();
    let fake = FakeWechat::start(cfg).await;
    let rx = Receiver::start(&[]).await;
    let client = fake.pay_client(merchant.clone());
    let no = "GP20260612000020";
    let request = |refund_no: &str, refund: i64| RefundRequest {
        transaction_id: None,
        out_trade_no: Some(no.into()),
        out_refund_no: refund_no.into(),
        reason: Some("重复缴费".into()),
        notify_url: None,
        amount: RefundAmount { refund, total: 3000, currency: "CNY".into() },
    };
    client.create_jsapi(&order(&fake, no, 3000, &rx.url)).await.unwrap();
    let (status, code) = pay_error(client.refund(&request("RF1", 1000)).await.unwrap_err());
    assert_eq!((status, code.as_str()), (400, "INVALID_REQUEST"), "not paid yet");

    let prepay = fake.order(no).unwrap().prepay_id;
    fake.pay(&JsapiParams::new(&fake.config().appid, &prepay, &merchant), PayBehaviour::Normal).await.unwrap();
    rx.wait(1).await;

    let r = client.refund(&request("RF1", 1000)).await.unwrap();
    assert_eq!((r.status.as_str(), r.out_refund_no.as_str()), ("PROCESSING", "RF1"));
    let again = client.refund(&request("RF1", 1000)).await.unwrap();
    assert_eq!(again.refund_id, r.refund_id, "the same refund again");
    let (status, _) = pay_error(client.refund(&request("RF1", 999)).await.unwrap_err());
    assert_eq!(status, 400, "the same refund number with other content");
    let (status, _) = pay_error(client.refund(&request("RF2", 2001)).await.unwrap_err());
    assert_eq!(status, 400, "more than is left");

    let got = rx.wait(2).await;
    let (_, event_type, plain) = open(&client, &got[1]).unwrap();
    assert_eq!(event_type, "REFUND.SUCCESS");
    let refund: Refund = serde_json::from_slice(&plain).unwrap();
    assert_eq!((refund.status.as_str(), refund.refund_id.as_ref()), ("SUCCESS", r.refund_id.as_ref()));
    assert_eq!(refund.amount.unwrap()["refund"], 1000);
    let n: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!((n["summary"].as_str(), n["resource"]["original_type"].as_str()), (Some("退款成功"), Some("refund")));

    let fo = fake.order(no).unwrap();
    assert_eq!((fo.trade_state.as_str(), fo.refunded), ("REFUND", 1000));
    assert_eq!(client.query(no).await.unwrap().trade_state, "REFUND");
    let (status, code) = pay_error(
        client
            .refund(&RefundRequest { out_trade_no: Some("GP_NO_SUCH_ORDER".into()), ..request("RF3", 1) })
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (404, "RESOURCE_NOT_EXISTS"));
}

#[tokio::test]
async fn injected_pay_failures() {
    let (cfg, merchant) = crate::common::config();
    let fake = FakeWechat::start(cfg).await;
    let client = fake.pay_client(merchant);
    let o = order(&fake, "GP20260612000030", 3000, "https://svc.example/n");
    fake.fail_next_pay(PayApi::Create, 500, "SYSTEM_ERROR", 1);
    let (status, code) = pay_error(client.create_jsapi(&o).await.unwrap_err());
    assert_eq!((status, code.as_str()), (500, "SYSTEM_ERROR"));
    client.create_jsapi(&o).await.unwrap();
    fake.fail_next_pay(PayApi::Query, 429, "FREQUENCY_LIMITED", 2);
    for _ in 0..2 {
        assert_eq!(pay_error(client.query(&o.out_trade_no).await.unwrap_err()).0, 429);
    }
    client.query(&o.out_trade_no).await.unwrap();
}

#[tokio::test]
async fn the_cashier_page_pays_and_returns() {
    let (cfg, merchant) = crate::common::config();
    let fake = FakeWechat::start(cfg).await;
    let rx = Receiver::start(&[]).await;
    let client = fake.pay_client(merchant.clone());
    let prepay = client.create_jsapi(&order(&fake, "GP20260612000040", 3050, &rx.url)).await.unwrap().prepay_id;
    let p = JsapiParams::new(&fake.config().appid, &prepay, &merchant);
    let fields = [
        ("appId", p.app_id.as_str()),
        ("timeStamp", &p.time_stamp),
        ("nonceStr", &p.nonce_str),
        ("package", &p.package),
        ("signType", &p.sign_type),
        ("paySign", &p.pay_sign),
        ("return", "https://svc.example/pay/done?o=1"),
    ];
    let http = crate::common::http();
    let page = http.get(format!("{}/__fake/cashier", fake.base)).query(&fields).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("模拟微信支付 ¥30.50") && html.contains("学历照片采集费"), "{html}");

    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("action", "pay"));
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
    let r = http
        .post(format!("{}/__fake/cashier", fake.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "https://svc.example/pay/done?o=1");
    assert_eq!(fake.order("GP20260612000040").unwrap().trade_state, "SUCCESS");
    rx.wait(1).await;
    // Paying twice fails, on a page.
    let r = http
        .post(format!("{}/__fake/cashier", fake.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("get_brand_wcpay_request:fail"));
}
