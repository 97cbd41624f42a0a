"""Who clicked: a person, or software acting on a link it was shown.

``classify(user_agent, method)`` puts a click in one of five classes:

* ``human`` — a browser, including in-app browsers (Facebook ``FBAN``/``FBAV``, Instagram,
  Snapchat, LINE, Pinterest): a person tapped the link.
* ``preview`` — a messaging app fetching the page to draw a link preview (iMessage, WhatsApp,
  Telegram, Messenger, Slack, Discord, Teams, Google Messages …). Often the first hit on a
  link, before anyone has tapped it.
* ``scanner`` — a security product checking the link (Microsoft Office, Proofpoint, Mimecast,
  headless browsers, carrier spam filters …), and every ``HEAD`` request (below).
* ``crawler`` — search engines and other robots, named or recognised by ``user-agents``.
* ``library`` — HTTP libraries and command-line clients (curl, python-requests, okhttp …),
  and requests without a User-Agent.

Each answer names the ``rule`` that decided it, so stored clicks can be re-classified when the
rules improve. ``RULES`` is data: checked in order, first match wins; then ``user-agents``'
own bot detection (rule ``ua_parser_bot``, class ``crawler``); then ``default_human``.

**HEAD requests.** A browser following a link always sends ``GET``; ``HEAD`` comes from link
checkers, scanners and unfurlers probing the target. So every ``HEAD`` is non-human: when its
User-Agent matched a bot rule that answer stands (a ``HEAD`` from WhatsApp stays ``preview``/
``whatsapp``), otherwise — a browser-looking or unknown agent — it is ``scanner`` with rule
``head_request``. Device, OS and browser still describe the User-Agent.

Only the first ``SIGNIFICANT_LENGTH`` (512) characters of a User-Agent are read: the store
keeps that many, so re-classifying a stored click gives the same answer as classifying the
live one, and the cache's keys stay small. Parsing an unseen agent with ``user-agents`` costs
about a millisecond, so results are cached per User-Agent string; this runs in the click
writer, never on the request path. The module does no I/O.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from user_agents import parse as _parse_user_agent  # type: ignore[import-untyped]

HUMAN = "human"
PREVIEW = "preview"
SCANNER = "scanner"
CRAWLER = "crawler"
LIBRARY = "library"
KINDS = (HUMAN, PREVIEW, SCANNER, CRAWLER, LIBRARY)

DEVICES = ("mobile", "tablet", "desktop", "bot", "other")

SIGNIFICANT_LENGTH = 512
CACHE_SIZE = 10_000


class Classification(NamedTuple):
    kind: str
    """One of ``KINDS``."""
    rule: str
    """The rule that decided ``kind``: a name in ``RULES`` or one of the fallbacks."""
    device: str
    """One of ``DEVICES``."""
    os: str
    """The OS family as ``user-agents`` names it, e.g. ``"iOS"``, ``"Android"``, ``"Other"``."""
    browser: str
    """The browser family, e.g. ``"Mobile Safari"``, ``"Chrome Mobile"``, ``"Other"``."""


class Rule(NamedTuple):
    name: str
    kind: str
    pattern: re.Pattern[str]


def _ci(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


RULES: tuple[Rule, ...] = (
    # --- Link previewers of messaging apps ------------------------------------------------
    # Apple iMessage / Messages (iOS, macOS) poses as Facebook and Twitter at once: "Mozilla/5.0
    # (Macintosh; Intel Mac OS X 10_11_1) ... Safari/601.2.4 facebookexternalhit/1.1 Facebot
    # Twitterbot/1.0". Before "facebook" and "twitter", which would also match it.
    Rule("imessage", PREVIEW, _ci(r"facebookexternalhit/1\.1 Facebot Twitterbot/1\.0")),
    # Signal (and its fork Session) fetch previews on the sender's phone posing as WhatsApp, but
    # with a bare "WhatsApp/2" (Signal-Android's LinkPreviewRepository) or "WhatsApp" (Session).
    Rule("signal", PREVIEW, _ci(r"^WhatsApp(?:/2)?$")),
    # WhatsApp's link preview fetcher, on the sender's phone: "WhatsApp/2.23.20.0 A" (Android),
    # "WhatsApp/2.2338.12 i" (iOS).
    Rule("whatsapp", PREVIEW, _ci(r"^WhatsApp/")),
    # Telegram's server-side preview fetcher: "TelegramBot (like TwitterBot)". Telegram's own
    # in-app browser says "Telegram-Android/10.x" and is human.
    Rule("telegram", PREVIEW, _ci(r"\bTelegramBot\b")),
    # LINE's preview fetcher: "facebookexternalhit/1.1;line-poker/1.0". LINE's in-app browser
    # ("... Safari Line/13.20.0") is human, and "Linux" must never match.
    Rule("line", PREVIEW, _ci(r"\bline-poker/")),
    # KakaoTalk's preview fetcher: "facebookexternalhit/1.1; kakaotalk-scrap/1.0; +https://...".
    Rule("kakaotalk", PREVIEW, _ci(r"\bkakaotalk-scrap/")),
    # Facebook, Messenger and Instagram DMs: "facebookexternalhit/1.1
    # (+http://www.facebook.com/externalhit_uatext.php)", "Facebot", "facebookcatalog/1.0",
    # "meta-externalfetcher/1.1". The in-app browser (FBAN/FBAV) is human and does not match.
    Rule(
        "facebook",
        PREVIEW,
        _ci(r"facebookexternalhit|\bFacebot\b|facebookcatalog|meta-externalfetcher"),
    ),
    # Slack's unfurler and image proxy: "Slackbot-LinkExpanding 1.0
    # (+https://api.slack.com/robots)", "Slack-ImgProxy (+https://api.slack.com/robots)",
    # "Slackbot 1.0 (+https://api.slack.com/robots)".
    Rule("slack", PREVIEW, _ci(r"\bSlackbot\b|\bSlack-ImgProxy\b")),
    # Discord's embed fetcher: "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)".
    Rule("discord", PREVIEW, _ci(r"\bDiscordbot/")),
    # Skype's and Microsoft Teams' preview fetcher (Teams kept Skype's):
    # "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5".
    Rule("skype_teams", PREVIEW, _ci(r"\bSkypeUriPreview\b")),
    # Microsoft's link previews for Teams, Outlook and Bing chat: "Mozilla/5.0 AppleWebKit/537.36
    # (KHTML, like Gecko; compatible; MicrosoftPreview/2.0; +https://aka.ms/MicrosoftPreview) ...".
    Rule("microsoft_preview", PREVIEW, _ci(r"\bMicrosoftPreview/")),
    # Google Messages (Android's default SMS/RCS app) preview fetcher, documented by Google
    # among its user-triggered fetchers with the token "GoogleMessages".
    Rule("google_messages", PREVIEW, _ci(r"\bGoogleMessages\b")),
    # Google's snippet renderer, fetching previews for Google's apps (Chat, formerly Hangouts):
    # "... Mobile Safari/537.36 (compatible; Google-PageRenderer Google
    # (+https://developers.google.com/+/web/snippet/))".
    Rule("google_page_renderer", PREVIEW, _ci(r"\bGoogle-PageRenderer\b|/\+/web/snippet")),
    # Gmail's and Google's image proxy: "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko
    # Firefox/11.0 (via ggpht.com GoogleImageProxy)".
    Rule("google_image_proxy", PREVIEW, _ci(r"\bGoogleImageProxy\b")),
    # Twitter/X cards (and DMs): "Twitterbot/1.0".
    Rule("twitter", PREVIEW, _ci(r"\bTwitterbot\b")),
    # LinkedIn posts and messages: "LinkedInBot/1.0 (compatible; Mozilla/5.0;
    # Apache-HttpClient +http://www.linkedin.com)". Before the Apache-HttpClient library rule.
    Rule("linkedin", PREVIEW, _ci(r"\bLinkedInBot\b")),
    # Viber's preview fetch, when it sends its bare app token ("Viber/21.6.0.0 ..."). Anchored at
    # the start so Viber's in-app browser ("Mozilla/5.0 ... Viber/...") stays human.
    Rule("viber", PREVIEW, _ci(r"^Viber\b")),
    # Snapchat chat previews: "Snap URL Preview Service; bot; snapchat;
    # https://developers.snap.com/robots". Snapchat's in-app browser ("Snapchat/12.x") is human.
    Rule("snapchat", PREVIEW, _ci(r"\bSnap URL Preview\b")),
    # Pinterest pins: "Mozilla/5.0 (compatible; Pinterestbot/1.0;
    # +https://www.pinterest.com/bot.html)", "Pinterest/0.2 (+https://www.pinterest.com/bot.html)".
    # The in-app browser ("[Pinterest/iOS]") is human.
    Rule("pinterest", PREVIEW, _ci(r"\bPinterestbot\b|pinterest\.com/bot\.html")),
    # --- Security scanners ----------------------------------------------------------------
    # Microsoft Office apps probing a link before opening it or drawing its preview (Outlook,
    # Word); Defender Safe Links itself scans with stock browser strings, which no rule can
    # tell from a person: "Microsoft Office Existence Discovery",
    # "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
    # "Mozilla/4.0 (compatible; ms-office; MSOffice 16)".
    Rule("microsoft_office", SCANNER, _ci(r"\bMicrosoft Office\b|\bms-office\b|\bMSOffice\b")),
    # Proofpoint URL Defense / TAP sandbox, when it names itself.
    Rule("proofpoint", SCANNER, _ci(r"proofpoint")),
    # Mimecast URL Protect, when it names itself.
    Rule("mimecast", SCANNER, _ci(r"mimecast")),
    # Barracuda Email Security / Sentinel link protection, when it names itself.
    Rule("barracuda", SCANNER, _ci(r"barracuda")),
    # Google's abuse and malware checks of publicly posted links: "Google-Safety".
    Rule("google_safety", SCANNER, _ci(r"\bGoogle-Safety\b")),
    # Cisco email and web security (IronPort, Talos, Umbrella), when it names itself.
    Rule("cisco", SCANNER, _ci(r"\bIronPort\b|\bCisco[ -]?(?:Talos|Umbrella)\b")),
    # Trend Micro web reputation checks, when they name themselves.
    Rule("trend_micro", SCANNER, _ci(r"\bTrend ?Micro\b")),
    # Symantec / Broadcom email and web security, when it names itself.
    Rule("symantec", SCANNER, _ci(r"\bSymantec\b|\bBroadcom\b")),
    # Palo Alto Networks (Expanse, Cortex Xpanse): "Expanse, a Palo Alto Networks company,
    # searches across the global IPv4 space multiple times per day ...".
    Rule("palo_alto", SCANNER, _ci(r"\bPalo ?Alto ?Networks\b|paloaltonetworks")),
    # Zscaler's cloud proxy and sandbox, when it names itself.
    Rule("zscaler", SCANNER, _ci(r"zscaler")),
    # Cloudmark (Proofpoint), the messaging-security filter many mobile carriers run on SMS,
    # when it names itself.
    Rule("cloudmark", SCANNER, _ci(r"cloudmark")),
    # Headless browsers: URL sandboxes and scanners rendering the page, e.g. "Mozilla/5.0 (X11;
    # Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 ...".
    Rule("headless_browser", SCANNER, _ci(r"\bHeadlessChrome\b|\bPhantomJS\b")),
    # --- Crawlers -------------------------------------------------------------------------
    # Google's search and ads crawlers: "Mozilla/5.0 (compatible; Googlebot/2.1;
    # +http://www.google.com/bot.html)", "AdsBot-Google", "Google-InspectionTool", "GoogleOther".
    Rule(
        "googlebot",
        CRAWLER,
        _ci(
            r"Googlebot|\bAdsBot-Google|\bMediapartners-Google"
            r"|\bGoogle-InspectionTool|\bGoogleOther\b"
        ),
    ),
    # Bing's snapshot fetcher (search previews, Outlook.com link checks): "Mozilla/5.0
    # (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b".
    Rule("bing_preview", CRAWLER, _ci(r"\bBingPreview/")),
    # Bing's crawler: "Mozilla/5.0 (compatible; bingbot/2.0;
    # +http://www.bing.com/bingbot.htm)".
    Rule("bingbot", CRAWLER, _ci(r"\bbingbot/|\bmsnbot\b|\badidxbot\b")),
    # Apple's crawler for Siri and Spotlight: "... Safari/605.1.15 (Applebot/0.1;
    # +http://www.apple.com/go/applebot)".
    Rule("applebot", CRAWLER, _ci(r"\bApplebot\b")),
    # Baidu: "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)".
    Rule("baiduspider", CRAWLER, _ci(r"\bBaiduspider")),
    # Yandex: "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)".
    Rule("yandexbot", CRAWLER, _ci(r"\bYandex(?:Mobile)?Bot/")),
    # DuckDuckGo: "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)".
    Rule("duckduckbot", CRAWLER, _ci(r"\bDuckDuckBot\b|\bDuckDuckGo-Favicons-Bot\b")),
    # Ahrefs' SEO crawler: "Mozilla/5.0 (compatible; AhrefsBot/7.0;
    # +http://ahrefs.com/robot/)".
    Rule("ahrefsbot", CRAWLER, _ci(r"\bAhrefsBot\b")),
    # Semrush's SEO crawler: "Mozilla/5.0 (compatible; SemrushBot/7~bl;
    # +http://www.semrush.com/bot.html)".
    Rule("semrushbot", CRAWLER, _ci(r"\bSemrushBot\b")),
    # --- HTTP libraries and command-line clients ------------------------------------------
    # curl and libcurl bindings: "curl/8.4.0", "PycURL/7.45.2 libcurl/8.4.0 OpenSSL/3.0.11".
    Rule("curl", LIBRARY, _ci(r"^curl/|\blibcurl/")),
    # GNU Wget: "Wget/1.21.4".
    Rule("wget", LIBRARY, _ci(r"^Wget/")),
    # Python requests: "python-requests/2.31.0".
    Rule("python_requests", LIBRARY, _ci(r"\bpython-requests/")),
    # Python's standard library: "Python-urllib/3.11".
    Rule("python_urllib", LIBRARY, _ci(r"\bPython-urllib/")),
    # aiohttp: "Python/3.11 aiohttp/3.9.1".
    Rule("aiohttp", LIBRARY, _ci(r"\baiohttp/")),
    # HTTPX: "python-httpx/0.27.0".
    Rule("httpx", LIBRARY, _ci(r"\bpython-httpx/")),
    # Go's net/http: "Go-http-client/1.1", "Go-http-client/2.0".
    Rule("go_http_client", LIBRARY, _ci(r"^Go-http-client/")),
    # OkHttp, Android's and the JVM's common client, as the whole UA: "okhttp/4.12.0".
    Rule("okhttp", LIBRARY, _ci(r"^okhttp/")),
    # Android's built-in HttpURLConnection, from apps (not browsers, which send "Mozilla/5.0"):
    # "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240205.004)".
    Rule("android_dalvik", LIBRARY, _ci(r"^Dalvik/")),
    # Apple's URLSession, from iOS/macOS apps (not browsers, which send "Mozilla/5.0"):
    # "MyApp/1.2 CFNetwork/1490.0.4 Darwin/23.2.0".
    Rule("cfnetwork", LIBRARY, _ci(r"^(?!Mozilla/).*\bCFNetwork/")),
    # Java's HttpURLConnection / HttpClient: "Java/17.0.9", "Java-http-client/17.0.9".
    Rule("java", LIBRARY, _ci(r"^Java(?:-http-client)?/")),
    # Apache HttpClient (JVM): "Apache-HttpClient/4.5.14 (Java/17.0.9)".
    Rule("apache_httpclient", LIBRARY, _ci(r"\bApache-HttpClient/")),
    # node-fetch: "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "node-fetch".
    Rule("node_fetch", LIBRARY, _ci(r"^node-fetch\b")),
    # axios: "axios/1.6.2".
    Rule("axios", LIBRARY, _ci(r"^axios/")),
    # Node's built-in fetch (undici): "undici", "node".
    Rule("undici", LIBRARY, _ci(r"^undici\b|^node$")),
    # Perl LWP: "libwww-perl/6.72".
    Rule("libwww_perl", LIBRARY, _ci(r"\blibwww-perl/")),
    # Postman: "PostmanRuntime/7.36.0".
    Rule("postman", LIBRARY, _ci(r"\bPostmanRuntime/")),
    # Insomnia: "insomnia/8.4.5".
    Rule("insomnia", LIBRARY, _ci(r"^insomnia/")),
    # HTTPie: "HTTPie/3.2.2".
    Rule("httpie", LIBRARY, _ci(r"^HTTPie/")),
    # Scrapy: "Scrapy/2.11.0 (+https://scrapy.org)".
    Rule("scrapy", LIBRARY, _ci(r"\bScrapy/")),
    # PHP streams and Guzzle: "PHP/8.2.12", "GuzzleHttp/7".
    Rule("php", LIBRARY, _ci(r"^PHP/|\bGuzzleHttp/|^Guzzle/")),
    # Ruby's Net::HTTP, Faraday and http.rb: "Ruby", "Faraday v2.7.12", "http.rb/5.1.1".
    Rule("ruby", LIBRARY, _ci(r"^Ruby\b|^Faraday v|^http\.rb/")),
    # --- Anything else that calls itself a robot (last) -----------------------------------
    # "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)", "… crawler …",
    # "… spider …". Not "CUBOT", a phone brand ("Android 10; CUBOT X30").
    Rule("generic_bot", CRAWLER, _ci(r"(?<!cu)bot\b|crawl|spider")),
)


def classify(user_agent: str | None, method: str = "GET") -> Classification:
    """The class of a click from its User-Agent header and HTTP method."""
    agent = _classify_user_agent((user_agent or "")[:SIGNIFICANT_LENGTH])
    if agent.kind == HUMAN and method.upper() == "HEAD":
        return agent._replace(kind=SCANNER, rule="head_request")
    return agent


@lru_cache(maxsize=CACHE_SIZE)
def _classify_user_agent(user_agent: str) -> Classification:
    if not user_agent.strip():
        return Classification(LIBRARY, "empty_user_agent", "other", "Other", "Other")
    parsed = _parse_user_agent(user_agent)
    os_family: str = parsed.os.family
    browser_family: str = parsed.browser.family
    rule = next((r for r in RULES if r.pattern.search(user_agent)), None)
    if rule is not None:
        return Classification(rule.kind, rule.name, "bot", os_family, browser_family)
    if parsed.is_bot:
        return Classification(CRAWLER, "ua_parser_bot", "bot", os_family, browser_family)
    return Classification(HUMAN, "default_human", _device(parsed), os_family, browser_family)


def _device(parsed: Any) -> str:
    if parsed.is_mobile:
        return "mobile"
    if parsed.is_tablet:
        return "tablet"
    if parsed.is_pc:
        return "desktop"
    return "other"
