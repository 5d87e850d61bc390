//! WeChat Pay API v3 for JSAPI (payment inside the official account's pages): the shapes of orders, the page's
//! call, notifications, queries and refunds. Amounts are integer fen everywhere.

use serde::{Deserialize, Serialize};

use crate::WechatError;
use crate::sign::{ApiV3Key, MerchantKey, PayVerifier, pay_sign_message};

pub const JSAPI_PATH: &str = "/v3/pay/transactions/jsapi";
pub const REFUND_PATH: &str = "/v3/refund/domestic/refunds";

/// The query path of an order by the merchant's number.
pub fn query_path(out_trade_no: &str, mchid: &str) -> String {
    format!("/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={mchid}")
}

/// Whether an `out_trade_no` is one WeChat Pay accepts: 6–32 characters of `[0-9A-Za-z_-|*]`.
pub fn valid_trade_no(no: &str) -> bool {
    (6..=32).contains(&no.len()) && no.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Amount {
    pub total: i64,
    #[serde(default = "cny")]
    pub currency: String,
}

fn cny() -> String {
    "CNY".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Payer {
    pub openid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JsapiOrder {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    pub notify_url: String,
    pub amount: Amount,
    pub payer: Payer,
}

impl JsapiOrder {
    /// The documented limits, checked before sending (WeChat Pay would refuse with PARAM_ERROR).
    pub fn validate(&self) -> Result<(), String> {
        if self.appid.is_empty() || self.appid.len() > 32 || self.mchid.is_empty() || self.mchid.len() > 32 {
            return Err("appid and mchid: 1–32 characters".into());
        }
        if self.description.is_empty() || self.description.chars().count() > 127 {
            return Err("description: 1–127 characters".into());
        }
        if !valid_trade_no(&self.out_trade_no) {
            return Err("out_trade_no: 6–32 of [0-9A-Za-z_-|*]".into());
        }
        if self.notify_url.len() > 255 || !self.notify_url.starts_with("http") || self.notify_url.contains('?') {
            return Err("notify_url: an absolute URL without a query, at most 255 characters".into());
        }
        if self.amount.total <= 0 || self.amount.currency != "CNY" {
            return Err("amount: a positive number of fen, in CNY".into());
        }
        if self.payer.openid.is_empty() {
            return Err("payer.openid is empty".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Prepay {
    pub prepay_id: String,
}

/// What the page passes to `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`, field names as WeChat wants them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JsapiParams {
    pub app_id: String,
    /// Seconds, as a string.
    pub time_stamp: String,
    pub nonce_str: String,
    /// `prepay_id=…`
    pub package: String,
    /// Always `RSA`; sent, not signed.
    pub sign_type: String,
    pub pay_sign: String,
}

impl JsapiParams {
    pub fn new(appid: &str, prepay_id: &str, key: &MerchantKey) -> JsapiParams {
        let time_stamp = crate::now_s().to_string();
        let nonce_str = crate::random_alnum(32);
        let package = format!("prepay_id={prepay_id}");
        let pay_sign = key.sign(pay_sign_message(appid, &time_stamp, &nonce_str, &package).as_bytes());
        JsapiParams { app_id: appid.into(), time_stamp, nonce_str, package, sign_type: "RSA".into(), pay_sign }
    }

    /// Whether `pay_sign` is the merchant's signature over the other fields (what WeChat's client checks).
    pub fn verify(&self, merchant_public: &PayVerifier, serial: &str) -> Result<(), WechatError> {
        let m = pay_sign_message(&self.app_id, &self.time_stamp, &self.nonce_str, &self.package);
        merchant_public.verify(serial, m.as_bytes(), &self.pay_sign)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Resource {
    pub original_type: String,
    pub algorithm: String,
    pub ciphertext: String,
    #[serde(default)]
    pub associated_data: String,
    pub nonce: String,
}

/// A notification as posted: `TRANSACTION.SUCCESS` or `REFUND.SUCCESS` (and other `REFUND.*`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub create_time: String,
    pub resource_type: String,
    pub event_type: String,
    #[serde(default)]
    pub summary: String,
    pub resource: Resource,
}

impl Notification {
    /// Decrypts the resource with the APIv3 key.
    pub fn decrypt(&self, key: &ApiV3Key) -> Result<Vec<u8>, WechatError> {
        if self.resource.algorithm != "AEAD_AES_256_GCM" {
            return Err(WechatError::Decrypt(format!("unknown algorithm {:?}", self.resource.algorithm)));
        }
        key.decrypt(&self.resource.nonce, &self.resource.associated_data, &self.resource.ciphertext)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaidAmount {
    pub total: i64,
    #[serde(default)]
    pub payer_total: Option<i64>,
    #[serde(default = "cny")]
    pub currency: String,
    #[serde(default)]
    pub payer_currency: Option<String>,
}

/// A transaction: the decrypted `TRANSACTION.SUCCESS` resource, and the order query's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Transaction {
    pub appid: String,
    pub mchid: String,
    pub out_trade_no: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub trade_type: Option<String>,
    /// SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING or PAYERROR.
    pub trade_state: String,
    #[serde(default)]
    pub trade_state_desc: String,
    #[serde(default)]
    pub bank_type: Option<String>,
    #[serde(default)]
    pub attach: Option<String>,
    #[serde(default)]
    pub success_time: Option<String>,
    #[serde(default)]
    pub payer: Option<Payer>,
    #[serde(default)]
    pub amount: Option<PaidAmount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundAmount {
    pub refund: i64,
    pub total: i64,
    #[serde(default = "cny")]
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    pub out_refund_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    pub amount: RefundAmount,
}

/// The refund's answer and the decrypted `REFUND.*` resource share these fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refund {
    #[serde(default)]
    pub refund_id: Option<String>,
    pub out_refund_no: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub out_trade_no: Option<String>,
    /// SUCCESS, CLOSED, PROCESSING or ABNORMAL (the notification calls it `refund_status`).
    #[serde(default, alias = "refund_status")]
    pub status: String,
    #[serde(default)]
    pub amount: Option<serde_json::Value>,
}

/// WeChat Pay's error body: `{"code": "…", "message": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayErrorBody {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trade_numbers_and_orders_are_checked() {
        assert!(valid_trade_no("GP12ab_-|*") && !valid_trade_no("abc") && !valid_trade_no("含中文的订单号1"));
        let mut o = JsapiOrder {
            appid: "wx1".into(),
            mchid: "1900009191".into(),
            description: "学历照片采集费".into(),
            out_trade_no: "GP0000000001".into(),
            time_expire: None,
            attach: None,
            notify_url: "https://p.example/wechat/pay/notify".into(),
            amount: Amount { total: 3000, currency: "CNY".into() },
            payer: Payer { openid: "o1".into() },
        };
        o.validate().unwrap();
        o.notify_url.push_str("?x=1");
        assert!(o.validate().is_err());
        o.notify_url = "https://p.example/n".into();
        o.amount.total = 0;
        assert!(o.validate().is_err());
    }

    #[test]
    fn pay_sign_verifies_and_detects_a_changed_package() {
        let k = MerchantKey::generate("serial");
        let mut v = PayVerifier::new();
        v.add_pem("serial", &k.public_pem().unwrap()).unwrap();
        let mut p = JsapiParams::new("wx1", "wx201410272009395522657a690389285100", &k);
        p.verify(&v, "serial").unwrap();
        let json = serde_json::to_value(&p).unwrap();
        assert!(json.get("paySign").is_some() && json.get("timeStamp").is_some() && json["signType"] == "RSA");
        p.package = "prepay_id=other".into();
        assert!(p.verify(&v, "serial").is_err());
    }
}
