// Live updates of the b24-bridge status page: the daemon pushes the page's body (already escaped HTML) over
// Server-Sent Events; nothing here builds markup from data. EventSource reconnects by itself.
(function () {
  "use strict";
  var main = document.getElementById("status");
  var live = document.getElementById("live");
  var url = document.body.getAttribute("data-stream");
  function mark(ok, text) {
    live.textContent = text;
    live.className = "badge " + (ok ? "up" : "down");
  }
  if (!window.EventSource || !url) {
    mark(false, "no live updates (reload to refresh)");
    return;
  }
  var source = new EventSource(url);
  source.addEventListener("open", function () { mark(true, "live"); });
  source.addEventListener("error", function () { mark(false, "reconnecting"); });
  source.addEventListener("status", function (event) {
    var update = JSON.parse(event.data);
    main.innerHTML = update.html;
    mark(true, "live");
  });
})();
