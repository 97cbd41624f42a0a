/* tracker conversion snippet: keeps the SMS click id, reports conversions to the pixel.
 * <script src="https://<tracker>/t.js"></script> on every page of the shop, then
 * tracker.convert({event: "purchase", value: "49.90", currency: "EUR", order_id: "A17"})
 * on the thank-you page. No dependencies; the tracker itself sets no cookie. */
(function (w, d) {
  "use strict";
  var tag = d.currentScript;
  var data = (tag && tag.dataset) || {};
  var param = data.param || "tclid"; // the campaign's click-id parameter
  var days = Number(data.days) || 7; // keep the click id this long (the attribution window)
  var origin = tag && tag.src ? new URL(tag.src, w.location.href).origin : "";
  var KEY = "tracker_click_id";
  var VALID = /^[A-Za-z0-9_-]{1,64}$/;

  function remember(id) {
    var expires = Date.now() + days * 864e5;
    var secure = w.location.protocol === "https:" ? "; Secure" : "";
    d.cookie = KEY + "=" + id + "; Max-Age=" + days * 86400 + "; Path=/; SameSite=Lax" + secure;
    try {
      w.localStorage.setItem(KEY, JSON.stringify({ id: id, expires: expires }));
    } catch (e) { /* storage may be off: the cookie still holds it */ }
  }

  function clickId() {
    var match = d.cookie.match(new RegExp("(?:^|; )" + KEY + "=([A-Za-z0-9_-]+)"));
    if (match) return match[1];
    try {
      var kept = JSON.parse(w.localStorage.getItem(KEY) || "null");
      if (kept && kept.expires > Date.now() && VALID.test(kept.id)) return kept.id;
    } catch (e) { /* nothing kept */ }
    return null;
  }

  function convert(conversion) {
    var c = conversion || {};
    var id = clickId();
    var query = new URLSearchParams({ src: "snippet", event: c.event || "purchase" });
    if (id) query.set("tclid", id);
    if (c.value !== undefined && c.value !== null) query.set("value", String(c.value));
    if (c.currency) query.set("currency", c.currency);
    if (c.order_id) query.set("order_id", String(c.order_id));
    var pixel = new Image(1, 1);
    pixel.src = origin + "/p.gif?" + query.toString();
    return id;
  }

  var fromUrl = new URLSearchParams(w.location.search).get(param);
  if (fromUrl && VALID.test(fromUrl)) remember(fromUrl);
  w.tracker = { convert: convert, clickId: clickId };
})(window, document);
