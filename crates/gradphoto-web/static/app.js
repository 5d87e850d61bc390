// Little script: selects marked data-autosubmit submit their form on change (the button stays for no-JS use).
document.querySelectorAll('select[data-autosubmit]').forEach(function (s) {
  s.addEventListener('change', function () { s.form.submit(); });
});
