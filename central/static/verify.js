// Show the page's dates in the reader's own language and format (the server wrote a
// readable English fallback). No other script runs on the verify page.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var locales = navigator.languages && navigator.languages.length ? navigator.languages : undefined;
  var month = new Intl.DateTimeFormat(locales, { year: "numeric", month: "long", timeZone: "UTC" });
  var datetime = new Intl.DateTimeFormat(locales, { dateStyle: "long", timeStyle: "short" });
  document.querySelectorAll("time[data-format]").forEach(function (el) {
    var iso = el.getAttribute("datetime") || "";
    var kind = el.getAttribute("data-format");
    var when = new Date(kind === "month" ? iso + "-01T00:00:00Z" : iso);
    if (isNaN(when.getTime())) return;
    el.textContent = (kind === "month" ? month : datetime).format(when);
    el.setAttribute("data-localised", "1");
  });
});
