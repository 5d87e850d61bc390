//! Fees. A [`PaymentProvider`] starts a payment and later confirms it; the offline provider, the only one so far,
//! tells the student where to pay and lets a school admin mark the fee paid. An online provider (WeChat Pay,
//! Alipay) plugs in here with its callback route.

use gradphoto_core::Message;

pub struct PaymentStart {
    /// What the student is told to do.
    pub instructions: Message,
    /// Where to send the student, for providers with a payment page.
    pub redirect: Option<String>,
}

pub trait PaymentProvider: Send + Sync {
    /// The provider's id, recorded with each payment.
    fn id(&self) -> &'static str;
    fn start(&self, school_name: &str, amount_cents: i64) -> PaymentStart;
}

/// Pay at the school's office (or by bank transfer); an admin records it.
pub struct Offline;

impl PaymentProvider for Offline {
    fn id(&self) -> &'static str {
        "offline"
    }

    fn start(&self, school_name: &str, amount_cents: i64) -> PaymentStart {
        let amount = format!("{}.{:02}", amount_cents / 100, amount_cents % 100);
        PaymentStart {
            instructions: Message::new(
                format!("请向{school_name}缴纳照片采集费 {amount} 元；学校确认收款后，您的照片将进入审核。"),
                format!(
                    "Pay the photo fee of CNY {amount} to {school_name}; once the school records it, your photo goes to review."
                ),
            ),
            redirect: None,
        }
    }
}
