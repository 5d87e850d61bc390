// Reviewers keep their hands on the keyboard: A approves, R goes to the reasons, N skips to the queue.
document.addEventListener('keydown', function (e) {
  var t = e.target.tagName;
  if (t === 'INPUT' && e.target.type !== 'checkbox' || t === 'TEXTAREA' || e.ctrlKey || e.metaKey || e.altKey) return;
  var k = e.key.toLowerCase();
  if (k === 'a' && document.getElementById('approve')) { e.preventDefault(); document.getElementById('approve').submit(); }
  else if (k === 'r' && document.getElementById('reject')) { e.preventDefault(); var c = document.querySelector('#reject input[type=checkbox]'); if (c) c.focus(); }
  else if (k === 'n' && document.getElementById('next')) { e.preventDefault(); location.href = document.getElementById('next').href; }
  else if (k === 'enter' && document.getElementById('first') && t !== 'A') { e.preventDefault(); location.href = document.getElementById('first').href; }
});
