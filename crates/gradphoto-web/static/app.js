// Little script: selects marked data-autosubmit submit their form on change (the button stays for no-JS use).
document.querySelectorAll('select[data-autosubmit]').forEach(function (s) {
  s.addEventListener('change', function () { s.form.submit(); });
});

// WeChat Pay inside WeChat: the server makes (or reuses) the order and signs the parameters; WeChat's own
// WeixinJSBridge shows the cashier. After "ok" the page asks the server until the payment is confirmed (by the
// notification, or by the server querying WeChat Pay itself).
(function () {
  var button = document.getElementById('wxpay');
  if (!button) { return; }
  var status = document.getElementById('wxpay-status');
  function say(text) { status.textContent = text; }
  function poll(n) {
    fetch('/me/pay?sync=1', { headers: { accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) { return r.json(); })
      .then(function (b) {
        if (b.paid) { say('已缴费，照片已进入审核 Paid'); location.href = '/me'; }
        else if (n < 30) { setTimeout(function () { poll(n + 1); }, 1000); }
        else { say('支付结果确认中，请稍后刷新本页 Confirming; reload later'); button.disabled = false; }
      })
      .catch(function () { setTimeout(function () { poll(n + 1); }, 2000); });
  }
  button.addEventListener('click', function () {
    button.disabled = true;
    say('正在创建订单… Creating the order…');
    fetch('/me/pay/wechat', {
      method: 'POST', credentials: 'same-origin',
      headers: { accept: 'application/json', 'x-csrf-token': button.getAttribute('data-csrf') }
    })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, b: b }; }); })
      .then(function (x) {
        if (!x.ok) { say(x.b.error ? x.b.error.message.zh : '下单失败'); button.disabled = false; return; }
        var pay = function () {
          WeixinJSBridge.invoke('getBrandWCPayRequest', x.b.jsapi, function (res) {
            if (res.err_msg === 'get_brand_wcpay_request:ok') { say('支付完成，正在确认… Confirming…'); poll(0); }
            else if (res.err_msg === 'get_brand_wcpay_request:cancel') { say('已取消支付 Cancelled'); button.disabled = false; }
            else { say('支付失败，请重试 Payment failed; try again'); button.disabled = false; }
          });
        };
        var cashier = button.getAttribute('data-cashier');
        if (typeof WeixinJSBridge === 'undefined' && cashier) {
          // The local demo only: the fake WeChat's cashier page stands in for WeChat's payment sheet.
          var q = Object.keys(x.b.jsapi).map(function (k) {
            return encodeURIComponent(k) + '=' + encodeURIComponent(x.b.jsapi[k]);
          });
          q.push('return=' + encodeURIComponent(location.origin + '/me/pay?sync=1'));
          location.href = cashier + '?' + q.join('&');
        } else if (typeof WeixinJSBridge === 'undefined') {
          say('请在微信中打开本页面支付 Open this page in WeChat to pay');
          document.addEventListener('WeixinJSBridgeReady', pay, false);
        } else { pay(); }
      })
      .catch(function () { say('网络错误，请重试 Network error'); button.disabled = false; });
  });
})();

// A photo in the check queue: ask the server to answer when its check ends (a long poll, so the report appears the
// moment it exists), then put the page's new content in place — no reload, the scroll position stays.
(function () {
  var box = document.getElementById('checking');
  if (!box) { return; }
  var url = box.getAttribute('data-check');
  function show() {
    fetch(location.pathname, { credentials: 'same-origin' })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var main = doc.querySelector('main');
        if (main) { document.querySelector('main').innerHTML = main.innerHTML; }
        // A page that is still checking (another upload came in meanwhile) goes on waiting.
        var again = document.getElementById('checking');
        if (again) { box = again; url = box.getAttribute('data-check'); wait(0); }
      })
      .catch(function () { setTimeout(show, 2000); });
  }
  function wait(failures) {
    fetch(url + '?wait=20', { headers: { accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) { if (!r.ok) { throw r.status; } return r.json(); })
      .then(function (b) {
        if (!b.checking) { show(); return; }
        var ahead = String(Math.max(0, b.place - 1));
        ['place-ahead', 'place-ahead-en'].forEach(function (id) {
          var el = document.getElementById(id);
          if (el) { el.textContent = ahead; }
        });
        wait(0);
      })
      .catch(function () { setTimeout(function () { wait(failures + 1); }, Math.min(10000, 1000 * (failures + 1))); });
  }
  wait(0);
})();
